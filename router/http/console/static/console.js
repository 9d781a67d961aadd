// Draws every chart on the page with uPlot from the JSON block its element names. No network, no inline script.
"use strict";
(function () {
  var PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];

  function draw(el) {
    var source = document.getElementById(el.dataset.chart);
    if (!source) return;
    var chart = JSON.parse(source.textContent);
    var data = [chart.x];
    var series = [{}];
    var points = 0;
    chart.series.forEach(function (s, i) {
      data.push(s.rates);
      s.rates.forEach(function (v) { if (v !== null) points += 1; });
      series.push({
        label: s.label,
        stroke: PALETTE[i % PALETTE.length],
        width: 2,
        spanGaps: false,
        points: { show: true, size: 5 },
        value: function (u, v) { return v === null ? "—" : v.toFixed(1) + "%"; },
      });
    });
    if (!chart.series.length) {
      el.dataset.points = "0";
      return;
    }
    var opts = {
      width: Math.max(280, el.clientWidth || 400),
      height: 220,
      series: series,
      scales: { y: { range: [0, 100] } },
      axes: [{}, { values: function (u, ticks) { return ticks.map(function (t) { return t + "%"; }); } }],
      legend: { live: true },
    };
    var plot = new uPlot(opts, data, el);
    el.dataset.points = String(points);
    el.dataset.series = String(chart.series.length);
    window.addEventListener("resize", function () {
      plot.setSize({ width: Math.max(280, el.clientWidth || 400), height: 220 });
    });
  }

  function start() {
    document.querySelectorAll("div.chart[data-chart]").forEach(draw);
    document.body.dataset.chartsReady = "true";
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
