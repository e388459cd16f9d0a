/* Statistics: refresh the page body every 10 seconds while the tab is visible. */
(function () {
  "use strict";
  var body = document.getElementById("stats-body");
  if (!body) return;
  var EVERY = 10000;
  var timer = null;

  function refresh() {
    timer = null;
    if (document.visibilityState !== "visible") return;
    fetch(body.dataset.refresh, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
      .then(function (r) {
        if (r.redirected && r.url.indexOf("/accounts/login/") >= 0) { location.href = r.url; return ""; }
        return r.ok ? r.text() : "";
      })
      .then(function (html) { if (html) body.innerHTML = html; })
      .catch(function () { /* try again on the next tick */ })
      .finally(function () { schedule(); });
  }

  function schedule() { if (!timer) timer = setTimeout(refresh, EVERY); }

  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") { clearTimeout(timer); timer = null; refresh(); }
  });
  schedule();
})();
