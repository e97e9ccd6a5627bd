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

  // Patient data must never leave the site through the chart. plotly.js offers a cloud
  // export ("Share chart…": a popup to cloud.plotly.com that receives the whole figure) and
  // older releases an "Edit in Chart Studio" link: switch every such path off, name no
  // destination for them, and list the modebar buttons allowed instead of those removed, so
  // a button added by a later plotly.js release does not appear unnoticed.
  // tests/browser/test_chart.py clicks every control and fails on any off-site request.
  var CONFIG = {
    responsive: true,
    displaylogo: false,
    editable: false,
    showSendToCloud: false,
    showEditInChartStudio: false,
    showLink: false,
    sendData: false,
    plotlyServerURL: "",
    modeBarButtons: [
      ["toImage"],
      ["zoom2d", "pan2d", "zoomIn2d", "zoomOut2d", "autoScale2d", "resetScale2d"]
    ],
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
