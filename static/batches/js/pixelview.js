/* One pixel viewer for the gallery's viewer, the job page and compare (no libraries).
 *
 *   var pv = DGX.pixelView(stage, options)
 *
 * `stage` clips; its first `.pv-canvas` (or options.canvas) is moved with a CSS translate and the
 * picture inside it is sized at a whole zoom of its own pixels (nearest neighbour, review.css), so a
 * sprite pixel is always z x z screen pixels. Options:
 *   img       the <img> (default: the canvas's first img)
 *   grid      the grid overlay (default: the canvas's .pixel-grid)
 *   size()    the natural size shown, {w, h} (default: img's data-w/data-h, else its natural size)
 *   max()     the largest zoom (default 16)
 *   cell()    the art-pixel grid of an original, {size, x, y}, or null: one cell per pixel
 *   shrink    fit may scale below 1x when even 1x does not fit (an original larger than the stage)
 *   draw(s)   size the picture at scale s instead of the default (the viewer's 3 x 3 tile)
 *   fitBox()  the box fit fills, {w, h} (default: the stage less 16 px each side)
 *   onChange(pv, why)  after every zoom or pan ("zoom", "pan", "layout"): compare mirrors it
 * Methods: zoom(z, at) (z = 0: fit; at = {x, y} in stage pixels keeps the pixel there fixed),
 *   step(dir, at), panBy(dx, dy), fit(), layout(), grid(on) / toggleGrid(), toggleBackground(),
 *   mirror(other) (same zoom and pan as another view), key(event) -> handled, state.
 * Input: the wheel zooms at the cursor, dragging pans (mouse, pen, touch; two fingers pinch),
 *   +/- zoom at the last cursor position, 0 fit, arrows pan, g grid, b background.
 * The stage carries data-shown-zoom, data-tx and data-ty for tests and styles.
 */
(function () {
  "use strict";
  var DGX = (window.DGX = window.DGX || {});
  var BG_KEY = "dgx.pixel.bg";
  var PAN_STEP = 48, KEEP_VISIBLE = 32;

  function background() {
    try { return localStorage.getItem(BG_KEY) === "solid" ? "solid" : "checker"; } catch (e) { return "checker"; }
  }

  DGX.pixelView = function (stage, options) {
    options = options || {};
    var canvas = options.canvas || stage.querySelector(".pv-canvas") || stage.firstElementChild;
    var img = options.img || canvas.querySelector("img");
    var gridEl = options.grid || canvas.querySelector(".pixel-grid");
    var s = { z: options.zoom || 0, shown: 1, tx: 0, ty: 0, grid: !!options.gridOn, placed: false };
    var pointer = null;  // the last cursor position over the stage, for +/- and buttons
    var drags = {};      // active pointers: id -> {x, y}
    var pinch = null;
    var moved = 0;       // how far the current drag went: a drag is not a click
    stage.classList.add("pv-stage");
    canvas.classList.add("pv-canvas");

    function size() {
      if (options.size) return options.size();
      return { w: Number(img.dataset.w) || img.naturalWidth || 0, h: Number(img.dataset.h) || img.naturalHeight || 0 };
    }
    function max() { return options.max ? options.max() : 16; }
    function box() {
      if (options.fitBox) return options.fitBox();
      return { w: Math.max(1, stage.clientWidth - 32), h: Math.max(1, stage.clientHeight - 32) };
    }
    function fitScale() {
      var n = size(), b = box();
      if (!n.w || !n.h) return 1;
      var whole = Math.floor(Math.min(b.w / n.w, b.h / n.h));
      if (whole >= 1) return Math.min(whole, max());
      return options.shrink ? Math.max(0.02, Math.min(b.w / n.w, b.h / n.h)) : 1;
    }
    function centre() {
      var n = size();
      s.tx = Math.round((stage.clientWidth - n.w * s.shown) / 2);
      s.ty = Math.round((stage.clientHeight - n.h * s.shown) / 2);
    }
    function clamp() {  // keep a corner of the picture in view, never lose it off the stage
      var n = size(), w = n.w * s.shown, h = n.h * s.shown;
      s.tx = Math.min(stage.clientWidth - KEEP_VISIBLE, Math.max(KEEP_VISIBLE - w, s.tx));
      s.ty = Math.min(stage.clientHeight - KEEP_VISIBLE, Math.max(KEEP_VISIBLE - h, s.ty));
    }

    function paint() {
      // draw() returns true when it drew something else (the viewer's 3 x 3 tile) with no grid.
      var drawn = options.draw ? options.draw(s.shown) : (DGX.pixel.zoom(img, s.shown), false);
      if (gridEl && !drawn) DGX.pixel.grid(gridEl, s.shown, s.grid, options.cell ? options.cell() : null);
      canvas.style.transform = "translate(" + s.tx + "px, " + s.ty + "px)";
      var bg = background();
      canvas.classList.toggle("pv-solid", bg === "solid");
      stage.dataset.shownZoom = String(s.shown);
      stage.dataset.tx = String(s.tx);
      stage.dataset.ty = String(s.ty);
      stage.dataset.zoom = String(s.z || "fit");
      stage.dataset.bg = bg;
    }

    function changed(why) { if (options.onChange) options.onChange(api, why); }

    /* Zoom to z (0: fit) keeping the picture pixel at `at` (stage pixels) where it is. */
    function zoom(z, at, quiet) {
      var before = s.shown;
      s.z = z ? Math.max(1, Math.min(max(), Math.round(z))) : 0;
      s.shown = s.z || fitScale();
      if (!s.z || !s.placed) {
        centre();
      } else {
        var p = at || { x: stage.clientWidth / 2, y: stage.clientHeight / 2 };
        var ix = (p.x - s.tx) / before, iy = (p.y - s.ty) / before;  // the picture pixel under p
        s.tx = Math.round(p.x - ix * s.shown);
        s.ty = Math.round(p.y - iy * s.shown);
        clamp();
      }
      s.placed = true;
      paint();
      if (!quiet) changed("zoom");
    }

    function step(direction, at) {
      var current = s.shown;
      var next = direction > 0 ? (current < 1 ? 1 : Math.round(current) + 1) : Math.round(current) - 1;
      if (next < 1) {  // below 1x only as far as fit goes (an original larger than the stage)
        if (options.shrink && fitScale() < 1) { zoom(0, at); return; }
        next = 1;
      }
      zoom(Math.min(max(), next), at);
    }

    function panBy(dx, dy, quiet) {
      s.tx = Math.round(s.tx + dx);
      s.ty = Math.round(s.ty + dy);
      clamp();
      paint();
      if (!quiet) changed("pan");
    }

    function local(event) {
      var r = stage.getBoundingClientRect();
      return { x: event.clientX - r.left, y: event.clientY - r.top };
    }

    stage.addEventListener("wheel", function (event) {
      if (event.ctrlKey && !event.deltaY) return;
      event.preventDefault();
      pointer = local(event);
      step(event.deltaY < 0 ? 1 : -1, pointer);
    }, { passive: false });

    stage.addEventListener("pointermove", function (event) {
      pointer = local(event);
      var d = drags[event.pointerId];
      if (!d) return;
      var ids = Object.keys(drags);
      if (ids.length === 2 && pinch) {  // two fingers: zoom by whole steps at their midpoint
        d.x = event.clientX; d.y = event.clientY;
        var a = drags[ids[0]], b = drags[ids[1]];
        var dist = Math.hypot(a.x - b.x, a.y - b.y);
        if (Math.abs(dist - pinch.dist) > 40) {
          var r = stage.getBoundingClientRect();
          step(dist > pinch.dist ? 1 : -1, { x: (a.x + b.x) / 2 - r.left, y: (a.y + b.y) / 2 - r.top });
          pinch.dist = dist;
        }
        return;
      }
      // From where the drag began, rounded once: step by step, rounding would drift off the pointer.
      moved = Math.max(moved, Math.abs(event.clientX - d.x0) + Math.abs(event.clientY - d.y0));
      panBy(d.tx0 + Math.round(event.clientX - d.x0) - s.tx, d.ty0 + Math.round(event.clientY - d.y0) - s.ty);
    });
    stage.addEventListener("pointerdown", function (event) {
      if (event.button !== 0 || (event.target.closest && event.target.closest("button, a, input, select"))) return;
      if (!Object.keys(drags).length) moved = 0;
      drags[event.pointerId] = { x: event.clientX, y: event.clientY, x0: event.clientX, y0: event.clientY, tx0: s.tx, ty0: s.ty };
      var ids = Object.keys(drags);
      if (ids.length === 2) {
        var a = drags[ids[0]], b = drags[ids[1]];
        pinch = { dist: Math.hypot(a.x - b.x, a.y - b.y) };
      }
      try { stage.setPointerCapture(event.pointerId); } catch (e) { /* a synthetic pointer */ }
      stage.classList.add("is-dragging");
      event.preventDefault();
    });
    function release(event) {
      delete drags[event.pointerId];
      if (Object.keys(drags).length < 2) pinch = null;
      if (!Object.keys(drags).length) stage.classList.remove("is-dragging");
    }
    stage.addEventListener("pointerup", release);
    // The click that ends a drag must not reach the page (the gallery closes its viewer on one).
    stage.addEventListener("click", function (event) {
      if (moved > 4) { event.stopPropagation(); event.preventDefault(); moved = 0; }
    }, true);
    stage.addEventListener("pointercancel", release);
    stage.addEventListener("pointerleave", function () { if (!Object.keys(drags).length) pointer = null; });
    img.addEventListener("load", function () { if (!s.z) zoom(0, null, true); else paint(); });

    var api = {
      get state() { return { z: s.z, shown: s.shown, tx: s.tx, ty: s.ty, grid: s.grid }; },
      zoom: function (z, at) { zoom(z, at || pointer); },
      step: function (direction, at) { step(direction, at || pointer); },
      fit: function () { zoom(0); },
      panBy: panBy,
      /* Draw again (a new picture, a resized stage): fit follows the stage, a zoom keeps its pan. */
      layout: function (recentre) {
        if (recentre) s.placed = false;
        if (!s.z || !s.placed) zoom(s.z, null, true);
        else { s.shown = s.z; clamp(); paint(); }
      },
      grid: function (on) { s.grid = !!on; paint(); },
      toggleGrid: function () { s.grid = !s.grid; paint(); return s.grid; },
      toggleBackground: function () {
        try { localStorage.setItem(BG_KEY, background() === "solid" ? "checker" : "solid"); } catch (e) { /* private mode */ }
        paint();
        changed("background");
      },
      /* The same zoom and pan as `other` (compare's panes move as one). */
      mirror: function (other) {
        var o = other.state;
        s.z = o.z; s.shown = o.shown; s.tx = o.tx; s.ty = o.ty; s.placed = true;
        paint();
      },
      /* The shared keys; returns whether the key was one of them. */
      key: function (event, opts) {
        var k = event.key;
        if (k === "+" || k === "=") step(1, pointer);
        else if (k === "-" || k === "_") step(-1, pointer);
        else if (k === "0") zoom(0);
        else if (k === "g" || k === "G") { s.grid = !s.grid; paint(); changed("grid"); }
        else if (k === "b" || k === "B") api.toggleBackground();
        else if (!(opts && opts.noArrows) && k.indexOf("Arrow") === 0) {
          var d = { ArrowLeft: [1, 0], ArrowRight: [-1, 0], ArrowUp: [0, 1], ArrowDown: [0, -1] }[k];
          panBy(d[0] * PAN_STEP, d[1] * PAN_STEP);
        } else return false;
        return true;
      },
      paint: paint,
    };
    zoom(s.z, null, true);
    return api;
  };
})();
