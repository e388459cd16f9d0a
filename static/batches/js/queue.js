/* The queue page, live: rows update in place on progress; structural changes (a new job, a job
 * that starts, finishes or changes priority, the worker's state) swap in the server's partials,
 * the same templates that rendered the page, so a reload always shows what the page shows. */
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("queue-config").textContent);
  var parts = DGX.partials("/");
  var askedFor = new Set();

  function row(jobId) { return document.getElementById("job-row-" + jobId); }

  // A job's image count never goes down: rows rendered a moment before the latest image_saved
  // arrived must not move its bar back (the job page does the same).
  var mostDone = {};
  function noteDone(r) {
    if (!r) return;
    var id = r.id, done = Number(r.dataset.done) || 0;
    if (done < (mostDone[id] || 0)) DGX.setProgress(r, { done: mostDone[id] });
    else mostDone[id] = done;
  }
  document.addEventListener("dgx:swapped", function (event) {
    if (event.detail.name === "rows") document.querySelectorAll("[id^='job-row-']").forEach(noteDone);
  });

  var ROWS = ["job_queued", "job_started", "unit_started", "job_finished", "job_cancelling", "job_stopping",
              "job_priority", "job_retry", "unit_failed", "unit_cancelled", "unit_requeued", "unit_resubmitted",
              "unit_downgraded", "unit_resized"];
  var WORKER = ["job_queued", "job_started", "unit_started", "unit_done", "unit_submitted", "job_finished", "job_cancelling",
                "job_stopping", "job_retry", "queue_paused", "queue_resumed", "comfyui_unreachable", "comfyui_back",
                "disk_hold", "disk_ok"];
  var RECENT = ["job_finished", "job_retry", "job_cancelling"];

  var on = {
    progress: function (d) {
      if (!DGX.setStep(d.unit, d.value, d.max) && !askedFor.has(d.unit)) {
        askedFor.add(d.unit);  // a unit we have not drawn yet: fetch its row once
        parts.refresh("rows", "worker");
      }
    },
    preview: function (d) { DGX.showPreview(d.unit, d.url); },
    image_saved: function (d, m) {
      var r = row(m.job);
      if (r) DGX.setProgress(r, { done: (Number(r.dataset.done) || 0) + 1 });
      noteDone(r);
    },
    job_progress: function (d, m) {
      var r = row(m.job);
      if (r) DGX.setProgress(r, { done: d.images_done, failed: d.images_failed, planned: d.images_planned });
      noteDone(r);
    },
    "*": function (d, m) {
      var names = [];
      if (ROWS.indexOf(m.kind) >= 0) names.push("rows");
      if (WORKER.indexOf(m.kind) >= 0) names.push("worker");
      if (RECENT.indexOf(m.kind) >= 0) names.push("recent");
      if (names.length) parts.refresh.apply(null, names);
    },
  };

  DGX.live(config.socket, {
    since: config.since,
    on: on,
    onOpen: function (reconnected) { if (reconnected) parts.refresh("rows", "worker", "recent"); },
  });

  document.addEventListener("dgx:action", function () { parts.refresh("rows", "worker", "recent"); });

  // Rates and ETAs move with the clock, not only with events.
  setInterval(function () {
    document.querySelectorAll("#active-rows tr.job-running").forEach(DGX.setRate);
  }, 5000);
  // A job queued from the command line publishes nothing until it starts: look now and then.
  setInterval(function () {
    if (document.visibilityState === "visible") parts.refresh("rows", "worker");
  }, 30000);

  DGX.keys({
    n: function () { location.href = "/jobs/new/"; },
    g: function () { location.href = "/gallery/"; },
    p: function () {
      var b = document.querySelector('#worker-state form[action$="/pause/"] button, #worker-state form[action$="/resume/"] button');
      if (b) b.click();
    },
  });
})();
