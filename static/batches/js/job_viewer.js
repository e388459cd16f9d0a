/* The job page's images open in the gallery's viewer (viewer.js, pixelview.js): the same zoom at
 * the cursor, pan, grid, background, sprite / original, and review.
 *   click a tile   open it (ctrl / cmd click: the PNG in a new tab, as before)
 *   ← → / j k      previous / next       1 2 4 8, f 0, + -, wheel   zoom     drag, shift + arrows   pan
 *   g grid · b background · t tile 3x3 · o sprite / original · a r u review · s star · Esc close
 * While the viewer is open it takes every key first, so the page's own keys (s: stop the job,
 * x: cancel it) cannot fire behind it.
 */
(function () {
  "use strict";
  var DGX = (window.DGX = window.DGX || {});
  var tiles = document.getElementById("job-images");
  var template = document.getElementById("viewer-template");
  if (!tiles || !template || !DGX.Viewer) return;
  document.body.appendChild(template.content.cloneNode(true));
  var root = document.getElementById("viewer");
  var viewer = DGX.Viewer(root);
  var current = null;

  function list() { return Array.prototype.slice.call(tiles.querySelectorAll(".tile[data-id]")); }

  function open(tile) {
    var all = list();
    current = tile;
    viewer.show(tile.dataset, (all.indexOf(tile) + 1) + " / " + all.length);
  }
  function move(step) {
    var all = list(), i = all.indexOf(current);
    if (i < 0 || !all.length) return;
    open(all[Math.max(0, Math.min(all.length - 1, i + step))]);
  }
  function setView(value) { DGX.spriteView.set(value); viewer.view(value); }

  function csrf() {
    var m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }
  /* The gallery's review endpoints (batches/urls/review.py). */
  function post(what, fields) {
    if (!current || current.dataset.canChange !== "1") return;
    var tile = current, body = new FormData();
    Object.keys(fields).forEach(function (k) { body.append(k, fields[k]); });
    fetch("/images/" + tile.dataset.id + "/" + what + "/", {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "X-Requested-With": "fetch", "X-CSRFToken": csrf(), Accept: "application/json" },
    }).then(function (r) { return r.json(); }).then(function (data) {
      if (!data.ok) throw new Error(data.error || "not saved");
      tile.dataset.review = data.review;
      tile.dataset.starred = data.starred ? "1" : "0";
      if (viewer.open && viewer.data && viewer.data.id === tile.dataset.id) viewer.reflect(tile.dataset);
    }).catch(function (err) { if (DGX.toast) DGX.toast(String(err.message || err), "error"); });
  }
  function review(value) { post("review", { review: value }); }
  function star() { if (current) post("star", { starred: current.dataset.starred === "1" ? "0" : "1" }); }

  tiles.addEventListener("click", function (event) {
    var tile = event.target.closest(".tile[data-id]");
    if (!tile || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    open(tile);
  });

  root.addEventListener("click", function (event) {
    var t = event.target.closest("button");
    if (event.target === root || event.target.id === "viewer-stage") { viewer.close(); return; }
    if (!t) return;
    if (t.hasAttribute("data-viewer-close")) viewer.close();
    else if (t.dataset.zoom !== undefined) viewer.zoom(Number(t.dataset.zoom));
    else if (t.hasAttribute("data-grid-toggle")) viewer.toggleGrid();
    else if (t.hasAttribute("data-tile-toggle")) viewer.toggleTile();
    else if (t.hasAttribute("data-bg-toggle")) viewer.toggleBackground();
    else if (t.dataset.view) setView(t.dataset.view);
    else if (t.dataset.review) review(t.dataset.review);
    else if (t.hasAttribute("data-star")) star();
  });

  window.addEventListener("keydown", function (event) {
    if (!viewer.open || event.ctrlKey || event.metaKey || event.altKey) return;
    var k = event.key, handled = true;
    if (k === "Escape") viewer.close();
    else if (event.shiftKey && k.indexOf("Arrow") === 0) viewer.key(event);
    else if (k === "ArrowRight" || k === "j") move(1);
    else if (k === "ArrowLeft" || k === "k") move(-1);
    else if (k === "1" || k === "2" || k === "4" || k === "8") viewer.zoom(Number(k));
    else if (k === "f" || k === "0") viewer.zoom(0);
    else if (k === "g" || k === "G") viewer.toggleGrid();
    else if (k === "t" || k === "T") viewer.toggleTile();
    else if (k === "o" || k === "O") setView(DGX.spriteView.get() === "sprite" ? "original" : "sprite");
    else if (k === "+" || k === "=") viewer.zoomStep(1);
    else if (k === "-" || k === "_") viewer.zoomStep(-1);
    else if (k === "b" || k === "B") viewer.toggleBackground();
    else if (k === "a") review("approved");
    else if (k === "r") review("rejected");
    else if (k === "u") review("unreviewed");
    else if (k === "s") star();
    else handled = false;
    // Every key stops here while the viewer is open: the page's own (s stop, x cancel) are behind it.
    event.stopImmediatePropagation();
    if (handled) event.preventDefault();
  }, true);
  window.addEventListener("resize", function () { if (viewer.open) viewer.relayout(); });
})();
