/* Shared page helpers (no build step, no libraries):
 *   DGX.toast(text, kind)              a short message in the corner
 *   DGX.partials(url)                  refresh("rows", ...) fetches url?partial=NAME into [data-partial=NAME]
 *   DGX.keys({n: fn, ...})             single-key shortcuts, ignored while typing
 *   DGX.duration(seconds), DGX.rate(startedIso, done)
 *   DGX.copyText(text)                 to the clipboard (a Promise); palette swatches use it on click
 *   DGX.confirm(text, opts)            a <dialog> yes/no (a Promise); DGX.showPreview(unit, url)
 * Forms with data-enhance are POSTed with fetch (they work without JS too); data-confirm asks
 * first, in the dialog; a select with data-autosubmit submits its form on change. After an enhanced action the
 * document receives a "dgx:action" event.
 */
(function () {
  "use strict";
  var DGX = (window.DGX = window.DGX || {});
  document.documentElement.classList.add("js");

  var toasts = function () { return document.getElementById("toasts"); };

  /* The page makes room for the toasts (body.has-toasts pads by their height), so none covers content. */
  function roomForToasts() {
    var box = toasts();
    var height = box ? box.getBoundingClientRect().height : 0;
    document.body.classList.toggle("has-toasts", height > 0);
    document.body.style.setProperty("--toasts-h", Math.ceil(height) + "px");
  }
  function expire(el, ms) {
    setTimeout(function () {
      el.classList.add("toast-out");
      setTimeout(function () { el.remove(); roomForToasts(); }, 400);
    }, ms);
  }
  DGX.toast = function (text, kind) {
    var box = toasts();
    if (!box || !text) return;
    var el = document.createElement("div");
    el.className = "toast toast-" + (kind || "info");
    el.setAttribute("role", kind === "error" ? "alert" : "status");
    el.textContent = text;
    box.appendChild(el);
    roomForToasts();
    expire(el, 5000);
  };
  document.addEventListener("DOMContentLoaded", function () {
    var box = toasts();
    if (!box) return;
    Array.prototype.forEach.call(box.children, function (el) { expire(el, 6000); });
    roomForToasts();
    try {
      var carried = JSON.parse(sessionStorage.getItem("dgx.toast") || "null");
      sessionStorage.removeItem("dgx.toast");
      if (carried && carried.text) DGX.toast(carried.text, carried.kind);
    } catch (e) { /* private mode */ }
  });

  DGX.duration = function (seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return "—";
    seconds = Math.max(0, Math.round(seconds));
    var h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    var pad = function (n) { return n < 10 ? "0" + n : String(n); };
    if (h) return h + "h " + pad(m) + "m";
    if (m) return m + "m " + pad(s) + "s";
    return s + "s";
  };

  /* Images per minute since the job started: the same formula as Job.images_per_minute(). */
  DGX.rate = function (startedIso, done) {
    if (!startedIso || !done) return 0;
    var seconds = (Date.now() - Date.parse(startedIso)) / 1000;
    return seconds > 0 ? (done * 60) / seconds : 0;
  };

  function setField(root, name, value) {
    root.querySelectorAll('[data-field="' + name + '"]').forEach(function (el) { el.textContent = value; });
  }
  DGX.setField = setField;

  /* Update a job's progress in place: `el` carries data-planned/-done/-failed/-started/-status. */
  DGX.setProgress = function (el, counts) {
    if (!el) return;
    ["done", "failed", "planned"].forEach(function (key) {
      if (counts[key] !== undefined && counts[key] !== null) el.dataset[key] = counts[key];
    });
    var done = Number(el.dataset.done) || 0, failed = Number(el.dataset.failed) || 0;
    var planned = Number(el.dataset.planned) || 0;
    setField(el, "done", done);
    setField(el, "failed", failed);
    setField(el, "planned", planned);
    var pct = function (n) { return planned ? Math.min(100, (100 * n) / planned).toFixed(1) + "%" : "0%"; };
    var bar = el.querySelector('[data-bar="done"]');
    if (bar) bar.style.width = pct(done);
    var fbar = el.querySelector('[data-bar="failed"]');
    if (fbar) fbar.style.width = pct(failed);
    var pb = el.querySelector('[role="progressbar"]');
    if (pb) pb.setAttribute("aria-valuenow", planned ? ((100 * (done + failed)) / planned).toFixed(1) : "0");
    var fc = el.querySelector(".failed-count");
    if (fc) fc.classList.toggle("is-hidden", !failed);
    DGX.setRate(el);
  };

  /* The server's rate (data-rate, from services/rates.py: the recent throughput of the nodes doing
   * the work) when the element carries one; the ETA is images left / rate, as on the server. */
  DGX.setRate = function (el) {
    var active = el.dataset.status === "running" || el.dataset.status === "queued";
    var done = Number(el.dataset.done) || 0, failed = Number(el.dataset.failed) || 0;
    var rate = el.dataset.rate !== undefined && el.dataset.rate !== "" ? Number(el.dataset.rate) || 0
      : DGX.rate(el.dataset.started, done);
    setField(el, "rate", rate > 0 ? rate.toFixed(1) : "—");
    var left = (Number(el.dataset.planned) || 0) - done - failed;
    setField(el, "eta", active && rate > 0 ? DGX.duration((left / rate) * 60) : "—");
  };

  /* Step progress of a running unit, wherever it is shown; false when it is not on the page. */
  DGX.setStep = function (unitId, value, max) {
    var found = false;
    document.querySelectorAll('[data-step-unit="' + unitId + '"]').forEach(function (el) {
      found = true;
      setField(el, "step", value);
      setField(el, "steps", max);
      var bar = el.querySelector(".bar-step");
      if (bar) bar.style.width = (max ? Math.min(100, (100 * value) / max) : 0).toFixed(1) + "%";
      var pb = el.querySelector('[role="progressbar"]');
      if (pb) { pb.setAttribute("aria-valuenow", value); pb.setAttribute("aria-valuemax", max); }
    });
    return found;
  };

  /* Live preview of a running unit: only the latest frame is fetched; a preview that arrives
   * while one is still loading replaces the waiting one, so a slow page never queues frames.
   * False when no element shows that unit. */
  function loadPreview(img, url) {
    img.dataset.loading = "1";
    var probe = new Image();
    var done = function () {
      delete img.dataset.loading;
      var next = img.dataset.next;
      if (next) { delete img.dataset.next; loadPreview(img, next); }
    };
    probe.onload = function () {
      img.src = url;
      var holder = img.closest(".live-preview");
      if (holder) holder.hidden = false;
      done();
    };
    probe.onerror = done;  // the unit finished meanwhile: its images show instead
    probe.src = url;
  }
  DGX.showPreview = function (unitId, url) {
    var found = false;
    document.querySelectorAll('img[data-preview-unit="' + unitId + '"]').forEach(function (img) {
      found = true;
      if (img.dataset.loading) img.dataset.next = url; else loadPreview(img, url);
    });
    return found;
  };

  DGX.partials = function (baseUrl) {
    var pending = new Set();
    var timer = null;
    var inflight = false;
    function run() {
      timer = null;
      if (inflight) { timer = setTimeout(run, 150); return; }
      var names = Array.from(pending);
      pending.clear();
      inflight = true;
      Promise.all(names.map(function (name) {
        var target = document.querySelector('[data-partial="' + name + '"]');
        if (!target) return null;
        var sep = baseUrl.indexOf("?") >= 0 ? "&" : "?";
        return fetch(baseUrl + sep + "partial=" + encodeURIComponent(name), {
          credentials: "same-origin", headers: { "X-Requested-With": "fetch" },
        }).then(function (r) {
          if (r.redirected && r.url.indexOf("/accounts/login/") >= 0) { location.href = r.url; return; }
          if (!r.ok) throw new Error(r.status);
          return r.text();
        }).then(function (html) {
          if (typeof html !== "string") return;
          // Keep an open priority menu and focus where the user left them.
          if (target.contains(document.activeElement) && document.activeElement.tagName === "SELECT") return;
          target.innerHTML = html;
          target.dispatchEvent(new CustomEvent("dgx:swapped", { bubbles: true, detail: { name: name } }));
        });
      })).catch(function (err) { console.warn("partial refresh failed", err); })
        .finally(function () { inflight = false; });
    }
    return {
      refresh: function () {
        for (var i = 0; i < arguments.length; i++) pending.add(arguments[i]);
        if (!timer) timer = setTimeout(run, 120);
      },
    };
  };

  DGX.keys = function (map) {
    document.addEventListener("keydown", function (event) {
      if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
      var t = event.target;
      if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
      var fn = map[event.key];
      if (fn) { event.preventDefault(); fn(event); }
    });
  };

  DGX.requestId = function () {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID().replace(/-/g, "");
    return Date.now().toString(36) + Math.random().toString(36).slice(2) + Math.random().toString(36).slice(2);
  };

  /* DGX.confirm(text, {ok: "Requeue", danger: true}) -> Promise<boolean>: one <dialog> for every
   * action that queues or discards work. Forms ask through data-confirm (and data-confirm-ok for
   * the button's label); without JS they submit straight away. */
  var dialog = null;
  function confirmDialog() {
    if (dialog) return dialog;
    dialog = document.createElement("dialog");
    dialog.className = "confirm-dialog";
    dialog.id = "confirm-dialog";
    dialog.setAttribute("aria-labelledby", "confirm-dialog-text");
    dialog.innerHTML = '<form method="dialog"><p id="confirm-dialog-text"></p><div class="confirm-buttons">' +
      '<button type="submit" value="cancel" class="btn" data-confirm-cancel>Cancel</button>' +
      '<button type="submit" value="ok" class="btn btn-primary" data-confirm-ok>OK</button></div></form>';
    document.body.appendChild(dialog);
    return dialog;
  }
  DGX.confirm = function (text, opts) {
    opts = opts || {};
    var d = confirmDialog();
    if (typeof d.showModal !== "function") return Promise.resolve(window.confirm(text));
    d.querySelector("#confirm-dialog-text").textContent = text;
    var ok = d.querySelector("[data-confirm-ok]");
    ok.textContent = opts.ok || "OK";
    ok.className = "btn " + (opts.danger ? "btn-danger" : "btn-primary");
    d.returnValue = "";
    return new Promise(function (resolve) {
      d.addEventListener("close", function onClose() {
        d.removeEventListener("close", onClose);
        resolve(d.returnValue === "ok");
      });
      d.showModal();
      d.querySelector("[data-confirm-cancel]").focus();  // Enter must not queue work by accident
    });
  };

  // Confirmations (with or without enhancement).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    if (form.dataset.confirm) {
      event.preventDefault();
      event.stopImmediatePropagation();
      var submitter = event.submitter;
      DGX.confirm(form.dataset.confirm, { ok: form.dataset.confirmOk, danger: form.hasAttribute("data-confirm-danger") })
        .then(function (yes) {
          if (!yes) return;
          // A live refresh may have redrawn the form while the dialog was open: FormData still
          // reads the detached one, so an enhanced form is sent as it was asked about.
          if (form.hasAttribute("data-enhance")) { send(form); return; }
          if (!form.isConnected) { form.hidden = true; document.body.appendChild(form); }
          // Submit again without the question (requestSubmit dispatches synchronously), so neither
          // this handler nor a page's own handler asks twice.
          var text = form.dataset.confirm;
          delete form.dataset.confirm;
          try {
            if (form.requestSubmit) form.requestSubmit(submitter && submitter.form === form ? submitter : undefined);
            else form.submit();
          } finally { form.dataset.confirm = text; }
        });
      return;
    }
    if (!form.hasAttribute("data-enhance")) return;
    event.preventDefault();
    send(form);
  }, true);

  /* POST an enhanced form with fetch; toast the answer, follow a redirect, announce dgx:action. */
  function send(form) {
    var buttons = form.querySelectorAll("button");
    buttons.forEach(function (b) { b.disabled = true; });
    fetch(form.action, {
      method: "POST", body: new FormData(form), credentials: "same-origin",
      headers: { "X-Requested-With": "fetch", Accept: "application/json" },
    }).then(function (r) {
      if (r.redirected && r.url.indexOf("/accounts/login/") >= 0) { location.href = r.url; return null; }
      if (r.status === 403) return { ok: false, message: "Not allowed: only the job's owner or staff may do that." };
      return r.json().catch(function () { return { ok: r.ok, message: r.ok ? "" : "The server answered " + r.status + "." }; });
    }).then(function (data) {
      if (!data) return;
      // The server acts once per request_id (a double click is one request); once it has
      // answered, a later press of the same button is a new request.
      var rid = form.querySelector('input[name="request_id"]');
      if (rid) rid.value = DGX.requestId();
      if (data.redirect) {
        // The message is said on the page we go to (a requeue opens the new job).
        try { sessionStorage.setItem("dgx.toast", JSON.stringify({ text: data.message, kind: data.ok ? "success" : "error" })); } catch (e) { /* private mode */ }
        location.href = data.redirect;
        return;
      }
      DGX.toast(data.message, data.ok ? "success" : "error");
      document.dispatchEvent(new CustomEvent("dgx:action", { detail: { form: form, data: data } }));
    }).catch(function () {
      DGX.toast("Could not reach the server; try again.", "error");
    }).finally(function () {
      buttons.forEach(function (b) { b.disabled = false; });
    });
  }

  /* Palette swatches (.swatch[data-hex]) copy their colour when clicked. */
  DGX.copyText = function (value) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(value);
    return new Promise(function (resolve, reject) {  // plain http on a LAN address: the old way
      var area = document.createElement("textarea");
      area.value = value;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      area.remove();
      if (ok) resolve(); else reject(new Error("copy refused"));
    });
  };
  document.addEventListener("click", function (event) {
    var swatch = event.target.closest && event.target.closest(".swatch[data-hex]");
    if (!swatch) return;
    var hex = swatch.dataset.hex;
    DGX.copyText(hex).then(function () { DGX.toast("Copied " + hex + ".", "success"); },
                           function () { DGX.toast(hex, "info"); });
  });

  document.addEventListener("change", function (event) {
    var el = event.target;
    if (el && el.matches && el.matches("select[data-autosubmit]") && el.form) {
      if (el.form.requestSubmit) el.form.requestSubmit(); else el.form.submit();
    }
  });
})();
