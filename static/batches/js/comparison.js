/* A comparison's grid: rows and columns chosen from the axes and prompt/seed, one zoom and pixel
 * grid for every cell, the sprite/original choice shared with the other review pages, cells
 * filling in live (the queue socket's events for a cell's job refetch the grid partial).
 *   f fit · 1 2 4 8 zoom · g grid · o sprite / original
 */
(function () {
  "use strict";
  var DGX = (window.DGX = window.DGX || {});
  var configEl = document.getElementById("comparison-config");
  if (!configEl) return;
  var config = JSON.parse(configEl.textContent);
  var live = document.getElementById("cmp-live");
  var toolbar = document.getElementById("cmp-toolbar");
  var rowsSel = document.getElementById("grid-rows"), colsSel = document.getElementById("grid-cols");
  var pngLink = document.getElementById("export-png");
  var state = { z: Number(localStorage.getItem("dgx.compare.zoom") || 0), grid: localStorage.getItem("dgx.compare.grid") === "1",
                view: DGX.spriteView.get() };

  function gridRoot() { return document.getElementById("cmp-grid"); }
  function jobs() { var g = gridRoot(); return new Set((g ? g.dataset.jobs : "").split(",").filter(Boolean).map(Number)); }

  function spriteFit(img) {
    var stack = img.closest(".cmp-cell");
    var box = Math.min(stack ? stack.clientWidth : 0, window.innerHeight * 0.34) || 128;
    return DGX.pixel.fitInteger(Number(img.dataset.w) || img.naturalWidth, Number(img.dataset.h) || img.naturalHeight, box, box, 16);
  }

  function apply() {
    var root = gridRoot();
    if (!root) return;
    root.dataset.zoom = String(state.z);
    root.classList.toggle("is-sprites", state.view === "sprite");
    root.querySelectorAll(".cmp-img").forEach(function (img) {
      var sprite = state.view === "sprite" && !!img.dataset.sprite;
      img.classList.toggle("is-sprite", sprite);
      img.dataset.w = sprite ? (img.dataset.spriteW || "") : img.dataset.ow;
      img.dataset.h = sprite ? (img.dataset.spriteH || "") : img.dataset.oh;
      var want = sprite ? img.dataset.sprite : state.z ? img.dataset.full : img.dataset.thumb;
      if (img.getAttribute("src") !== want) img.setAttribute("src", want);
      img.dataset.shownZoom = String(sprite && !state.z ? spriteFit(img) : state.z);
      DGX.pixel.zoom(img, Number(img.dataset.shownZoom));
    });
    requestAnimationFrame(function () {
      root.querySelectorAll(".pixel-grid").forEach(function (g) {
        var img = g.parentNode.querySelector(".cmp-img");
        DGX.pixel.grid(g, img ? Number(img.dataset.shownZoom) : state.z, state.grid);
      });
    });
    toolbar.querySelectorAll("[data-zoom]").forEach(function (b) { b.setAttribute("aria-pressed", String(Number(b.dataset.zoom) === state.z)); });
    toolbar.querySelectorAll("[data-view]").forEach(function (b) { b.setAttribute("aria-pressed", String(b.dataset.view === state.view)); });
    toolbar.querySelector("[data-grid-toggle]").setAttribute("aria-pressed", String(state.grid));
    if (pngLink) pngLink.href = config.png + "?" + layout() + (state.view === "sprite" ? "&sprites=1" : "");
    var progress = document.querySelector("#cmp-progress [data-field=images]");
    if (progress) progress.textContent = root.dataset.images;
  }

  function layout() { return "rows=" + encodeURIComponent(rowsSel.value) + "&cols=" + encodeURIComponent(colsSel.value); }

  var pending = null, inflight = false, again = false;
  function refresh() {
    if (inflight) { again = true; return; }
    inflight = true;
    fetch(config.partial + "?partial=grid&" + layout(), { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then(function (html) { live.innerHTML = html; apply(); })
      .catch(function (err) { console.error("comparison grid", err); })
      .then(function () { inflight = false; if (again) { again = false; schedule(); } });
  }
  function schedule() { clearTimeout(pending); pending = setTimeout(refresh, 150); }

  function changeLayout(event) {
    if (rowsSel.value === colsSel.value) {  // rows and columns must differ: move the other one
      var other = event.target === rowsSel ? colsSel : rowsSel;
      var free = Array.prototype.find.call(other.options, function (o) { return o.value !== event.target.value; });
      if (free) other.value = free.value;
    }
    history.replaceState(null, "", location.pathname + "?" + layout());
    refresh();
  }
  rowsSel.addEventListener("change", changeLayout);
  colsSel.addEventListener("change", changeLayout);

  function zoom(z) { state.z = z; localStorage.setItem("dgx.compare.zoom", String(z)); apply(); }
  function toggleGrid() { state.grid = !state.grid; localStorage.setItem("dgx.compare.grid", state.grid ? "1" : "0"); apply(); }
  function setView(value) { state.view = value === "original" ? "original" : "sprite"; DGX.spriteView.set(state.view); apply(); }

  toolbar.addEventListener("click", function (event) {
    var b = event.target.closest("button");
    if (!b) return;
    if (b.dataset.zoom !== undefined) zoom(Number(b.dataset.zoom));
    else if (b.hasAttribute("data-grid-toggle")) toggleGrid();
    else if (b.dataset.view) setView(b.dataset.view);
  });

  // Pan zoomed cells of one row together.
  var syncing = false;
  live.addEventListener("scroll", function (event) {
    var frame = event.target;
    if (syncing || !frame.classList || !frame.classList.contains("cmp-frame")) return;
    var row = frame.closest(".cmp-cell").dataset.row;
    syncing = true;
    live.querySelectorAll('.cmp-cell[data-row="' + row + '"] .cmp-frame').forEach(function (other) {
      if (other !== frame) { other.scrollLeft = frame.scrollLeft; other.scrollTop = frame.scrollTop; }
    });
    requestAnimationFrame(function () { syncing = false; });
  }, true);

  // Cancel one cell: the job's own cancel endpoint, then the grid again.
  live.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.hasAttribute("data-cancel-cell")) return;
    event.preventDefault();
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
    fetch(form.action, { method: "POST", body: new FormData(form), credentials: "same-origin",
                         headers: { "X-Requested-With": "fetch", Accept: "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (data) { if (DGX.toast && data.message) DGX.toast(data.message, data.ok ? "ok" : "error"); refresh(); })
      .catch(function () { refresh(); });
  });
  document.addEventListener("dgx:action", function () { refresh(); });

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    var t = event.target;
    if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
    var k = event.key;
    if (k === "1" || k === "2" || k === "4" || k === "8") zoom(Number(k));
    else if (k === "f" || k === "0") zoom(0);
    else if (k === "g") toggleGrid();
    else if (k === "o") setView(state.view === "sprite" ? "original" : "sprite");
    else return;
    event.preventDefault();
  });
  window.addEventListener("resize", function () { if (!state.z && (state.grid || state.view === "sprite")) apply(); });
  live.addEventListener("load", function (event) {
    var img = event.target;
    if (img.classList && img.classList.contains("cmp-img") && !state.z &&
        (state.grid || (img.classList.contains("is-sprite") && !img.dataset.spriteW))) apply();
  }, true);

  var REFRESH_ON = ["image_saved", "job_started", "job_finished", "job_cancelling", "job_stopping", "unit_failed",
                    "sprite_ready", "sprite_failed"];
  // A cell's job moved (an image saved, a status changed, a sprite made): fetch the grid again.
  DGX.live(config.socket, {
    since: config.since,
    on: { "*": function (data, message) {
      var job = message.job || (data && data.job_id);  // the event's job rides beside its data
      if (REFRESH_ON.indexOf(message.kind) >= 0 && job && jobs().has(Number(job))) schedule();
    } },
    onOpen: function (reconnected) { if (reconnected) refresh(); },
  });
  apply();
})();
