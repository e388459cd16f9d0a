/* Compare: one zoom and one pixel grid for every column; zoomed cells of a row pan together.
 *   f fit · 1 2 4 8 zoom · g grid · d only differing parameters · o sprite / original
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

  /* A sprite in fit mode: the largest whole scale that fits its column (and a third of the screen). */
  function spriteFit(img) {
    var stack = img.closest(".cmp-stack");
    var box = Math.min(stack ? stack.clientWidth : 0, window.innerHeight * 0.34) || 128;
    return DGX.pixel.fitInteger(Number(img.dataset.w) || img.naturalWidth, Number(img.dataset.h) || img.naturalHeight, box, box, 16);
  }

  function apply() {
    gridRoot.dataset.zoom = String(state.z);
    gridRoot.classList.toggle("is-sprites", state.view === "sprite");
    images.forEach(function (img) {
      var sprite = state.view === "sprite" && !!img.dataset.sprite;
      img.classList.toggle("is-sprite", sprite);
      img.dataset.w = sprite ? (img.dataset.spriteW || "") : img.dataset.ow;
      img.dataset.h = sprite ? (img.dataset.spriteH || "") : img.dataset.oh;
      var want = sprite ? img.dataset.sprite : state.z ? img.dataset.full : img.dataset.thumb;  // the thumbnail is enough to fit
      if (img.getAttribute("src") !== want) img.setAttribute("src", want);
      img.dataset.shownZoom = String(sprite && !state.z ? spriteFit(img) : state.z);
      DGX.pixel.zoom(img, Number(img.dataset.shownZoom));
    });
    // Grids need the laid-out size in fit mode.
    requestAnimationFrame(function () {
      gridRoot.querySelectorAll(".pixel-grid").forEach(function (g) {
        var img = g.parentNode.querySelector(".cmp-img");
        DGX.pixel.grid(g, img ? Number(img.dataset.shownZoom) : state.z, state.grid);
      });
    });
    toolbar.querySelectorAll("[data-zoom]").forEach(function (b) {
      b.setAttribute("aria-pressed", String(Number(b.dataset.zoom) === state.z));
    });
    toolbar.querySelectorAll("[data-view]").forEach(function (b) {
      b.setAttribute("aria-pressed", String(b.dataset.view === state.view));
    });
    toolbar.querySelector("[data-grid-toggle]").setAttribute("aria-pressed", String(state.grid));
  }

  function setView(value) { state.view = value === "original" ? "original" : "sprite"; DGX.spriteView.set(state.view); apply(); }

  function zoom(z) { state.z = z; localStorage.setItem("dgx.compare.zoom", String(z)); apply(); }
  function toggleGrid() { state.grid = !state.grid; localStorage.setItem("dgx.compare.grid", state.grid ? "1" : "0"); apply(); }

  toolbar.addEventListener("click", function (event) {
    var b = event.target.closest("button");
    if (!b) return;
    if (b.dataset.zoom !== undefined) zoom(Number(b.dataset.zoom));
    else if (b.hasAttribute("data-grid-toggle")) toggleGrid();
    else if (b.dataset.view) setView(b.dataset.view);
  });

  var onlyDiff = document.getElementById("only-diff");
  var params = document.getElementById("cmp-params");
  function showOnlyDiff() { params.classList.toggle("only-diff", onlyDiff.checked); }
  if (onlyDiff && params) onlyDiff.addEventListener("change", showOnlyDiff);

  // Pan zoomed cells of one row together, so the same pixels stay side by side.
  var syncing = false;
  gridRoot.addEventListener("scroll", function (event) {
    var frame = event.target;
    if (syncing || !frame.classList || !frame.classList.contains("cmp-frame")) return;
    var row = frame.closest(".cmp-cell").dataset.row;
    syncing = true;
    gridRoot.querySelectorAll('.cmp-cell[data-row="' + row + '"] .cmp-frame').forEach(function (other) {
      if (other !== frame) { other.scrollLeft = frame.scrollLeft; other.scrollTop = frame.scrollTop; }
    });
    requestAnimationFrame(function () { syncing = false; });
  }, true);

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
    else return;
    event.preventDefault();
  });
  window.addEventListener("resize", function () { if (!state.z && (state.grid || state.view === "sprite")) apply(); });
  images.forEach(function (img) {
    img.addEventListener("load", function () {
      // A sprite without a recorded size is fitted once it has loaded.
      if (!state.z && (state.grid || (img.classList.contains("is-sprite") && !img.dataset.spriteW))) apply();
    });
  });
  apply();
})();
