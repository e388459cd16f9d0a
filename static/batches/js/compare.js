/* Compare: one zoom and one pixel grid for every column; every pane zooms and pans together.
 *   f 0 fit · 1 2 4 8 zoom · + - and the wheel zoom at the cursor · drag or arrows pan · g grid
 *   b background · d only differing parameters · o sprite / original · ✓ ✗ ★ review a cell
 * In sprite view each cell shows its sprite (the original until it exists), fitted at a whole
 * scale so the art pixels of every column stay square.
 */
(function () {
  "use strict";
  var DGX = (window.DGX = window.DGX || {});
  var picker = document.querySelector(".cmp-pick-form");
  if (picker) {  // at most four jobs
    var max = Number(picker.dataset.max) || 4;
    var note = picker.querySelector("[data-pick-note]");
    picker.addEventListener("change", function () {
      var boxes = picker.querySelectorAll("input[name=job]");
      var n = picker.querySelectorAll("input[name=job]:checked").length;
      boxes.forEach(function (b) { b.disabled = !b.checked && n >= max; });
      if (note) note.textContent = n + " chosen" + (n < 2 ? ": pick at least 2." : n >= max ? " (the most at once)." : ".");
    });
  }

  var gridRoot = document.getElementById("cmp-grid");
  if (!gridRoot) return;
  var toolbar = document.getElementById("cmp-toolbar");
  var state = { z: Number(localStorage.getItem("dgx.compare.zoom") || 0), grid: localStorage.getItem("dgx.compare.grid") === "1",
                view: DGX.spriteView.get() };
  var images = Array.prototype.slice.call(gridRoot.querySelectorAll(".cmp-img"));
  images.forEach(function (img) { img.dataset.ow = img.dataset.w; img.dataset.oh = img.dataset.h; });

  /* One pixelview.js per pane; a zoom or pan in one is mirrored by all the others, so the same
   * art pixels stay side by side in every column. */
  var mirroring = false, hovered = null;
  var views = images.map(function (img) {
    var frame = img.closest(".cmp-frame");
    var pv = DGX.pixelView(frame, {
      canvas: img.closest(".cmp-canvas"), img: img, grid: frame.querySelector(".pixel-grid"),
      zoom: state.z, gridOn: state.grid, shrink: true,
      fitBox: function () { return { w: frame.clientWidth, h: frame.clientHeight }; },
      onChange: function (source, why) {
        if (mirroring) return;
        mirroring = true;
        if (why === "zoom" || why === "pan") {
          state.z = source.state.z;
          localStorage.setItem("dgx.compare.zoom", String(state.z));
        }
        if (why === "grid") { state.grid = source.state.grid; localStorage.setItem("dgx.compare.grid", state.grid ? "1" : "0"); }
        views.forEach(function (other) {
          if (other === source) return;
          if (why === "grid") other.grid(state.grid);
          else if (why === "background") other.paint();
          else if (!state.z) other.fit(); else other.mirror(source);
        });
        mirroring = false;
        reflect();
      },
    });
    frame.addEventListener("pointerenter", function () { hovered = pv; });
    frame.addEventListener("pointerleave", function () { if (hovered === pv) hovered = null; });
    return pv;
  });

  function reflect() {
    gridRoot.dataset.zoom = String(state.z);
    toolbar.querySelectorAll("[data-zoom]").forEach(function (b) {
      b.setAttribute("aria-pressed", String(Number(b.dataset.zoom) === state.z));
    });
    toolbar.querySelectorAll("[data-view]").forEach(function (b) {
      b.setAttribute("aria-pressed", String(b.dataset.view === state.view));
    });
    toolbar.querySelector("[data-grid-toggle]").setAttribute("aria-pressed", String(state.grid));
    var bg = toolbar.querySelector("[data-bg-toggle]");
    if (bg && views[0]) bg.setAttribute("aria-pressed", String(gridRoot.querySelector(".pv-solid") !== null));
  }

  function apply() {
    gridRoot.dataset.zoom = String(state.z);
    gridRoot.classList.toggle("is-sprites", state.view === "sprite");
    images.forEach(function (img) {
      var sprite = state.view === "sprite" && !!img.dataset.sprite;
      img.classList.toggle("is-sprite", sprite);
      img.classList.remove("is-fit");
      img.dataset.w = sprite ? (img.dataset.spriteW || "") : img.dataset.ow;
      img.dataset.h = sprite ? (img.dataset.spriteH || "") : img.dataset.oh;
      var want = sprite ? img.dataset.sprite : state.z ? img.dataset.full : img.dataset.thumb;  // the thumbnail is enough to fit
      if (img.getAttribute("src") !== want) img.setAttribute("src", want);
    });
    // The panes change size with the zoom (CSS): lay them out, then zoom them all alike.
    mirroring = true;
    views.forEach(function (pv) { pv.grid(state.grid); pv.zoom(state.z); pv.layout(true); });
    mirroring = false;
    images.forEach(function (img, i) { img.dataset.shownZoom = String(views[i].state.shown); });
    reflect();
  }

  function setView(value) { state.view = value === "original" ? "original" : "sprite"; DGX.spriteView.set(state.view); apply(); }

  function zoom(z) { state.z = z; localStorage.setItem("dgx.compare.zoom", String(z)); apply(); }
  function toggleGrid() { state.grid = !state.grid; localStorage.setItem("dgx.compare.grid", state.grid ? "1" : "0"); apply(); }
  function leader() { return hovered || views[0]; }

  toolbar.addEventListener("click", function (event) {
    var b = event.target.closest("button");
    if (!b) return;
    if (b.dataset.zoom !== undefined) zoom(Number(b.dataset.zoom));
    else if (b.hasAttribute("data-grid-toggle")) toggleGrid();
    else if (b.hasAttribute("data-bg-toggle") && views.length) views[0].toggleBackground();
    else if (b.dataset.view) setView(b.dataset.view);
  });

  var onlyDiff = document.getElementById("only-diff");
  var params = document.getElementById("cmp-params");
  function showOnlyDiff() { params.classList.toggle("only-diff", onlyDiff.checked); }
  if (onlyDiff && params) onlyDiff.addEventListener("change", showOnlyDiff);

  /* Approve, reject and star from compare: the gallery's own endpoints (batches/urls/review.py). */
  function csrf() {
    var m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }
  function showReview(cell, review, starred) {
    cell.dataset.review = review;
    cell.dataset.starred = starred ? "1" : "0";
    var img = cell.querySelector(".cmp-img");
    if (img) { img.classList.remove("review-unreviewed", "review-approved", "review-rejected"); img.classList.add("review-" + review); }
    cell.querySelectorAll("[data-review]").forEach(function (b) { b.setAttribute("aria-pressed", String(b.dataset.review === review)); });
    var star = cell.querySelector("[data-star]");
    if (star) star.setAttribute("aria-pressed", String(!!starred));
    var label = cell.querySelector(".cmp-review-state");
    if (label) {
      label.textContent = "";
      if (review !== "unreviewed") { var s = document.createElement("span"); s.className = "rv-state-" + review; s.textContent = review; label.appendChild(s); }
      if (starred) { var st = document.createElement("span"); st.className = "star-on"; st.textContent = " ★"; label.appendChild(st); }
    }
  }
  gridRoot.addEventListener("click", function (event) {
    var b = event.target.closest("button[data-url]");
    if (!b) return;
    var cell = b.closest(".cmp-cell"), body = new FormData();
    if (b.hasAttribute("data-star")) body.append("starred", cell.dataset.starred === "1" ? "0" : "1");
    else body.append("review", cell.dataset.review === b.dataset.review ? "unreviewed" : b.dataset.review);
    b.disabled = true;
    fetch(b.dataset.url, { method: "POST", body: body, credentials: "same-origin",
                           headers: { "X-Requested-With": "fetch", "X-CSRFToken": csrf(), Accept: "application/json" } })
      .then(function (r) { return r.json().then(function (data) { if (!r.ok) throw new Error(data.error || "The server answered " + r.status + "."); return data; }); })
      .then(function (data) { showReview(cell, data.review, data.starred); })
      .catch(function (err) { if (DGX.toast) DGX.toast(err.message, "error"); else alert(err.message); })
      .then(function () { b.disabled = false; });
  });

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    var t = event.target;
    if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
    var k = event.key;
    if (k === "1" || k === "2" || k === "4" || k === "8") zoom(Number(k));
    else if (k === "f" || k === "0") zoom(0);
    else if (k === "g") toggleGrid();
    else if (k === "o") setView(state.view === "sprite" ? "original" : "sprite");
    else if (k === "d" && onlyDiff) { onlyDiff.checked = !onlyDiff.checked; showOnlyDiff(); }
    else if (views.length && (k === "+" || k === "=" || k === "-" || k === "_" || k === "b" || k === "B"
                              || (state.z && k.indexOf("Arrow") === 0))) leader().key(event);  // arrows pan once zoomed
    else return;
    event.preventDefault();
  });
  /* Sticky offsets from what is really there: the site's top bar, then the toolbar (which wraps on
   * narrow screens), then the column heads; a prompt heading scrolled to stops below all three. */
  function measure() {
    var bar = document.querySelector(".topbar");
    var barH = bar && getComputedStyle(bar).position === "sticky" ? bar.getBoundingClientRect().height : 0;
    var head = gridRoot.querySelector(".cmp-colhead[data-job]");
    var style = document.body.style;
    style.setProperty("--cmp-bar-top", barH + "px");
    style.setProperty("--cmp-sticky-top", barH + toolbar.getBoundingClientRect().height + 4 + "px");
    style.setProperty("--cmp-head-h", (head ? head.getBoundingClientRect().height : 0) + "px");
  }
  window.addEventListener("resize", function () { measure(); views.forEach(function (pv) { pv.layout(); }); });
  measure();
  apply();
})();
