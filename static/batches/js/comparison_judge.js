/* Blind judging: press 1-9 to pick that option (the same as clicking it). */
(function () {
  "use strict";
  var form = document.getElementById("judge-form");
  if (!form) return;
  form.addEventListener("submit", function () {
    form.querySelectorAll("button").forEach(function (b) { setTimeout(function () { b.disabled = true; }, 0); });
  });
  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    if (!/^[1-9]$/.test(event.key)) return;
    var button = form.querySelector('.judge-option[data-key="' + event.key + '"]');
    if (!button) return;
    event.preventDefault();
    button.click();
  });
})();
