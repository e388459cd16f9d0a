/* The job page's Sheets and Animation cards (issue 13).
 *
 * Sheets: after an export (the form, or "Export animation") the card's list is drawn again from
 * ?partial=sheets.
 *
 * Player: a canvas cycling the kept frames in the strip's order (the sprite where there is one,
 * else the original) at the form's fps; loop, ping-pong or once; onion skin draws the frame
 * played before at 30 % under the current one; play / pause, step; whole zooms only, nearest
 * neighbour. Frames of different sizes sit bottom-centre, as in a sheet's cell.
 *
 * Frame strip (owner or staff): click selects a frame; ← / → move it, Shift+← / → select the
 * neighbour, x or Delete drops it (greyed, at the end) or restores it; frames also move by drag
 * and drop. "Save frame order" posts order (kept ids, in play order) and dropped; "Export
 * animation" saves first when the strip changed.
 */
(function () {
  "use strict";
  var DGX = (window.DGX = window.DGX || {});

  function toast(text, kind) { if (DGX.toast) DGX.toast(text, kind); }

  function csrf() {
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    if (input) return input.value;
    var m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }

  function post(url, fields) {
    var body = new FormData();
    Object.keys(fields).forEach(function (k) { body.append(k, fields[k]); });
    return fetch(url, {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "X-Requested-With": "fetch", "X-CSRFToken": csrf(), Accept: "application/json" },
    }).then(function (r) {
      if (r.redirected && r.url.indexOf("/accounts/login/") >= 0) { location.href = r.url; throw new Error("signed out"); }
      if (r.status === 403) throw new Error("Not allowed: only the job's owner or staff may do that.");
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (!r.ok || data.ok === false) throw new Error(data.message || "The server answered " + r.status + ".");
        return data;
      });
    });
  }

  /* --- the Sheets card ---------------------------------------------------------------------- */

  var sheetsList = document.querySelector('[data-partial="sheets"]');
  if (sheetsList) {
    var config = JSON.parse(document.getElementById("job-config").textContent);
    var parts = DGX.partials("/jobs/" + config.job + "/");
    document.addEventListener("dgx:action", function (event) {
      var form = event.detail && event.detail.form;
      if (form && /\/sheets\/$/.test(form.getAttribute("action") || "")) parts.refresh("sheets");
    });
  }

  /* --- the Animation card ------------------------------------------------------------------- */

  var root = document.getElementById("animation");
  var strip = document.getElementById("frame-strip");
  if (!root || !strip) return;
  var canvas = document.getElementById("anim-canvas");
  var ctx = canvas.getContext("2d");
  var pos = document.getElementById("anim-pos");
  var fpsInput = document.getElementById("anim-fps");
  var loopSelect = document.getElementById("anim-loop");
  var onionBox = document.getElementById("anim-onion");
  var zoomSelect = document.getElementById("anim-zoom");
  var playButton = root.querySelector('[data-anim="play"]');
  var saveButton = root.querySelector("[data-frames-save]");
  var exportButton = document.getElementById("anim-export-button");
  var canChange = root.dataset.canChange === "1";
  var ONION_ALPHA = 0.3;
  var FIT_BOX = 320;  // px: "fit" is the largest whole zoom (up to 16x) that keeps the frame inside it
  var pictures = {};
  var state = { index: 0, direction: 1, playing: false, timer: null, dirty: false, saving: null };

  /* Frames ------------------------------------------------------------------------------------ */

  function items() { return Array.prototype.slice.call(strip.querySelectorAll("li[data-id]")); }
  function isDropped(li) { return li.dataset.dropped === "1"; }
  function kept() { return items().filter(function (li) { return !isDropped(li); }); }

  function frames() {
    return kept().map(function (li) {
      var sprite = !!li.dataset.sprite;
      return {
        li: li, id: li.dataset.id, src: sprite ? li.dataset.sprite : li.dataset.full,
        w: Number(sprite ? li.dataset.spriteW : li.dataset.w) || 0,
        h: Number(sprite ? li.dataset.spriteH : li.dataset.h) || 0,
      };
    });
  }

  function picture(frame) {
    var img = pictures[frame.src];
    if (!img) {
      img = pictures[frame.src] = new Image();
      img.addEventListener("load", function () { draw(); });
      img.src = frame.src;
    }
    return img;
  }

  /* Settings (read live from the form: a change plays at once, "Save playback" keeps it) ------ */

  function fps() { return Math.max(1, Math.min(60, Number(fpsInput && fpsInput.value) || 10)); }
  function loopMode() { return loopSelect ? loopSelect.value : "loop"; }
  function onion() { return !!(onionBox && onionBox.checked); }

  /* Drawing ----------------------------------------------------------------------------------- */

  function box(list) {
    var w = 0, h = 0;
    list.forEach(function (f) {
      var img = pictures[f.src];
      w = Math.max(w, f.w || (img && img.naturalWidth) || 0);
      h = Math.max(h, f.h || (img && img.naturalHeight) || 0);
    });
    return { w: w || 1, h: h || 1 };
  }

  function zoomFor(b) {
    var z = Number(zoomSelect && zoomSelect.value) || 0;
    if (z) return z;
    return Math.max(1, Math.min(16, Math.floor(Math.min(FIT_BOX / b.w, FIT_BOX / b.h))));
  }

  function paint(frame, b, z) {
    var img = picture(frame);
    if (!img.complete || !img.naturalWidth) return;
    var w = frame.w || img.naturalWidth, h = frame.h || img.naturalHeight;
    ctx.drawImage(img, Math.floor((b.w - w) / 2) * z, (b.h - h) * z, w * z, h * z);
  }

  function previous(n) {
    var mode = loopMode(), i = state.index - state.direction;
    if (n < 2) return null;
    if (i >= 0 && i < n) return i;
    if (mode === "loop") return (i + n) % n;
    return null;  // the first frame of "once" (or a ping-pong turn) has nothing before it
  }

  function draw() {
    var list = frames();
    items().forEach(function (li) { li.classList.remove("is-playing"); });
    if (!list.length) {
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      pos.textContent = "no frames kept";
      root.dataset.frame = "";
      root.dataset.frameId = "";
      return;
    }
    if (state.index >= list.length) state.index = list.length - 1;
    if (state.index < 0) state.index = 0;
    var b = box(list), z = zoomFor(b);
    var W = b.w * z, H = b.h * z;
    if (canvas.width !== W || canvas.height !== H) { canvas.width = W; canvas.height = H; }
    ctx.imageSmoothingEnabled = false;
    ctx.clearRect(0, 0, W, H);
    var before = onion() ? previous(list.length) : null;
    if (before !== null) {
      ctx.globalAlpha = ONION_ALPHA;
      paint(list[before], b, z);
    }
    ctx.globalAlpha = 1;
    paint(list[state.index], b, z);
    var current = list[state.index];
    current.li.classList.add("is-playing");
    root.dataset.frame = String(state.index);
    root.dataset.frameId = current.id;
    root.dataset.zoom = String(z);
    pos.textContent = (state.index + 1) + " / " + list.length + " · " + z + "×";
  }

  /* Playing ----------------------------------------------------------------------------------- */

  function tick() {
    state.timer = null;
    var n = frames().length;
    if (!state.playing || !n) return;
    var mode = loopMode(), next = state.index + state.direction;
    if (mode === "pingpong" && n > 1) {
      if (next >= n || next < 0) { state.direction = -state.direction; next = state.index + state.direction; }
    } else if (next >= n) {
      if (mode === "once") { pause(); return; }
      next = 0;
    }
    state.index = next;
    draw();
    schedule();
  }

  function schedule() {
    clearTimeout(state.timer);
    state.timer = state.playing ? setTimeout(tick, 1000 / fps()) : null;
  }

  function play() {
    var n = frames().length;
    if (!n) return;
    if (loopMode() === "once" && state.index >= n - 1) state.index = 0;
    if (loopMode() !== "pingpong") state.direction = 1;
    state.playing = true;
    root.dataset.playing = "1";
    playButton.textContent = "Pause";
    playButton.setAttribute("aria-pressed", "true");
    draw();
    schedule();
  }

  function pause() {
    state.playing = false;
    root.dataset.playing = "0";
    playButton.textContent = "Play";
    playButton.setAttribute("aria-pressed", "false");
    schedule();
  }

  function step(d) {
    var n = frames().length;
    if (!n) return;
    pause();
    state.direction = 1;
    state.index = (state.index + d + n) % n;
    draw();
  }

  playButton.addEventListener("click", function () { if (state.playing) pause(); else play(); });
  root.querySelectorAll("[data-anim=prev], [data-anim=next]").forEach(function (b) {
    b.addEventListener("click", function () { step(b.dataset.anim === "next" ? 1 : -1); });
  });
  [fpsInput, loopSelect, onionBox, zoomSelect].forEach(function (el) {
    if (!el) return;
    el.addEventListener("change", function () { draw(); schedule(); });
    el.addEventListener("input", function () { draw(); schedule(); });
  });

  /* Space plays, "," and "." step: only while the card has the focus (the page keeps its keys). */
  root.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    var t = event.target;
    if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT|BUTTON|SUMMARY)$/.test(t.tagName))) return;
    if (event.key === " ") { if (state.playing) pause(); else play(); }
    else if (event.key === ",") step(-1);
    else if (event.key === ".") step(1);
    else return;
    event.preventDefault();
  });

  /* The strip --------------------------------------------------------------------------------- */

  var selected = null;

  function select(li, focus) {
    if (!li) return;
    items().forEach(function (x) {
      x.setAttribute("aria-selected", String(x === li));
      x.tabIndex = x === li ? 0 : -1;
    });
    selected = li;
    if (focus !== false) li.focus({ preventScroll: false });
    var i = kept().indexOf(li);
    if (i >= 0 && !state.playing) { state.index = i; draw(); }
  }

  function renumber() {
    var n = 0;
    items().forEach(function (li) {
      var label = li.querySelector(".frame-pos");
      if (isDropped(li)) { if (label) label.textContent = "dropped"; }
      else { n += 1; if (label) label.textContent = String(n); }
    });
    strip.dataset.kept = String(n);
  }

  function changed(li) {
    // Dropped frames stay at the end, in the order they were dropped.
    items().filter(isDropped).forEach(function (x) { strip.appendChild(x); });
    state.dirty = true;
    root.dataset.dirty = "1";
    if (saveButton) saveButton.disabled = false;
    renumber();
    if (li) select(li);
    draw();
  }

  function setDropped(li, on) {
    li.dataset.dropped = on ? "1" : "0";
    li.classList.toggle("is-dropped", on);
  }

  function moveBy(li, d) {
    if (!li || isDropped(li)) return;
    var list = kept(), i = list.indexOf(li), j = i + d;
    if (j < 0 || j >= list.length) return;
    strip.insertBefore(li, d < 0 ? list[j] : list[j].nextSibling);
    changed(li);
  }

  function toggleDrop(li) {
    if (!li) return;
    if (isDropped(li)) {
      setDropped(li, false);
      var firstDropped = items().filter(isDropped)[0];
      strip.insertBefore(li, firstDropped || null);  // back at the end of the kept frames
    } else {
      setDropped(li, true);
      strip.appendChild(li);
    }
    changed(li);
  }

  function neighbour(li, d) {
    var list = items(), i = list.indexOf(li);
    return list[Math.max(0, Math.min(list.length - 1, (i < 0 ? 0 : i) + d))];
  }

  strip.addEventListener("click", function (event) {
    var li = event.target.closest("li[data-id]");
    if (li) select(li);
  });

  strip.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var li = (event.target.closest && event.target.closest("li[data-id]")) || selected;
    if (!li) return;
    var key = event.key;
    if (key === "ArrowLeft" || key === "ArrowRight") {
      var d = key === "ArrowLeft" ? -1 : 1;
      if (event.shiftKey || !canChange) select(neighbour(li, d)); else moveBy(li, d);
    } else if (canChange && (key === "x" || key === "X" || key === "Delete")) {
      toggleDrop(li);
    } else if (key === "Home") {
      select(items()[0]);
    } else if (key === "End") {
      select(items()[items().length - 1]);
    } else {
      return;
    }
    // The job page's own keys (x cancels the job) must not see a key the strip used.
    event.preventDefault();
    event.stopPropagation();
  });

  root.querySelectorAll("[data-frame-move]").forEach(function (b) {
    b.addEventListener("click", function () { moveBy(selected, Number(b.dataset.frameMove)); });
  });
  var dropButton = root.querySelector("[data-frame-drop]");
  if (dropButton) dropButton.addEventListener("click", function () { toggleDrop(selected); });

  /* Drag and drop: in front of the frame under the pointer, or behind it past its middle; onto a
   * dropped frame drops it, a dropped frame brought among the kept ones is restored. */
  var dragging = null;
  function clearMarks() {
    items().forEach(function (x) { x.classList.remove("drop-before", "drop-after", "is-dragging"); });
  }
  function side(li, event) {
    var r = li.getBoundingClientRect();
    return event.clientX > r.left + r.width / 2 ? "after" : "before";
  }
  strip.addEventListener("dragstart", function (event) {
    var li = event.target.closest && event.target.closest("li[data-id]");
    if (!li || !canChange) { event.preventDefault(); return; }
    dragging = li;
    li.classList.add("is-dragging");
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", li.dataset.id);
  });
  strip.addEventListener("dragover", function (event) {
    if (!dragging) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "move";
    var li = event.target.closest("li[data-id]");
    items().forEach(function (x) { x.classList.remove("drop-before", "drop-after"); });
    if (li && li !== dragging) li.classList.add("drop-" + side(li, event));
  });
  strip.addEventListener("drop", function (event) {
    if (!dragging) return;
    event.preventDefault();
    var li = dragging, target = event.target.closest("li[data-id]");
    dragging = null;
    clearMarks();
    if (!target || target === li) return;
    if (isDropped(target)) {
      setDropped(li, true);
      strip.appendChild(li);
    } else {
      setDropped(li, false);
      strip.insertBefore(li, side(target, event) === "after" ? target.nextSibling : target);
    }
    changed(li);
  });
  strip.addEventListener("dragend", function () { dragging = null; clearMarks(); });

  /* Saving ------------------------------------------------------------------------------------ */

  function save() {
    if (state.saving) return state.saving;
    var order = kept().map(function (li) { return li.dataset.id; });
    var dropped = items().filter(isDropped).map(function (li) { return li.dataset.id; });
    if (saveButton) saveButton.disabled = true;
    state.saving = post(root.dataset.framesUrl, { order: order.join(","), dropped: dropped.join(",") })
      .then(function (data) {
        state.dirty = false;
        root.dataset.dirty = "0";
        toast(data.message, "success");
        return data;
      }, function (err) {
        if (saveButton) saveButton.disabled = false;
        toast(err.message, "error");
        throw err;
      }).finally(function () { state.saving = null; });
    return state.saving;
  }
  if (saveButton) saveButton.addEventListener("click", function () { save().catch(function () { /* said */ }); });

  if (exportButton) {
    exportButton.addEventListener("click", function (event) {
      if (!state.dirty) return;  // the form posts itself (data-enhance)
      event.preventDefault();
      var form = exportButton.form;
      save().then(function () { if (form.requestSubmit) form.requestSubmit(exportButton); else form.submit(); },
                  function () { /* said */ });
    });
  }

  window.addEventListener("beforeunload", function (event) {
    if (state.dirty) { event.preventDefault(); event.returnValue = ""; }
  });

  /* Start: thumbnails show the sprite where there is one; the first frame is drawn. -------- */
  items().forEach(function (li) {
    var img = li.querySelector("img");
    if (img && li.dataset.sprite) img.src = li.dataset.sprite;
  });
  renumber();
  if (items().length) { selected = items()[0]; selected.setAttribute("aria-selected", "true"); }
  root.addEventListener("toggle", function () { if (root.open) draw(); });
  draw();
})();
