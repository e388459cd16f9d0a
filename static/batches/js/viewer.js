/* Pixel-exact viewing, shared by the gallery viewer and the compare page (no libraries).
 *
 *   DGX.pixel.zoom(img, z)         zoom z (1, 2, 4, 8, 16) from the image's natural size (data-w/data-h,
 *                                  known before it loads); z = 0: CSS fits it to its box
 *   DGX.pixel.grid(el, z, on, cell) a grid over an image shown at zoom z: one cell per pixel, or per
 *                                  art pixel when cell = {size, x, y} (a sprite's detected grid)
 *   DGX.pixel.fitZoom(w, h, W, H)  the largest of 8/4/2/1 that fits a W x H box (at least 1)
 *   DGX.pixel.fitInteger(w, h, W, H, max)  the largest whole zoom up to max that fits (at least 1)
 *   DGX.spriteView.get() / set(v)  "sprite" or "original", remembered for every review page
 *   DGX.Viewer(root)               the gallery's (and the job page's) overlay: show(data), zoom(z), zoomStep(d), key(e),
 *                                  toggleGrid(), toggleTile(), view(v), close(); zoom and pan: pixelview.js
 *                                  toggleTile(): an image with a seam score (data-seam) shown repeated 3 x 3
 * Nearest neighbour everywhere: CSS `image-rendering: pixelated` (review.css).
 */
(function () {
  "use strict";
  var DGX = (window.DGX = window.DGX || {});
  var ZOOMS = [1, 2, 4, 8];

  function natural(img) {
    return {
      w: Number(img.dataset.w) || img.naturalWidth || 0,
      h: Number(img.dataset.h) || img.naturalHeight || 0,
    };
  }

  DGX.pixel = {
    ZOOMS: ZOOMS,
    zoom: function (img, z) {
      var n = natural(img);
      if (!z || !n.w) {
        img.style.width = "";
        img.style.height = "";
        img.classList.add("is-fit");
        return;
      }
      img.classList.remove("is-fit");
      img.style.width = n.w * z + "px";
      img.style.height = n.h * z + "px";
    },
    grid: function (el, z, on, cell) {
      if (!el) return;
      el.hidden = !on;
      if (!on) return;
      var img = el.parentNode && el.parentNode.querySelector("img");
      var scale = z;
      if (!z && img) {  // fit: one grid cell per source pixel at whatever size the image has
        var n = natural(img);
        scale = n.w ? img.getBoundingClientRect().width / n.w : 1;
      }
      var step = cell && cell.size ? cell.size * scale : scale;
      el.style.backgroundSize = step + "px " + step + "px";
      // The art-pixel grid starts at the detected phase, not at the image's corner.
      el.style.backgroundPosition = cell && cell.size ? (cell.x || 0) * scale + "px " + (cell.y || 0) * scale + "px" : "";
      el.classList.toggle("dense", step < 4);
    },
    fitZoom: function (w, h, boxW, boxH) {
      for (var i = ZOOMS.length - 1; i >= 0; i--) {
        if (w * ZOOMS[i] <= boxW && h * ZOOMS[i] <= boxH) return ZOOMS[i];
      }
      return 1;
    },
    fitInteger: function (w, h, boxW, boxH, max) {
      if (!w || !h) return 1;
      return Math.max(1, Math.min(max || 16, Math.floor(Math.min(boxW / w, boxH / h))));
    },
  };

  var VIEW_KEY = "dgx.view";
  DGX.spriteView = {
    get: function () {
      try { return localStorage.getItem(VIEW_KEY) === "original" ? "original" : "sprite"; } catch (e) { return "sprite"; }
    },
    set: function (value) {
      try { localStorage.setItem(VIEW_KEY, value === "original" ? "original" : "sprite"); } catch (e) { /* private mode */ }
    },
  };
  var SPRITE_ZOOM_MAX = 16, ORIGINAL_ZOOM_MAX = 8;

  /* What a tile's (or cell's) dataset says is shown in `view`: the sprite when there is one. */
  DGX.pixel.shown = function (data, view) {
    if (view === "sprite" && data.sprite) {
      return { sprite: true, src: data.sprite, w: Number(data.spriteW) || 0, h: Number(data.spriteH) || 0 };
    }
    return { sprite: false, src: data.full, w: Number(data.w) || 0, h: Number(data.h) || 0 };
  };

  function el(id) { return document.getElementById(id); }

  function text(tag, content, cls) {
    var node = document.createElement(tag);
    node.textContent = content;
    if (cls) node.className = cls;
    return node;
  }

  /* The overlay. `data` is a tile's dataset (see _gallery_grid.html). */
  DGX.Viewer = function (root) {
    var stage = el("viewer-stage"), img = el("viewer-img"), gridEl = el("viewer-grid"), tileEl = el("viewer-tile");
    var state = { z: Number(localStorage.getItem("dgx.viewer.zoom")) || 0, grid: localStorage.getItem("dgx.viewer.grid") === "1",
                  tile: localStorage.getItem("dgx.viewer.tile") === "1",
                  view: DGX.spriteView.get(), data: null, lastFocus: null };

    function shown() { return DGX.pixel.shown(state.data, state.view); }

    /* The art-pixel grid of the original: the one the sprite was read from. */
    function artCell() {
      var now = shown();
      if (now.sprite || !(Number(state.data.pixelSize) > 1)) return null;
      var phase = String(state.data.phase || "0,0").split(",");
      return { size: Number(state.data.pixelSize), x: Number(phase[0]) || 0, y: Number(phase[1]) || 0 };
    }
    function tiled() { return !!(tileEl && state.data && state.data.seam && state.tile); }
    function natural() {
      var now = shown();
      var w = now.w || img.naturalWidth, h = now.h || img.naturalHeight;
      return tiled() ? { w: 3 * w, h: 3 * h } : { w: w, h: h };
    }

    // Zoom and pan are pixelview.js's: whole zooms of the shown picture's own pixels, at the cursor.
    // Sprites go up to 16x (a 48 px sprite fills a screen); a 1024 px original stops at 8x.
    var pv = DGX.pixelView(stage, {
      canvas: el("viewer-canvas"), img: img, grid: gridEl, shrink: true, zoom: 0,
      size: function () { return state.data ? natural() : { w: 0, h: 0 }; },
      max: function () { return state.data && shown().sprite ? SPRITE_ZOOM_MAX : ORIGINAL_ZOOM_MAX; },
      cell: function () { return state.data ? artCell() : null; },
      draw: function (scale) { return state.data ? drawTile(scale) : false; },
      onChange: function () { reflectZoom(); },
    });
    pv.grid(state.grid);

    function reflectZoom() {
      if (!state.data) return;
      var now = shown(), z = pv.state.shown, cell = artCell();
      state.z = pv.state.z;
      localStorage.setItem("dgx.viewer.zoom", String(state.z));
      root.querySelectorAll("[data-zoom]").forEach(function (b) {
        b.setAttribute("aria-pressed", String(Number(b.dataset.zoom) === state.z));
        if (b.hasAttribute("data-sprite-only")) b.disabled = !now.sprite;
      });
      var g = root.querySelector("[data-grid-toggle]");
      if (g) {
        g.setAttribute("aria-pressed", String(state.grid));
        g.title = cell ? "Grid (g): the art pixels the sprite was read from (" + cell.size + " px)" : "Grid (g): one cell per pixel";
      }
      root.dataset.zoom = String(state.z || "fit");
      root.dataset.view = now.sprite ? "sprite" : "original";
      root.dataset.shownZoom = String(z);
    }

    function applyZoom(recentre) {
      if (!state.data) return;
      var button = root.querySelector("[data-tile-toggle]");
      var can = !!(tileEl && state.data.seam);
      if (button) { button.hidden = !can; button.setAttribute("aria-pressed", String(can && state.tile)); }
      pv.zoom(state.z, null);
      if (recentre) pv.layout(true);
      reflectZoom();
    }

    /* A tile (an image with a seam score) repeated 3 x 3 as a CSS background, at a whole zoom:
     * its seams show where its edges do not meet. Returns whether the tile is what is shown. */
    function drawTile(scale) {
      var now = shown();
      var w = now.w || img.naturalWidth, h = now.h || img.naturalHeight;
      if (!tiled() || !w || !h) {
        if (tileEl) tileEl.hidden = true;
        img.hidden = false;
        root.dataset.tile = "0";
        DGX.pixel.zoom(img, scale);
        return false;
      }
      var z = Math.max(1, Math.round(scale));
      img.hidden = true;
      gridEl.hidden = true;
      tileEl.hidden = false;
      tileEl.style.width = 3 * w * z + "px";
      tileEl.style.height = 3 * h * z + "px";
      tileEl.style.backgroundImage = 'url("' + now.src + '")';
      tileEl.style.backgroundSize = w * z + "px " + h * z + "px";
      root.dataset.tile = "1";
      return true;
    }

    function swatches(list) {
      var box = el("viewer-palette"), ul = el("viewer-swatches");
      ul.textContent = "";
      box.hidden = !list.length;
      el("viewer-palette-label").textContent = "Palette · " + list.length + " colour" + (list.length === 1 ? "" : "s") + " (click to copy)";
      list.forEach(function (hex) {
        var li = document.createElement("li"), b = document.createElement("button");
        b.type = "button";
        b.className = "swatch";
        b.style.background = hex;
        b.dataset.hex = hex;
        b.title = hex + " (click to copy)";
        b.setAttribute("aria-label", hex);
        li.appendChild(b);
        ul.appendChild(li);
      });
    }

    function spriteState(data, now) {
      var s = data.spriteState || "none";
      if (now.sprite) {
        var size = data.spriteW ? data.spriteW + "×" + data.spriteH : "";
        return "sprite " + size + (["waiting", "pending", "running"].indexOf(s) >= 0 ? " · finishing again…" : "");
      }
      if (state.view !== "sprite") return data.sprite ? "original · sprite ready (o)" : "";
      if (s === "failed") return "no sprite: finishing failed";
      if (["waiting", "pending", "running"].indexOf(s) >= 0) return "finishing… (showing the original)";
      return "no sprite for this image";
    }

    function render(data) {
      state.data = data;
      var now = shown();
      img.dataset.w = now.w || "";
      img.dataset.h = now.h || "";
      img.alt = data.prompt + ", seed " + data.seed + (now.sprite ? " (sprite)" : "");
      if (img.getAttribute("src") !== now.src) img.src = now.src;
      applyZoom(true);
      root.querySelectorAll("[data-view]").forEach(function (b) {
        b.setAttribute("aria-pressed", String(b.dataset.view === state.view));
      });
      var ss = el("viewer-sprite-state");
      ss.textContent = spriteState(data, now);
      ss.title = data.spriteError || "";
      swatches(data.palette ? String(data.palette).split(",") : []);
      var spritePng = el("viewer-sprite-png");
      spritePng.hidden = !data.sprite;
      if (data.sprite) spritePng.href = data.sprite + "&download=1";
      el("viewer-prompt").textContent = data.prompt;
      var meta = el("viewer-meta");
      meta.textContent = "";
      [["Job", "#" + data.job + " · sprite " + String(data.seq).padStart(4, "0")],
       ["Seed", data.seed + (Number(data.batchIndex) ? "  (batch index " + data.batchIndex + ")" : "")],
       ["Size", data.w + "×" + data.h],
       ["Profile", data.profile], ["Checkpoint", data.checkpoint || "—"], ["LoRA", data.lora || "none"],
       ["Steps · CFG", data.steps + " · " + data.cfg], ["Sampler", data.sampler], ["Saved", data.created]]
        .concat(data.sprite ? [["Sprite", data.spriteW + "×" + data.spriteH + (data.pixelSize ? " · art pixel " + data.pixelSize + " px" : "")]] : [])
        .concat(data.spriteError ? [["Finishing", data.spriteError]] : [])
        .concat(data.seam ? [["Seam score", data.seam + " (0: repeats seamlessly; t: tile 3×3)"]] : [])
        .forEach(function (row) { meta.appendChild(text("dt", row[0])); meta.appendChild(text("dd", row[1])); });
      el("viewer-png").href = data.full + "?download=1";
      el("viewer-json").href = data.meta + "?download=1";
      el("viewer-job").href = "/jobs/" + data.job + "/";
      reflect(data);
    }

    function reflect(data) {
      var s = el("viewer-state");
      s.textContent = "";
      s.appendChild(text("span", data.review, "rv-state rv-state-" + data.review));
      if (data.starred === "1") s.appendChild(text("span", "★ starred", "star-on"));
      if (data.canChange !== "1") s.appendChild(text("span", "view only: not your job", "muted"));
      root.dataset.review = data.review;
      root.querySelectorAll("[data-review]").forEach(function (b) {
        b.setAttribute("aria-pressed", String(b.dataset.review === data.review));
        b.disabled = data.canChange !== "1";
      });
      var star = root.querySelector("[data-star]");
      if (star) { star.setAttribute("aria-pressed", String(data.starred === "1")); star.disabled = data.canChange !== "1"; }
    }

    img.addEventListener("load", function () { if (state.data) { pv.layout(); reflectZoom(); } });  // sizes a sprite without info

    return {
      get open() { return !root.hidden; },
      get data() { return state.data; },
      get shown() { return state.data ? shown() : null; },
      view: function (value) {
        state.view = value === "original" ? "original" : "sprite";
        if (state.data) render(state.data);
      },
      /* The shown image's tile changed (a sprite made meanwhile): draw it again. */
      refresh: function (data) { if (!root.hidden && state.data && state.data.id === data.id) render(data); },
      /* One whole zoom step up or down (sprites 1x..16x, originals 1x..8x), at the cursor. */
      zoomStep: function (direction) { if (state.data) { pv.step(direction); reflectZoom(); } },
      /* The shared pixel keys (+ - 0 g b, arrows pan): pixelview.js. */
      key: function (event) { var done = pv.key(event); reflectZoom(); return done; },
      toggleBackground: function () { pv.toggleBackground(); },
      get pixelView() { return pv; },
      show: function (data, position) {
        if (root.hidden) {
          state.lastFocus = document.activeElement;
          root.hidden = false;
          document.body.classList.add("viewer-open");
        }
        el("viewer-pos").textContent = position || "";
        render(data);
      },
      reflect: reflect,
      zoom: function (z) {
        state.z = z;
        localStorage.setItem("dgx.viewer.zoom", String(z));
        if (state.data) { pv.zoom(z); reflectZoom(); }
      },
      toggleTile: function () {
        if (!state.data || !state.data.seam || !tileEl) return;
        state.tile = !state.tile;
        localStorage.setItem("dgx.viewer.tile", state.tile ? "1" : "0");
        applyZoom(true);
      },
      toggleGrid: function () {
        state.grid = !state.grid;
        localStorage.setItem("dgx.viewer.grid", state.grid ? "1" : "0");
        pv.grid(state.grid);
        reflectZoom();
      },
      close: function () {
        root.hidden = true;
        document.body.classList.remove("viewer-open");
        img.removeAttribute("src");
        state.data = null;
        if (state.lastFocus && state.lastFocus.focus) state.lastFocus.focus({ preventScroll: true });
      },
      relayout: function () { if (state.data) { pv.layout(); reflectZoom(); } },
    };
  };
})();
