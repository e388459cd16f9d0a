/* Pixel-exact viewing, shared by the gallery viewer and the compare page (no libraries).
 *
 *   DGX.pixel.zoom(img, z)         zoom z (1, 2, 4, 8) from the image's natural size (data-w/data-h,
 *                                  known before it loads); z = 0: CSS fits it to its box
 *   DGX.pixel.grid(el, z, on)      a one-pixel grid over an image shown at zoom z
 *   DGX.pixel.fitZoom(w, h, W, H)  the largest of 8/4/2/1 that fits a W x H box (at least 1)
 *   DGX.Viewer(root)               the gallery's overlay: show(data), zoom(z), toggleGrid(), close()
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
    grid: function (el, z, on) {
      if (!el) return;
      el.hidden = !on;
      if (!on) return;
      var img = el.parentNode && el.parentNode.querySelector("img");
      var step = z;
      if (!z && img) {  // fit: one grid cell per source pixel at whatever size the image has
        var n = natural(img);
        step = n.w ? img.getBoundingClientRect().width / n.w : 1;
      }
      el.style.backgroundSize = step + "px " + step + "px";
      el.classList.toggle("dense", step < 4);
    },
    fitZoom: function (w, h, boxW, boxH) {
      for (var i = ZOOMS.length - 1; i >= 0; i--) {
        if (w * ZOOMS[i] <= boxW && h * ZOOMS[i] <= boxH) return ZOOMS[i];
      }
      return 1;
    },
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
    var stage = el("viewer-stage"), img = el("viewer-img"), gridEl = el("viewer-grid");
    var state = { z: Number(localStorage.getItem("dgx.viewer.zoom")) || 0, grid: localStorage.getItem("dgx.viewer.grid") === "1", data: null, lastFocus: null };

    function applyZoom() {
      if (!state.data) return;
      var z = state.z;
      if (!z) {  // fit: the largest integer zoom that fits the stage; scaled down only if 1x does not
        var w = Number(state.data.w), h = Number(state.data.h);
        var boxW = stage.clientWidth - 32, boxH = stage.clientHeight - 32;
        z = DGX.pixel.fitZoom(w, h, boxW, boxH);
        if (w > boxW || h > boxH) z = Math.max(0.05, Math.min(boxW / w, boxH / h));
      }
      DGX.pixel.zoom(img, z);
      DGX.pixel.grid(gridEl, z, state.grid);
      root.querySelectorAll("[data-zoom]").forEach(function (b) {
        b.setAttribute("aria-pressed", String(Number(b.dataset.zoom) === state.z));
      });
      var g = root.querySelector("[data-grid-toggle]");
      if (g) g.setAttribute("aria-pressed", String(state.grid));
      root.dataset.zoom = String(state.z || "fit");
    }

    function render(data) {
      state.data = data;
      img.dataset.w = data.w;
      img.dataset.h = data.h;
      img.alt = data.prompt + ", seed " + data.seed;
      img.src = data.full;
      applyZoom();
      el("viewer-prompt").textContent = data.prompt;
      var meta = el("viewer-meta");
      meta.textContent = "";
      [["Job", "#" + data.job + " · sprite " + String(data.seq).padStart(4, "0")],
       ["Seed", data.seed + (Number(data.batchIndex) ? "  (batch index " + data.batchIndex + ")" : "")],
       ["Size", data.w + "×" + data.h],
       ["Profile", data.profile], ["Checkpoint", data.checkpoint || "—"], ["LoRA", data.lora || "none"],
       ["Steps · CFG", data.steps + " · " + data.cfg], ["Sampler", data.sampler], ["Saved", data.created]]
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

    return {
      get open() { return !root.hidden; },
      get data() { return state.data; },
      show: function (data, position) {
        if (root.hidden) {
          state.lastFocus = document.activeElement;
          root.hidden = false;
          document.body.classList.add("viewer-open");
        }
        el("viewer-pos").textContent = position || "";
        render(data);
        stage.scrollTop = 0;
        stage.scrollLeft = 0;
      },
      reflect: reflect,
      zoom: function (z) {
        state.z = z;
        localStorage.setItem("dgx.viewer.zoom", String(z));
        applyZoom();
      },
      toggleGrid: function () {
        state.grid = !state.grid;
        localStorage.setItem("dgx.viewer.grid", state.grid ? "1" : "0");
        applyZoom();
      },
      close: function () {
        root.hidden = true;
        document.body.classList.remove("viewer-open");
        img.removeAttribute("src");
        state.data = null;
        if (state.lastFocus && state.lastFocus.focus) state.lastFocus.focus({ preventScroll: true });
      },
      relayout: applyZoom,
    };
  };
})();
