/* The dashboard's shared code: draws every <canvas class="chart" data-url="..."> with Chart.js
 * from the JSON its data-url returns ({labels, datasets}), and keeps the page fresh: every 60 s
 * (every 300 s while the tab is hidden) each chart re-reads its JSON and each region marked
 * [data-refresh] is re-read from the page's own URL.
 *
 * Canvas options, all optional: data-type (line, bar), data-stacked="true", data-index-axis="y",
 * data-label-link (a URL in which __label__ becomes the clicked day or host). A dataset with a "link"
 * (the busiest hosts) opens it when one of its bars is clicked.
 *
 * Everything in the data may come from a log: it is drawn on the canvas (labels, legends and
 * tooltips included) or set as textContent, never parsed as markup.
 */
(function () {
  "use strict";

  var VISIBLE_MS = 60 * 1000;
  var HIDDEN_MS = 300 * 1000;
  // Days and host names: what a label link may carry (the "other hosts" bucket is not one).
  var LABEL = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
  var charts = [];
  var lastRefresh = Date.now();
  var timer = null;
  var running = false;

  // A redirect or an HTML answer means the session ended: reloading shows the login page.
  function expired(response) {
    var type = response.headers.get("Content-Type") || "";
    return response.redirected || (response.ok && type.indexOf("application/json") !== 0);
  }

  // A note under the chart (kind "error" or "empty"); no message removes it.
  function showNote(canvas, kind, message) {
    var box = canvas.closest(".chart-box") || canvas.parentNode;
    var note = box.querySelector(".chart-" + kind);
    if (!message) {
      if (note) note.remove();
      return;
    }
    if (!note) {
      note = document.createElement("p");
      note.className = "chart-" + kind;
      note.setAttribute("role", "status");
      box.appendChild(note);
    }
    note.textContent = message;
  }

  // Blank axes look like a broken chart; an empty period (today just after midnight, a new
  // fleet) says so.
  function isEmpty(data) {
    return !data.datasets.some(function (dataset) {
      return dataset.data.some(function (value) {
        return value;
      });
    });
  }

  function fetchData(canvas) {
    return fetch(canvas.dataset.url, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    }).then(function (response) {
      if (expired(response)) {
        window.location.reload();
        throw new Error("session expired");
      }
      return response.json().then(
        function (body) {
          if (!response.ok) throw new Error(body.error || "The chart's data could not be loaded.");
          return body;
        },
        function () {
          throw new Error("The chart's data could not be loaded (" + response.status + ").");
        }
      );
    });
  }

  function onClick(canvas) {
    return function (event, elements, chart) {
      // The bar under the pointer (the tooltip lists the whole day): its host, if it has one.
      var hit = chart.getElementsAtEventForMode(event, "nearest", { intersect: true }, true);
      if (hit.length) {
        var link = chart.data.datasets[hit[0].datasetIndex].link;
        if (typeof link === "string" && link.charAt(0) === "/" && link.charAt(1) !== "/") {
          window.location.assign(link);
          return;
        }
      }
      var template = canvas.dataset.labelLink;
      if (!template || !elements.length) return;
      var label = chart.data.labels[elements[0].index];
      if (typeof label === "string" && LABEL.test(label)) {
        window.location.assign(template.replace("__label__", encodeURIComponent(label)));
      }
    };
  }

  function config(canvas, data) {
    var stacked = canvas.dataset.stacked === "true";
    var horizontal = canvas.dataset.indexAxis === "y";
    return {
      type: canvas.dataset.type || "line",
      data: data,
      options: {
        responsive: true,
        maintainAspectRatio: false,
        indexAxis: horizontal ? "y" : "x",
        interaction: { mode: "index", intersect: false, axis: horizontal ? "y" : "x" },
        scales: {
          x: { stacked: stacked, beginAtZero: horizontal },
          y: { stacked: stacked, beginAtZero: !horizontal },
        },
        plugins: { legend: { position: "bottom" } },
        onClick: onClick(canvas),
      },
    };
  }

  // Keeps the datasets a reader switched off in the legend switched off.
  function replaceData(chart, data) {
    var hidden = {};
    chart.data.datasets.forEach(function (dataset, i) {
      hidden[dataset.label] = !chart.isDatasetVisible(i);
    });
    data.datasets.forEach(function (dataset) {
      if (Object.prototype.hasOwnProperty.call(hidden, dataset.label)) dataset.hidden = hidden[dataset.label];
    });
    chart.data.labels = data.labels;
    chart.data.datasets = data.datasets;
    chart.update("none");
  }

  function draw(canvas) {
    return fetchData(canvas).then(
      function (data) {
        showNote(canvas, "error", "");
        showNote(canvas, "empty", isEmpty(data) ? "Nothing to draw: no connection stored for this period yet." : "");
        var chart = window.Chart.getChart(canvas);
        if (chart) replaceData(chart, data);
        else charts.push(new window.Chart(canvas, config(canvas, data)));
        canvas.dataset.loaded = "true";
      },
      function (error) {
        showNote(canvas, "error", error.message);
      }
    );
  }

  // Regions are re-read from the page's own URL: the server escaped them exactly as it did the
  // page, and nodes from DOMParser never run scripts. Ids match one to one.
  function refreshRegions() {
    var regions = document.querySelectorAll("[data-refresh][id]");
    if (!regions.length) return Promise.resolve();
    return fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (response.redirected) {
          window.location.reload();
          throw new Error("session expired");
        }
        return response.text();
      })
      .then(function (text) {
        var fresh = new DOMParser().parseFromString(text, "text/html");
        regions.forEach(function (region) {
          var replacement = fresh.getElementById(region.id);
          if (replacement) region.replaceWith(document.importNode(replacement, true));
        });
        document.dispatchEvent(new CustomEvent("dashboard:refreshed"));
      });
  }

  function refresh() {
    if (running) return Promise.resolve();
    running = true;
    lastRefresh = Date.now();
    var canvases = Array.prototype.slice.call(document.querySelectorAll("canvas.chart[data-url]"));
    var work = canvases.map(draw).concat([refreshRegions().catch(function () {})]);
    return Promise.all(work).then(function () {
      running = false;
      schedule();
    });
  }

  // One timer: due 60 s after the last refresh, or 300 s while hidden. Coming back to the tab
  // after more than a minute refreshes at once.
  function schedule() {
    window.clearTimeout(timer);
    var wait = lastRefresh + (document.hidden ? HIDDEN_MS : VISIBLE_MS) - Date.now();
    timer = window.setTimeout(refresh, Math.max(0, wait));
  }

  function start() {
    if (!window.Chart) return;
    var canvases = document.querySelectorAll("canvas.chart[data-url]");
    Promise.all(Array.prototype.map.call(canvases, draw)).then(schedule);
    document.addEventListener("visibilitychange", schedule);
  }

  // For the pages' own scripts and for tests: refresh now, and the drawn charts.
  window.AlphaCharts = { refresh: refresh, charts: charts, VISIBLE_MS: VISIBLE_MS, HIDDEN_MS: HIDDEN_MS };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
