/* The submission form: a profile fills in its defaults (still editable), a summary counts what
 * will be made, Ctrl+Enter submits. The server checks everything; this only helps. */
(function () {
  "use strict";
  var form = document.getElementById("job-form");
  if (!form) return;
  var profile = form.elements.profile;
  var defaults = {};
  try { defaults = JSON.parse(profile.dataset.defaults || "{}"); } catch (e) { defaults = {}; }
  var FIELDS = ["batch_size", "steps", "cfg", "sampler", "scheduler", "width", "height"];
  var description = document.getElementById("profile-description");
  var summary = document.getElementById("job-summary");

  function describe() {
    var d = defaults[profile.value];
    if (description) description.textContent = d ? d.description : "";
  }

  function applyProfile() {
    var d = defaults[profile.value];
    if (!d) return;
    FIELDS.forEach(function (name) {
      var el = form.elements[name];
      if (!el || d[name] === undefined) return;
      var value = String(d[name]);
      if (el.tagName === "SELECT" && !Array.prototype.some.call(el.options, function (o) { return o.value === value; })) {
        el.add(new Option(value, value));
      }
      if (el.value !== value) {
        el.value = value;
        var field = el.closest(".field");
        if (field) { field.classList.remove("flash"); void field.offsetWidth; field.classList.add("flash"); }
      }
    });
    applyFinish(d);
    describe();
    update();
  }

  /* Finishing: the profile's `finish:` block fills the fieldset like the fields above; a palette
   * (chosen or uploaded) wins over a number of colours, so the colours field steps aside. */
  var makeSprites = form.elements.make_sprites;
  var finishDefaults = {};
  try { finishDefaults = JSON.parse((makeSprites && makeSprites.dataset.finishDefaults) || "{}"); } catch (e) { finishDefaults = {}; }
  var FINISH_FIELDS = ["colors", "palette", "background", "outline", "cell", "pixel_size"];

  function flash(el) {
    var field = el.closest(".field");
    if (field) { field.classList.remove("flash"); void field.offsetWidth; field.classList.add("flash"); }
  }

  function applyFinish() {
    var f = finishDefaults[profile.value];
    if (!f || !makeSprites) return;
    if (makeSprites.checked !== f.make_sprites) { makeSprites.checked = f.make_sprites; flash(makeSprites); }
    FINISH_FIELDS.forEach(function (name) {
      var el = form.elements[name];
      if (!el || f[name] === undefined) return;
      var value = String(f[name]);
      if (el.tagName === "SELECT" && !Array.prototype.some.call(el.options, function (o) { return o.value === value; })) {
        el.add(new Option(value, value));
      }
      if (el.value !== value) { el.value = value; flash(el); }
    });
    var lock = form.elements.lock_palette;
    if (lock && lock.checked !== !!f.lock_palette) { lock.checked = !!f.lock_palette; flash(lock); }
    finishState();
  }

  function finishState() {
    if (!makeSprites) return;
    var fieldset = document.getElementById("finish-fieldset");
    if (fieldset) fieldset.classList.toggle("is-off", !makeSprites.checked);
    var palette = form.elements.palette, colors = form.elements.colors;
    var upload = document.getElementById("palette-upload");
    var file = form.elements.palette_file;
    var hasFile = file && file.files && file.files.length;
    if (upload) upload.hidden = !(palette.value === "upload" || hasFile || upload.querySelector(".field-errors"));
    if (colors) {
      colors.disabled = !!palette.value;
      colors.title = palette.value ? "The palette sets the colours." : "";
    }
  }

  if (makeSprites) {
    makeSprites.addEventListener("change", finishState);
    form.elements.palette.addEventListener("change", finishState);
    if (form.elements.palette_file) {
      form.elements.palette_file.addEventListener("change", function () {
        if (this.files && this.files.length) form.elements.palette.value = "upload";
        finishState();
      });
    }
    finishState();
  }

  function promptCount() {
    return form.elements.prompts.value.split(/\r?\n/).filter(function (line) {
      line = line.trim();
      return line && line.charAt(0) !== "#";
    }).length;
  }

  function update() {
    if (!summary) return;
    var prompts = promptCount();
    var hasFile = form.elements.prompts_file && form.elements.prompts_file.files && form.elements.prompts_file.files.length;
    var count = parseInt(form.elements.count.value, 10) || 0;
    var auto = form.elements.batch_size.value === "auto";
    var batch = auto ? 8 : parseInt(form.elements.batch_size.value, 10) || 1;  /* auto: planned at 8, cut per unit */
    if (!prompts && !hasFile) { summary.textContent = "Write a prompt (one per line) or choose a prompts file."; return; }
    var images = prompts * count;
    var units = prompts * Math.ceil(count / batch);
    var text = prompts + " prompt" + (prompts === 1 ? "" : "s") + (hasFile ? " + the file's" : "") + " × " + count +
      " = " + images + (hasFile ? "+" : "") + " image" + (images === 1 ? "" : "s") + " in " + units + (hasFile ? "+" : "") +
      " unit" + (units === 1 ? "" : "s") + " of up to " + batch + (auto ? " (auto: smaller when VRAM is short)" : "");
    var d = defaults[profile.value];
    if (d && d.ipm && images) text += " · about " + DGX.duration((images / d.ipm) * 60) + " at " + d.ipm.toFixed(1) + " img/min (based on " + (d.ipm_basis || "the profile's expected rate") + ")";
    summary.textContent = text + ".";
  }

  /* Compare: the cells (every combination of the axes' values), their images and time, refused
   * above the limit; checkpoint, LoRA and sampler rows suggest what ComfyUI offers. */
  var compare = form.elements.compare;
  var compareSummary = document.getElementById("compare-summary");
  var maxCells = compare ? Number(compare.dataset.maxCells) || 27 : 27;
  var suggestions = {};
  try { suggestions = JSON.parse((compare && compare.dataset.suggestions) || "{}"); } catch (e) { suggestions = {}; }
  Object.keys(suggestions).forEach(function (axis) {
    var list = document.getElementById("compare-suggest-" + axis);
    if (list) suggestions[axis].forEach(function (v) { list.appendChild(new Option(v, v)); });
  });

  function compareRows() {
    var rows = [];
    form.querySelectorAll("[data-compare-axis]").forEach(function (select) {
      var values = form.querySelector('[data-compare-values="' + select.dataset.compareAxis + '"]');
      values.setAttribute("list", suggestions[select.value] ? "compare-suggest-" + select.value : "");
      var items = values.value.split(",").map(function (v) { return v.trim(); }).filter(Boolean);
      if (select.value || items.length) rows.push({ axis: select.value, values: items });
    });
    return rows;
  }

  function updateCompare() {
    if (!compareSummary) return 0;
    var rows = compareRows();
    var button = document.getElementById("submit-job");
    if (!rows.length) {
      compareSummary.textContent = "";
      if (button) { button.textContent = "Queue job"; button.disabled = false; }
      return 0;
    }
    var cells = rows.reduce(function (n, r) { return n * Math.max(1, r.values.length); }, 1);
    var perCell = promptCount() * (parseInt(form.elements.count.value, 10) || 0);
    var images = cells * perCell;
    var text = rows.map(function (r) { return (r.axis || "?") + " (" + r.values.length + ")"; }).join(" × ") +
      " = " + cells + " cell" + (cells === 1 ? "" : "s") + " × " + perCell + " image" + (perCell === 1 ? "" : "s") +
      " = " + images + " image" + (images === 1 ? "" : "s");
    var d = defaults[profile.value];
    if (d && d.ipm && images) text += " · about " + DGX.duration((images / d.ipm) * 60) + " at " + d.ipm.toFixed(1) + " img/min (based on " + (d.ipm_basis || "the profile's expected rate") + ")";
    var over = cells > maxCells;
    if (over) text += ". Too many: the limit is " + maxCells + " cells; drop a value or an axis";
    compareSummary.textContent = text + ".";
    compareSummary.classList.toggle("is-error", over);
    if (button) { button.textContent = "Queue comparison"; button.disabled = over; }
    return cells;
  }

  profile.addEventListener("change", applyProfile);
  form.addEventListener("input", updateCompare);
  form.addEventListener("change", updateCompare);
  form.addEventListener("input", update);
  form.addEventListener("change", update);
  form.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      if (form.requestSubmit) form.requestSubmit(); else form.submit();
    }
  });
  form.addEventListener("submit", function () {
    var b = document.getElementById("submit-job");
    if (b) { b.disabled = true; b.textContent = "Queuing…"; }
  });

  describe();
  update();
  updateCompare();
  var firstError = form.querySelector(".has-error input, .has-error select, .has-error textarea");
  (firstError || form.elements.prompts).focus();
})();
