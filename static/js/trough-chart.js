/*
 * Draws the plotly figures whose data the page embedded with json_script.
 *
 *   {{ chart|json_script:"trough-chart-data" }}
 *   <figure>
 *     <div class="chart" data-chart-source="trough-chart-data"></div>
 *     <figcaption>{{ chart_summary }}</figcaption>
 *   </figure>
 *
 * No inline script (CSP): this file and static/vendor/plotly/plotly-basic.min.js are loaded with
 * <script src>. It runs on load and again after every htmx swap, so a fragment that
 * replaces the chart (e.g. the ng/mL <-> nmol/L switch) is drawn without a page reload.
 */
(function () {
  "use strict";

  var CONFIG = {
    responsive: true,
    displaylogo: false,
    modeBarButtonsToRemove: ["select2d", "lasso2d"],
    toImageButtonOptions: { format: "png", filename: "tacrolimus-troughs" }
  };

  function draw(element) {
    var sourceId = element.getAttribute("data-chart-source");
    var source = sourceId ? document.getElementById(sourceId) : null;
    if (!source || typeof window.Plotly === "undefined") {
      return;
    }
    var text = source.textContent;
    // htmx settles after every swap: redraw only when this element's data changed.
    if (element.chartSourceText === text) {
      return;
    }
    var figure;
    try {
      figure = JSON.parse(text);
    } catch (error) {
      console.error("trough-chart: invalid JSON in #" + sourceId, error);
      return;
    }
    element.chartSourceText = text;
    window.Plotly.newPlot(element, figure.data || [], figure.layout || {}, CONFIG).then(
      function () {
        element.setAttribute("data-chart-drawn", "true");
        var fallback = element.querySelector("[data-chart-fallback]");
        if (fallback) {
          fallback.hidden = true;
        }
      }
    );
  }

  function drawAll() {
    var elements = document.querySelectorAll("[data-chart-source]");
    for (var i = 0; i < elements.length; i++) {
      draw(elements[i]);
    }
  }

  function purgeIn(root) {
    if (typeof window.Plotly === "undefined" || !root || !root.querySelectorAll) {
      return;
    }
    var drawn = root.querySelectorAll("[data-chart-drawn]");
    for (var i = 0; i < drawn.length; i++) {
      window.Plotly.purge(drawn[i]);
      drawn[i].chartSourceText = null;
    }
  }

  function start() {
    drawAll();
    // Free plotly's listeners before htmx replaces a drawn chart, then draw what came in.
    document.body.addEventListener("htmx:beforeSwap", function (event) {
      purgeIn(event.detail && event.detail.target);
    });
    document.body.addEventListener("htmx:afterSettle", drawAll);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
