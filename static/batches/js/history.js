/* The job history page: a date field submits its form when changed (selects already do, through
 * dashboard.js's data-autosubmit), and "/" focuses the search box. */
(function () {
  "use strict";
  var form = document.getElementById("history-filters");
  if (!form) return;
  form.querySelectorAll("input[type=date]").forEach(function (input) {
    input.addEventListener("change", function () { if (input.value === "" || input.checkValidity()) form.submit(); });
  });
  document.addEventListener("keydown", function (event) {
    var tag = (event.target && event.target.tagName) || "";
    if (event.key === "/" && !/INPUT|SELECT|TEXTAREA/.test(tag)) {
      event.preventDefault();
      form.querySelector("input[name=q]").focus();
    }
  });
})();
