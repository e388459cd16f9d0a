/* The job page, live: the progress bar and step counter move in place, new images are fetched
 * (only those after the newest shown) and put first, and anything else re-renders the job's
 * state partial, the template that drew it. */
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("job-config").textContent);
  var base = "/jobs/" + config.job + "/";
  var parts = DGX.partials(base);
  var tiles = document.getElementById("job-images");
  var imagesTimer = null;
  var imagesBusy = false;
  var askedFor = new Set();

  function card() { return document.getElementById("job-progress"); }

  // Images are only ever added to a job, so its count never goes down: a state partial rendered
  // just before the latest image_saved arrived must not move the bar back.
  var mostDone = 0;
  function noteDone() { var c = card(); if (c) mostDone = Math.max(mostDone, Number(c.dataset.done) || 0); }
  noteDone();
  document.addEventListener("dgx:swapped", function (event) {
    if (event.detail.name !== "state") return;
    var c = card();
    if (c && (Number(c.dataset.done) || 0) < mostDone) {
      DGX.setProgress(c, { done: mostDone });
      DGX.setField(document, "done", mostDone);
    }
    noteDone();
  });

  function newestShown() {
    var max = 0;
    tiles.querySelectorAll("[data-image]").forEach(function (el) { max = Math.max(max, Number(el.dataset.image)); });
    return max;
  }

  function fetchImages() {
    imagesTimer = null;
    if (imagesBusy) { imagesTimer = setTimeout(fetchImages, 200); return; }
    imagesBusy = true;
    fetch(base + "?partial=images&after=" + newestShown(), {
      credentials: "same-origin", headers: { "X-Requested-With": "fetch" },
    }).then(function (r) { return r.ok ? r.text() : ""; }).then(function (html) {
      if (!html.trim()) return;
      var holder = document.createElement("div");
      holder.innerHTML = html;
      var fresh = Array.prototype.filter.call(holder.children, function (el) {
        return !tiles.querySelector('[data-image="' + el.dataset.image + '"]');
      });
      for (var i = fresh.length - 1; i >= 0; i--) {
        fresh[i].classList.add("tile-new");
        tiles.insertBefore(fresh[i], tiles.firstChild);
      }
      var empty = document.querySelector(".empty-images");
      if (empty) empty.hidden = tiles.children.length > 0;
    }).finally(function () { imagesBusy = false; });
  }

  function moreImages() { if (!imagesTimer) imagesTimer = setTimeout(fetchImages, 150); }

  var on = {
    progress: function (d) {
      if (!DGX.setStep(d.unit, d.value, d.max) && !askedFor.has(d.unit)) {
        askedFor.add(d.unit);
        parts.refresh("state");
      }
    },
    image_saved: function () {
      var c = card();
      if (c) DGX.setProgress(c, { done: (Number(c.dataset.done) || 0) + 1 });
      DGX.setField(document, "done", card() ? card().dataset.done : "");
      noteDone();
      moreImages();
    },
    job_progress: function (d) {
      DGX.setProgress(card(), { done: Math.max(d.images_done, mostDone), failed: d.images_failed, planned: d.images_planned });
      DGX.setField(document, "done", Math.max(d.images_done, mostDone));
      noteDone();
    },
    // The running unit's latest preview; an unknown unit is drawn by the state refresh its progress asks for.
    preview: function (d) { DGX.showPreview(d.unit, d.url); },
    // Sprites: the finish card's counts move without a reload (one query per refresh, coalesced).
    sprites_queued: function () { parts.refresh("finish"); },
    sprite_ready: function () { parts.refresh("finish"); },
    sprite_failed: function () { parts.refresh("finish"); },
    "*": function (d, m) {
      if (["progress", "preview", "image_saved", "job_progress", "sprites_queued", "sprite_ready", "sprite_failed"].indexOf(m.kind) < 0) {
        parts.refresh("state");
      }
    },
  };

  // "finishing" next to the job's status lasts until the finish card says every sprite exists.
  document.addEventListener("dgx:swapped", function (event) {
    if (event.detail.name !== "finish") return;
    var head = document.querySelector('[data-partial="finish"] [data-open]');
    var badge = document.getElementById("job-finishing");
    if (head && badge) badge.hidden = Number(head.dataset.open) === 0;
  });

  // Re-finish: a palette sets the colours, so the colours field steps aside while one is chosen.
  var refinish = document.getElementById("refinish-form");
  if (refinish) {
    var syncColors = function () {
      refinish.elements.colors.disabled = !!refinish.elements.palette.value;
    };
    refinish.elements.palette.addEventListener("change", syncColors);
    syncColors();
  }

  DGX.live(config.socket, {
    since: config.since,
    on: on,
    onOpen: function (reconnected) { if (reconnected) { parts.refresh("state", "finish"); moreImages(); } },
  });
  document.addEventListener("dgx:action", function () { parts.refresh("state", "finish"); });

  setInterval(function () { var c = card(); if (c && c.dataset.status === "running") DGX.setRate(c); }, 5000);

  // Thumbnail size: integer steps keep pixels square.
  function zoom(n) {
    tiles.classList.remove("zoom-1", "zoom-2", "zoom-3");
    tiles.classList.add("zoom-" + n);
    document.querySelectorAll("[data-zoom]").forEach(function (b) { b.setAttribute("aria-pressed", String(b.dataset.zoom === String(n))); });
    try { localStorage.setItem("dgx.jobZoom", n); } catch (e) { /* private mode */ }
  }
  document.querySelectorAll("[data-zoom]").forEach(function (b) { b.addEventListener("click", function () { zoom(b.dataset.zoom); }); });
  try { var saved = localStorage.getItem("dgx.jobZoom"); if (saved) zoom(saved); } catch (e) { /* ignore */ }

  function press(selector) {
    var b = document.querySelector(selector);
    if (b) b.click();
  }
  DGX.keys({
    q: function () { location.href = "/"; },
    n: function () { location.href = "/jobs/new/"; },
    s: function () { press('#job-state form[action$="/stop/"] button'); },
    x: function () { press('#job-state form[action$="/cancel/"] button'); },
    "1": function () { zoom(1); }, "2": function () { zoom(2); }, "3": function () { zoom(3); },
  });
})();
