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

  // plotly's range buttons are SVG shapes that the keyboard cannot reach: the figure's
  // buttons are drawn as real <button>s above the plot instead, and plotly's are hidden.
  var MONTHS = { month: 1, year: 12 };

  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }

  // Plotly's date strings ("YYYY-MM-DD HH:MM") are wall-clock times: work in UTC fields so
  // the browser's own time zone cannot shift them.
  function monthsBefore(text, months) {
    var m = /^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2}))?/.exec(text);
    if (!m) {
      return null;
    }
    var d = new Date(Date.UTC(+m[1], +m[2] - 1 - months, +m[3], +(m[4] || 0), +(m[5] || 0)));
    return (
      d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " +
      pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes())
    );
  }

  function rangeButtons(element, figure) {
    var axis = figure.layout && figure.layout.xaxis;
    var selector = axis && axis.rangeselector;
    var full = axis && axis.range;
    if (!selector || !selector.buttons || !full) {
      return;
    }
    selector.visible = false;
    var group = document.createElement("div");
    group.className = "chart-range";
    group.setAttribute("role", "group");
    group.setAttribute("aria-label", "Time range of the chart");
    selector.buttons.forEach(function (spec) {
      var button = document.createElement("button");
      button.type = "button";
      button.textContent = spec.label;
      button.setAttribute("aria-pressed", spec.step === "all" ? "true" : "false");
      button.addEventListener("click", function () {
        var range = full.slice();
        if (spec.step !== "all") {
          range[0] = monthsBefore(full[1], spec.count * MONTHS[spec.step]);
        }
        window.Plotly.relayout(element, { "xaxis.range": range });
        var all = group.querySelectorAll("button");
        for (var i = 0; i < all.length; i++) {
          all[i].setAttribute("aria-pressed", all[i] === button ? "true" : "false");
        }
      });
      group.appendChild(button);
    });
    var old = element.parentNode.querySelector(".chart-range");
    if (old) {
      old.remove();
    }
    element.parentNode.insertBefore(group, element);
  }

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
    rangeButtons(element, figure);
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
