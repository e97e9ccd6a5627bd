/*
 * Keeps a filter form's controls in step with the address bar.
 *
 *   <form data-url-state method="get" hx-get="…" hx-push-url="true">…</form>
 *
 * htmx restores an earlier list on Back from its snapshot of the page's HTML, and the HTML
 * holds the controls as first rendered, not as the user left them: the table would show one
 * filter and the controls another. After every history restore (and a page shown again from
 * the browser's back-forward cache) each named control takes its value from the URL; a
 * parameter that is absent means the control's empty choice.
 * No inline script (CSP): loaded with <script src> by the page that has such a form.
 */
(function () {
  "use strict";

  function setControl(control, params) {
    var name = control.name;
    if (!name || control.type === "submit" || control.type === "button") {
      return;
    }
    if (control.type === "checkbox" || control.type === "radio") {
      control.checked = params.getAll(name).indexOf(control.value) !== -1;
      return;
    }
    var value = params.has(name) ? params.get(name) : "";
    if (control.tagName === "SELECT") {
      var known = Array.prototype.some.call(control.options, function (option) {
        return option.value === value;
      });
      control.value = known ? value : "";
      return;
    }
    control.value = value;
  }

  function sync() {
    var params = new URLSearchParams(window.location.search);
    var forms = document.querySelectorAll("form[data-url-state]");
    for (var i = 0; i < forms.length; i++) {
      var controls = forms[i].elements;
      for (var j = 0; j < controls.length; j++) {
        setControl(controls[j], params);
      }
    }
  }

  document.addEventListener("htmx:historyRestore", sync);
  window.addEventListener("pageshow", sync);
  window.addEventListener("popstate", function () {
    // htmx restores the snapshot on popstate too; sync once it has been put back.
    window.setTimeout(sync, 0);
  });
})();
