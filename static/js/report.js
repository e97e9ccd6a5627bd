/*
 * The printable report: shows the "Print" buttons (hidden without JavaScript, where the
 * page says to use the browser's Print command) and opens the browser's print dialog.
 * No inline script (CSP): loaded with <script src> by templates/monitoring/report_base.html.
 */
(function () {
  "use strict";

  function start() {
    var buttons = document.querySelectorAll("[data-print]");
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].hidden = false;
      buttons[i].addEventListener("click", function () {
        window.print();
      });
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
