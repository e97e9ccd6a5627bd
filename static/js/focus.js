/*
 * Keyboard focus after htmx swaps on the patient page, which would otherwise leave the
 * focus on an element that is gone (the browser then starts again at the top of the page):
 *
 * - a form sent by htmx: focus its first field marked in error, or else the message saying
 *   what was done ("Trough added: …");
 * - a row's action link that opened a form: focus the form's first field;
 * - Escape inside a row form closes it (its Cancel link), and the focus returns to the row's
 *   first action link.
 * No inline script (CSP): loaded with <script src> by the patient page.
 */
(function () {
  "use strict";

  var FIELDS = "input:not([type=hidden]), select, textarea";

  function focus(element) {
    if (!element) {
      return;
    }
    if (!element.matches("a, button, " + FIELDS) && !element.hasAttribute("tabindex")) {
      element.setAttribute("tabindex", "-1");
    }
    element.focus();
  }

  function firstField(root) {
    return root ? root.querySelector(FIELDS) : null;
  }

  function afterSettle(event) {
    var detail = event.detail || {};
    var trigger = detail.requestConfig && detail.requestConfig.elt;
    var target = detail.target;
    // An outerHTML swap replaced the target: look up its successor by id.
    if (target && !target.isConnected && target.id) {
      target = document.getElementById(target.id);
    }
    if (!trigger || !target) {
      return;
    }
    var rowId = trigger.getAttribute("data-return-focus");
    if (rowId) {
      var actions = document.getElementById(rowId);
      focus(actions && actions.querySelector("a, button"));
      return;
    }
    if (trigger.tagName === "FORM") {
      var error = target.querySelector(".field--error");
      if (error) {
        focus(firstField(error));
        return;
      }
      focus(target.querySelector(".message[role=status], [role=alert]"));
      return;
    }
    // The row's action link is gone with the swap: recognise the row form by where it landed.
    if (target.closest(".level-row__actions")) {
      focus(firstField(target.querySelector("form")));
    }
  }

  function onKey(event) {
    if (event.key !== "Escape" || !event.target.closest) {
      return;
    }
    var form = event.target.closest("form.row-form");
    var cancel = form && form.querySelector("a[data-return-focus]");
    if (cancel) {
      event.preventDefault();
      cancel.click();
    }
  }

  function start() {
    document.body.addEventListener("htmx:afterSettle", afterSettle);
    document.addEventListener("keydown", onKey);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
