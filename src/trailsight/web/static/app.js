/* trailsight web UI: draws the small charts from JSON data blocks (no inline script: see the CSP). */
(function () {
  "use strict";

  function readData(el) {
    var source = document.getElementById(el.getAttribute("data-source"));
    if (!source) { return null; }
    try { return JSON.parse(source.textContent); } catch (e) { return null; }
  }

  // Plotly reads a subset of HTML in labels (<b>, <a href>, <span style>); CloudTrail strings are
  // attacker-controlled, so they go in as entities and Plotly shows them as plain text.
  function plain(text) {
    return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }

  var layoutBase = {
    margin: { l: 40, r: 10, t: 6, b: 30 },
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "rgba(0,0,0,0)",
    font: { size: 11 },
    showlegend: false
  };
  var config = { displayModeBar: false, responsive: true, staticPlot: false };

  function draw(el) {
    if (typeof window.Plotly === "undefined" || el.getAttribute("data-drawn")) { return; }
    var data = readData(el);
    if (!data) { return; }
    var kind = el.getAttribute("data-chart");
    if (kind === "bars") {
      if (!data.days || !data.days.length) { el.classList.add("nodata"); return; }
      var day = 86400000;
      var first = Date.parse(data.days[0]), last = Date.parse(data.days[data.days.length - 1]);
      var pad = Math.max(day, (last - first) * 0.02);
      window.Plotly.newPlot(el, [{ type: "bar", x: data.days, y: data.counts, width: day * 0.8,
        marker: { color: "#2357c6" }, hovertemplate: "%{x|%Y-%m-%d}: %{y}<extra></extra>" }],
        Object.assign({}, layoutBase, {
          xaxis: { type: "date", tickformat: "%b %d", range: [first - pad, last + pad],
                   dtick: (last - first) < 14 * day ? day : undefined },
          yaxis: { rangemode: "tozero", tickformat: "d" } }), config);
    } else if (kind === "timeline") {
      if (!data.times || !data.times.length) { el.classList.add("nodata"); return; }
      var usual = { x: [], y: [] }, unusual = { x: [], y: [] };
      for (var i = 0; i < data.times.length; i++) {
        var target = data.unusual[i] ? unusual : usual;
        target.x.push(data.times[i]); target.y.push(plain(data.names[i]));
      }
      window.Plotly.newPlot(el, [
        { type: "scatter", mode: "markers", name: "usual", x: usual.x, y: usual.y,
          marker: { color: "#8a96a8", size: 7 }, hovertemplate: "%{x}<br>%{y}<extra>usual</extra>" },
        { type: "scatter", mode: "markers", name: "unusual", x: unusual.x, y: unusual.y,
          marker: { color: "#c53030", size: 10, symbol: "diamond" }, hovertemplate: "%{x}<br>%{y}<extra>unusual</extra>" }
      ], Object.assign({}, layoutBase, { margin: { l: 170, r: 10, t: 6, b: 30 }, showlegend: true,
        legend: { orientation: "h", y: 1.12 }, xaxis: { type: "date" }, yaxis: { automargin: true } }), config);
    }
    if (kind === "story") {
      if (!data.times || !data.times.length) { el.classList.add("nodata"); return; }
      var colours = { finding: "#c53030", signal: "#d69e2e", lineage: "#2357c6" };
      var traces = {};
      for (var j = 0; j < data.times.length; j++) {
        var k = data.kinds[j];
        if (!traces[k]) {
          traces[k] = { type: "scatter", mode: "markers", name: k, x: [], y: [], text: [],
            marker: { color: colours[k] || "#8a96a8", size: 11, symbol: k === "lineage" ? "triangle-right" : "circle" },
            hovertemplate: "%{x}<br>%{y}<br>%{text}<extra>" + k + "</extra>" };
        }
        traces[k].x.push(data.times[j]); traces[k].y.push(plain(data.who[j])); traces[k].text.push(plain(data.what[j]));
      }
      window.Plotly.newPlot(el, Object.keys(traces).map(function (key) { return traces[key]; }),
        Object.assign({}, layoutBase, { margin: { l: 200, r: 10, t: 6, b: 30 }, showlegend: true,
          legend: { orientation: "h", y: 1.15 }, xaxis: { type: "date" }, yaxis: { automargin: true } }), config);
    }
    el.setAttribute("data-drawn", "1");
  }

  function drawAll(root) {
    var nodes = (root || document).querySelectorAll("[data-chart]");
    for (var i = 0; i < nodes.length; i++) { draw(nodes[i]); }
  }

  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  document.addEventListener("htmx:load", function (evt) { drawAll(evt.target); });
})();
