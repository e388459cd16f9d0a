/* The gallery: keyboard review, selection and bulk actions, the viewer, live new images.
 *
 * Keys (ignored while typing in a field):
 *   arrows / j k   move (grid: spatially; viewer: next / previous, across pages)
 *   Enter          open the viewer on the current tile      Esc   close the viewer / help
 *   1 2 4 8, f     zoom, fit (viewer)                      g     pixel grid (viewer)
 *   a r u          approve / reject / unreviewed (Shift: and move on)   s  star
 *   x              select / unselect (bulk actions, zip)   ?     keyboard help
 *   o              sprite / original (tiles and viewer; remembered)   + -   sprite zoom 1x..16x
 *   t              tile 3x3 (viewer; images with a seam score)
 *   wheel, drag    zoom at the cursor, pan (viewer; pixelview.js)   shift + arrows pan, b background
 *
 * Sprite view: a tile shows its sprite at the largest whole scale that fits (pixelated), or the
 * original with a "finishing…" badge until the sprite exists; sprite events redraw tiles live.
 */
(function () {
  "use strict";
  var DGX = (window.DGX = window.DGX || {});
  var grid = document.getElementById("grid");
  if (!grid) return;
  var viewerRoot = document.getElementById("viewer");
  var viewer = DGX.Viewer(viewerRoot);
  var selbar = document.getElementById("selbar");
  var help = document.getElementById("help");
  var current = null;  // the tile under the keyboard cursor (an element: live tiles shift indexes)
  var lastChecked = null;
  var SEL_KEY = "dgx.gallery.selection";
  var selection = new Set(JSON.parse(sessionStorage.getItem(SEL_KEY) || "[]"));

  function toast(text, kind) { if (DGX.toast) DGX.toast(text, kind); }
  function tiles() { return Array.prototype.slice.call(grid.querySelectorAll(".gtile")); }
  function tileById(id) { return document.getElementById("img-" + id); }

  function csrf() {
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    if (input) return input.value;
    var m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }

  function post(url, fields) {
    var body = new FormData();
    Object.keys(fields).forEach(function (k) {
      [].concat(fields[k]).forEach(function (v) { body.append(k, v); });
    });
    return fetch(url, {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "X-Requested-With": "fetch", "X-CSRFToken": csrf(), Accept: "application/json" },
    }).then(function (r) {
      if (r.redirected && r.url.indexOf("/accounts/login/") >= 0) { location.href = r.url; throw new Error("signed out"); }
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (r.status === 403) throw new Error(data.error || "Only the job's owner or staff may review its images.");
        if (!r.ok) throw new Error(data.error || "The server answered " + r.status + ".");
        return data;
      });
    });
  }

  function urlFor(template, id) { return template.replace("/0/", "/" + id + "/"); }

  /* --- sprite / original --------------------------------------------------------------------- */

  var view = DGX.spriteView.get();
  var SPRITE_ATTRS = ["data-sprite-state", "data-sprite", "data-sprite-w", "data-sprite-h", "data-pixel-size",
                      "data-phase", "data-palette", "data-sprite-error", "data-seam"];

  function scaleTile(tile) {
    var img = tile.querySelector(".gtile-open img");
    if (!img) return;
    if (!tile.classList.contains("is-sprite")) { img.style.width = ""; img.style.height = ""; return; }
    var w = Number(tile.dataset.spriteW) || img.naturalWidth, h = Number(tile.dataset.spriteH) || img.naturalHeight;
    var box = tile.querySelector(".gtile-open").clientWidth;
    if (!w || !h || !box) return;
    var k = Math.floor(Math.min(box / w, box / h));
    // A whole scale keeps every art pixel square; a sprite larger than the tile is fitted instead.
    img.style.width = k >= 1 ? w * k + "px" : "";
    img.style.height = k >= 1 ? h * k + "px" : "";
    tile.dataset.scale = String(Math.max(k, 0));
  }

  function applyTile(tile) {
    var img = tile.querySelector(".gtile-open img");
    if (!img) return;
    var sprite = view === "sprite" && !!tile.dataset.sprite;
    tile.classList.toggle("is-sprite", sprite);
    var want = sprite ? tile.dataset.sprite : (tile.dataset.thumb || img.getAttribute("src"));
    if (img.getAttribute("src") !== want) img.setAttribute("src", want);
    if (!img.dataset.scaling) {  // a sprite's size may only be known once it loads
      img.dataset.scaling = "1";
      img.addEventListener("load", function () { scaleTile(tile); });
    }
    scaleTile(tile);
  }

  function setView(value) {
    view = value === "original" ? "original" : "sprite";
    DGX.spriteView.set(view);
    grid.classList.toggle("show-sprites", view === "sprite");
    document.querySelectorAll(".view-switch [data-view]").forEach(function (b) {
      b.setAttribute("aria-pressed", String(b.dataset.view === view));
    });
    tiles().forEach(applyTile);
    viewer.view(view);
  }

  document.querySelectorAll(".view-switch [data-view]").forEach(function (b) {
    b.addEventListener("click", function () { setView(b.dataset.view); });
  });

  /* Tiles whose sprite changed are drawn again by id and their sprite data copied over (the tile
   * keeps its place, selection and cursor). */
  var refreshIds = new Set(), refreshTimer = null, refreshing = false;
  function refreshLater(ids) {
    ids.forEach(function (id) { if (tileById(id)) refreshIds.add(String(id)); });
    if (!refreshIds.size) return;
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refreshTiles, 250);
  }
  function refreshTiles() {
    if (refreshing) { refreshTimer = setTimeout(refreshTiles, 250); return; }
    var ids = Array.from(refreshIds).slice(0, 60);
    ids.forEach(function (id) { refreshIds.delete(id); });
    if (!ids.length) return;
    refreshing = true;
    fetch(grid.dataset.partial + "&ids=" + ids.join(","), {
      credentials: "same-origin", headers: { "X-Requested-With": "fetch" },
    }).then(function (r) { return r.ok ? r.text() : ""; }).then(function (html) {
      var holder = document.createElement("div");
      holder.innerHTML = html || "";
      holder.querySelectorAll(".gtile").forEach(function (fresh) {
        var tile = tileById(fresh.dataset.id);
        if (!tile) return;
        SPRITE_ATTRS.forEach(function (name) {
          if (fresh.hasAttribute(name)) tile.setAttribute(name, fresh.getAttribute(name));
          else tile.removeAttribute(name);
        });
        applyTile(tile);
        viewer.refresh(tile.dataset);
      });
    }).catch(function () { /* a reload shows the truth */ }).finally(function () {
      refreshing = false;
      if (refreshIds.size) refreshTimer = setTimeout(refreshTiles, 250);
    });
  }

  function spriteReady(d) {
    var tile = tileById(d.image);
    if (!tile) return;
    // Swap at once (the size comes with the event); the palette and grid follow with the redraw.
    tile.dataset.sprite = urlFor(grid.dataset.spriteUrl, d.image) + "?v=" + d.run;
    tile.dataset.spriteState = "done";
    tile.dataset.spriteW = d.width;
    tile.dataset.spriteH = d.height;
    applyTile(tile);
    viewer.refresh(tile.dataset);
    refreshLater([d.image]);
  }

  /* --- tile state ------------------------------------------------------------------------ */

  function setTileState(tile, review, starred) {
    if (!tile) return;
    if (review) {
      tile.classList.remove("review-unreviewed", "review-approved", "review-rejected");
      tile.classList.add("review-" + review);
      tile.dataset.review = review;
    }
    if (starred !== undefined && starred !== null) {
      tile.dataset.starred = starred ? "1" : "0";
      tile.classList.toggle("is-starred", !!starred);
    }
    if (viewer.open && viewer.data && viewer.data.id === tile.dataset.id) viewer.reflect(tile.dataset);
  }

  function review(tile, value, advance) {
    if (!tile) return;
    if (tile.dataset.canChange !== "1") { toast("Only the job's owner or staff may review its images.", "error"); return; }
    var before = tile.dataset.review;
    setTileState(tile, value);  // at once: review is a fast loop; undone if the server refuses
    post(urlFor(grid.dataset.reviewUrl, tile.dataset.id), { review: value })
      .then(function (data) { setTileState(tile, data.review, data.starred); })
      .catch(function (err) { setTileState(tile, before); toast(err.message, "error"); });
    if (advance) move(1);
  }

  function star(tile) {
    if (!tile) return;
    if (tile.dataset.canChange !== "1") { toast("Only the job's owner or staff may star its images.", "error"); return; }
    var next = tile.dataset.starred !== "1";
    setTileState(tile, null, next);
    post(urlFor(grid.dataset.starUrl, tile.dataset.id), { starred: next ? "1" : "0" })
      .then(function (data) { setTileState(tile, data.review, data.starred); })
      .catch(function (err) { setTileState(tile, null, !next); toast(err.message, "error"); });
  }

  /* --- selection --------------------------------------------------------------------------- */

  function saveSelection() {
    sessionStorage.setItem(SEL_KEY, JSON.stringify(Array.from(selection)));
    selbar.hidden = selection.size === 0;
    selbar.querySelector("[data-sel-count]").textContent = String(selection.size);
    selbar.querySelector("input[name=ids]").value = Array.from(selection).join(",");
  }

  function paintSelection(tile) {
    var on = selection.has(tile.dataset.id);
    tile.classList.toggle("is-selected", on);
    var box = tile.querySelector(".gtile-check");
    if (box) box.checked = on;
  }

  function toggleSelect(tile, force) {
    if (!tile) return;
    var on = force === undefined ? !selection.has(tile.dataset.id) : force;
    if (on) selection.add(tile.dataset.id); else selection.delete(tile.dataset.id);
    paintSelection(tile);
    saveSelection();
  }

  var refinishPalette = selbar.querySelector("select[name=palette]");
  var refinishColors = selbar.querySelector("input[name=colors]");
  if (refinishPalette && refinishColors) {  // a palette sets the colours
    refinishPalette.addEventListener("change", function () { refinishColors.disabled = !!refinishPalette.value; });
  }

  selbar.addEventListener("submit", function (event) {
    var button = event.submitter;
    saveSelection();
    if (button && button.hasAttribute("data-sheet")) { event.preventDefault(); downloadSheet(button); return; }
    if (button && button.hasAttribute("data-zip")) return;  // a plain POST: the browser downloads the zip
    event.preventDefault();
    if (button && button.hasAttribute("data-refinish")) {
      var chosen = Array.from(selection);
      var n = chosen.length;
      var fields = {
        ids: chosen.join(","), palette: refinishPalette ? refinishPalette.value : "",
        colors: refinishColors && !refinishColors.disabled ? refinishColors.value : "",
      };
      // Re-finishing queues sprite work and replaces the current sprites: ask first, with the count.
      DGX.confirm("Re-finish " + n + " selected image" + (n === 1 ? "" : "s") + "? Their current sprites are replaced.",
                  { ok: "Re-finish " + n + " image" + (n === 1 ? "" : "s") }).then(function (yes) {
        if (!yes) return;
        post(button.formAction, fields).then(function (data) {
          toast(data.message, "success");
          refreshLater(chosen);
        }).catch(function (err) { toast(err.message, "error"); });
      });
      return;
    }
    var action = button ? button.value : "";
    var ids = Array.from(selection);
    post(grid.dataset.bulkUrl, { ids: ids.join(","), action: action }).then(function (data) {
      (data.ids || []).forEach(function (id) { setTileState(tileById(id), data.review, data.starred); });
      var n = (data.ids || []).length;
      var done = { approve: "Approved", reject: "Rejected", unreview: "Marked unreviewed:", star: "Starred", unstar: "Unstarred" };
      toast((done[action] || action) + " " + n + " image" + (n === 1 ? "" : "s") + ".", "success");
      if (data.review) { selection.clear(); tiles().forEach(paintSelection); saveSelection(); }
    }).catch(function (err) { toast(err.message, "error"); });
  });
  /* "Download sheet": posted with fetch so a refusal ("select images of one job") is a toast, not a page. */
  function downloadSheet(button) {
    var body = new FormData();
    body.append("ids", Array.from(selection).join(","));
    button.disabled = true;
    fetch(button.formAction, {
      method: "POST", body: body, credentials: "same-origin", headers: { "X-CSRFToken": csrf() },
    }).then(function (r) {
      if (!r.ok) return r.text().then(function (text) { throw new Error(text || "The server answered " + r.status + "."); });
      var name = (r.headers.get("Content-Disposition") || "").match(/filename="?([^";]+)"?/);
      return r.blob().then(function (blob) {
        var a = document.createElement("a");
        a.href = URL.createObjectURL(blob);
        a.download = name ? name[1] : "sheet.zip";
        document.body.appendChild(a);
        a.click();
        setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
        toast("Sheet of " + selection.size + " image" + (selection.size === 1 ? "" : "s") + " downloaded.", "success");
      });
    }).catch(function (err) { toast(err.message, "error"); }).finally(function () { button.disabled = false; });
  }

  selbar.querySelector("[data-select-page]").addEventListener("click", function () {
    tiles().forEach(function (t) { toggleSelect(t, true); });
  });
  selbar.querySelector("[data-select-none]").addEventListener("click", function () {
    selection.clear();
    tiles().forEach(paintSelection);
    saveSelection();
  });

  /* --- cursor and viewer --------------------------------------------------------------------- */

  function setCurrent(tile, scroll) {
    if (current) current.classList.remove("is-current");
    current = tile;
    if (!tile) return;
    tile.classList.add("is-current");
    if (!viewer.open) tile.focus({ preventScroll: true });
    if (scroll !== false) tile.scrollIntoView({ block: "nearest", inline: "nearest" });
  }

  function openViewer(tile) {
    if (!tile) return;
    setCurrent(tile, false);
    var list = tiles();
    var label = (list.indexOf(tile) + 1) + " / " + list.length + (grid.dataset.older ? "+" : "");
    viewer.show(tile.dataset, label);
    history.replaceState(null, "", location.pathname + location.search + "#image-" + tile.dataset.id);
  }

  function closeViewer() {
    viewer.close();
    history.replaceState(null, "", location.pathname + location.search);
    if (current) current.focus({ preventScroll: true });
  }

  function columns() {
    var list = tiles();
    if (list.length < 2) return 1;
    var top = list[0].offsetTop, n = 0;
    while (n < list.length && list[n].offsetTop === top) n++;
    return Math.max(1, n);
  }

  function move(step) {
    var list = tiles();
    if (!list.length) return;
    var i = current ? list.indexOf(current) : -1;
    var next = i < 0 ? 0 : i + step;
    if (next >= list.length) {
      if (viewer.open && grid.dataset.older) { location.href = grid.dataset.older + "#open-first"; }
      return;
    }
    if (next < 0) {
      if (viewer.open && grid.dataset.newer) { location.href = grid.dataset.newer + "#open-last"; }
      return;
    }
    if (viewer.open) openViewer(list[next]); else setCurrent(list[next]);
  }

  grid.addEventListener("click", function (event) {
    var tile = event.target.closest(".gtile");
    if (!tile) return;
    if (event.target.classList.contains("gtile-check")) {
      var list = tiles();
      if (event.shiftKey && lastChecked && list.indexOf(lastChecked) >= 0) {  // range select
        var a = list.indexOf(lastChecked), b = list.indexOf(tile), on = event.target.checked;
        list.slice(Math.min(a, b), Math.max(a, b) + 1).forEach(function (t) { toggleSelect(t, on); });
      } else {
        toggleSelect(tile, event.target.checked);
      }
      lastChecked = tile;
      return;
    }
    if (event.target.closest("a")) return;
    event.preventDefault();
    openViewer(tile);
  });

  viewerRoot.addEventListener("click", function (event) {
    var t = event.target.closest("button");
    if (event.target === viewerRoot || event.target.id === "viewer-stage") { closeViewer(); return; }
    if (!t) return;
    if (t.hasAttribute("data-viewer-close")) closeViewer();
    else if (t.dataset.zoom !== undefined) viewer.zoom(Number(t.dataset.zoom));
    else if (t.hasAttribute("data-grid-toggle")) viewer.toggleGrid();
    else if (t.hasAttribute("data-tile-toggle")) viewer.toggleTile();
    else if (t.hasAttribute("data-bg-toggle")) viewer.toggleBackground();
    else if (t.dataset.view) setView(t.dataset.view);
    else if (t.dataset.review) review(current, t.dataset.review, false);
    else if (t.hasAttribute("data-star")) star(current);
  });

  /* --- keyboard ------------------------------------------------------------------------------ */

  function showHelp(on) { help.hidden = !on; }
  document.querySelectorAll("[data-help-open]").forEach(function (b) { b.addEventListener("click", function () { showHelp(true); }); });
  help.addEventListener("click", function (event) {
    if (event.target === help || event.target.hasAttribute("data-help-close")) showHelp(false);
  });

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    var t = event.target;
    if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName) && !t.classList.contains("gtile-check"))) return;
    var key = event.key, inViewer = viewer.open, handled = true;
    if (key === "Escape") {
      if (!help.hidden) showHelp(false); else if (inViewer) closeViewer(); else handled = false;
    } else if (key === "?") {
      showHelp(help.hidden);
    } else if (inViewer && ((event.shiftKey && key.indexOf("Arrow") === 0) || key === "b" || key === "B")) {
      viewer.key(event);  // shift + arrows pan the zoomed image (plain arrows move), b background
    } else if (key === "ArrowRight" || key === "j") {
      move(1);
    } else if (key === "ArrowLeft" || key === "k") {
      move(-1);
    } else if ((key === "ArrowDown" || key === "ArrowUp") && !inViewer) {
      move(key === "ArrowDown" ? columns() : -columns());
    } else if (key === "Enter" && !inViewer && current && !(t && t.closest && t.closest("a,button:not(.gtile-open)"))) {
      openViewer(current);
    } else if (inViewer && (key === "1" || key === "2" || key === "4" || key === "8")) {
      viewer.zoom(Number(key));
    } else if (inViewer && (key === "f" || key === "0")) {
      viewer.zoom(0);
    } else if (inViewer && (key === "g" || key === "G")) {
      viewer.toggleGrid();
    } else if (inViewer && (key === "t" || key === "T")) {
      viewer.toggleTile();
    } else if (key === "o" || key === "O") {
      setView(view === "sprite" ? "original" : "sprite");
    } else if (inViewer && (key === "+" || key === "=")) {
      viewer.zoomStep(1);
    } else if (inViewer && (key === "-" || key === "_")) {
      viewer.zoomStep(-1);
    } else if (key === "a" || key === "A") {
      review(current, "approved", key === "A");
    } else if (key === "r" || key === "R") {
      review(current, "rejected", key === "R");
    } else if (key === "u" || key === "U") {
      review(current, "unreviewed", key === "U");
    } else if (key === "s" || key === "S") {
      star(current);
    } else if (key === "x" || key === "X") {
      toggleSelect(current);
    } else {
      handled = false;
    }
    if (handled) event.preventDefault();
  });

  window.addEventListener("resize", function () {
    if (viewer.open) viewer.relayout();
    tiles().forEach(scaleTile);
  });

  /* --- filters: a checkbox submits like the selects do ---------------------------------------- */
  var filters = document.getElementById("filters");
  if (filters) {
    filters.querySelectorAll("input[type=checkbox][data-autosubmit]").forEach(function (box) {
      box.addEventListener("change", function () { filters.requestSubmit ? filters.requestSubmit() : filters.submit(); });
    });
    // Empty fields stay out of the address (shorter, shareable links).
    filters.addEventListener("submit", function () {
      filters.querySelectorAll("input,select").forEach(function (f) { if (!f.value || (f.type === "checkbox" && !f.checked)) f.disabled = true; });
    });
    window.addEventListener("pageshow", function () {  // back/forward cache: fields usable again
      filters.querySelectorAll("input,select").forEach(function (f) { f.disabled = false; });
    });
  }

  /* --- live: new images at the top of the first page; reviews made elsewhere ---------------- */

  var fetching = false, again = false;
  function fetchNewer() {
    if (fetching) { again = true; return; }
    fetching = true;
    fetch(grid.dataset.partial + "&after=" + (grid.dataset.top || 0), {
      credentials: "same-origin", headers: { "X-Requested-With": "fetch" },
    }).then(function (r) {
      if (r.headers.get("X-More") === "1") again = true;  // a burst larger than one page: keep going
      return r.ok ? r.text() : "";
    }).then(function (html) {
      if (!html || !html.trim()) return;
      var holder = document.createElement("div");
      holder.innerHTML = html;
      var fresh = Array.prototype.slice.call(holder.querySelectorAll(".gtile")).filter(function (t) { return !tileById(t.dataset.id); });
      if (!fresh.length) return;
      var frag = document.createDocumentFragment();
      fresh.forEach(function (t) { t.classList.add("is-new"); paintSelection(t); frag.appendChild(t); });
      grid.insertBefore(frag, grid.firstChild);
      fresh.forEach(applyTile);
      grid.dataset.top = fresh[0].dataset.id;
      var empty = document.getElementById("empty");
      if (empty) empty.remove();
    }).catch(function () { /* the next event or a reload catches up */ }).finally(function () {
      fetching = false;
      if (again) { again = false; setTimeout(fetchNewer, 150); }
    });
  }
  var newerTimer = null;
  if (DGX.live) {
    DGX.live("/ws/queue/", {
      since: Number(grid.dataset.since) || 0,
      on: {
        image_saved: function () {
          if (grid.dataset.live !== "1") return;
          clearTimeout(newerTimer);
          newerTimer = setTimeout(fetchNewer, 200);  // a batch of 8 arrives as 8 events: one fetch
        },
        image_reviewed: function (data) {
          (data.images || []).forEach(function (id) {
            setTileState(tileById(id), data.review, data.starred === undefined ? null : data.starred);
          });
        },
        sprite_ready: spriteReady,
        sprite_failed: function (data) { refreshLater([data.image]); },
        sprites_queued: function (data, message) {  // this job's tiles now say "finishing…"
          refreshLater(tiles().filter(function (t) { return t.dataset.job === String(message.job); })
            .map(function (t) { return t.dataset.id; }));
        },
      },
      onOpen: function (reconnected) { if (reconnected && grid.dataset.live === "1") fetchNewer(); },
    });
  }

  /* --- thumbnail size: S/M/L, remembered ------------------------------------------------------ */
  function setTileSize(size) {
    size = ["s", "m", "l"].indexOf(size) >= 0 ? size : "m";
    grid.classList.remove("tiles-s", "tiles-m", "tiles-l");
    grid.classList.add("tiles-" + size);
    document.querySelectorAll("[data-tile-size]").forEach(function (b) {
      b.setAttribute("aria-pressed", String(b.dataset.tileSize === size));
    });
    try { localStorage.setItem("dgx.galleryTileSize", size); } catch (e) { /* private mode */ }
    tiles().forEach(scaleTile);
  }
  document.querySelectorAll("[data-tile-size]").forEach(function (b) {
    b.addEventListener("click", function () { setTileSize(b.dataset.tileSize); });
  });
  var sizeSwitch = document.querySelector(".tile-size-switch");
  if (sizeSwitch) sizeSwitch.hidden = false;
  try { setTileSize(localStorage.getItem("dgx.galleryTileSize") || "m"); } catch (e) { setTileSize("m"); }

  /* --- continuous loading: the next keyset page when the end of the grid comes into view -------
   * The server's first render and its "Older" link stay (they work without JS); the link's cursor
   * moves on with every page appended, so a reload or a middle click still lands in the right place. */
  var olderLink = document.getElementById("older-link");
  var moreNote = document.getElementById("more-note");
  var loadingOlder = false;
  function olderCursor() { return olderLink ? new URL(olderLink.href, location.href).searchParams.get("before") : ""; }
  function loadOlder() {
    var cursor = olderCursor();
    if (loadingOlder || !cursor) return;
    loadingOlder = true;
    if (moreNote) { moreNote.hidden = false; moreNote.textContent = "Loading older sprites…"; }
    fetch(grid.dataset.partial + "&before=" + encodeURIComponent(cursor), {
      credentials: "same-origin", headers: { "X-Requested-With": "fetch" },
    }).then(function (r) {
      if (!r.ok) throw new Error(r.status);
      var next = r.headers.get("X-Older") || "";
      return r.text().then(function (html) { return { html: html, next: next }; });
    }).then(function (page) {
      var holder = document.createElement("div");
      holder.innerHTML = page.html;
      var fresh = Array.prototype.slice.call(holder.querySelectorAll(".gtile")).filter(function (t) { return !tileById(t.dataset.id); });
      var frag = document.createDocumentFragment();
      fresh.forEach(function (t) { paintSelection(t); frag.appendChild(t); });
      grid.appendChild(frag);
      fresh.forEach(applyTile);
      if (page.next) {
        var url = new URL(olderLink.href, location.href);
        url.searchParams.set("before", page.next);
        olderLink.href = url.pathname + url.search;
        grid.dataset.older = url.search;
        if (moreNote) moreNote.hidden = true;
      } else {
        olderLink.remove();
        olderLink = null;
        grid.dataset.older = "";
        if (moreNote) { moreNote.hidden = false; moreNote.textContent = "That is every sprite."; }
      }
    }).catch(function () {
      if (moreNote) { moreNote.hidden = false; moreNote.textContent = "Could not load older sprites; use the Older link."; }
    }).finally(function () {
      loadingOlder = false;
      // A short page may leave the sentinel in view: the observer does not fire again by itself.
      if (olderLink && sentinelVisible()) setTimeout(loadOlder, 50);
    });
  }
  var sentinel = document.querySelector(".rv-pager");
  function sentinelVisible() {
    if (!sentinel) return false;
    var box = sentinel.getBoundingClientRect();
    return box.top < window.innerHeight + 400;
  }
  if (sentinel && olderLink && "IntersectionObserver" in window) {
    new IntersectionObserver(function (entries) {
      if (entries.some(function (e) { return e.isIntersecting; })) loadOlder();
    }, { rootMargin: "0px 0px 400px 0px" }).observe(sentinel);
  }

  /* --- start ---------------------------------------------------------------------------------- */
  setView(view);
  tiles().forEach(paintSelection);
  saveSelection();
  var hash = location.hash;
  var list = tiles();
  if (hash === "#open-first" && list.length) openViewer(list[0]);
  else if (hash === "#open-last" && list.length) openViewer(list[list.length - 1]);
  else if (hash.indexOf("#image-") === 0 && tileById(hash.slice(7))) openViewer(tileById(hash.slice(7)));
})();
