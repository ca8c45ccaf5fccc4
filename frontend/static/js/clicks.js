// A delivery's clicks per link (data in the canvas's data attributes: CSP allows no inline script).
(function () {
  var canvas = document.getElementById("clicks-chart");
  if (!window.Chart || !canvas) return;
  var series = JSON.parse(canvas.dataset.series);
  new Chart(canvas, {
    type: "bar",
    data: {
      labels: JSON.parse(canvas.dataset.labels).map(function (url) { return url.length > 40 ? url.slice(0, 39) + "…" : url; }),
      datasets: series.map(function (s) {
        return { label: s.label, data: s.data, backgroundColor: s.color, borderColor: s.color };
      }),
    },
    options: {
      indexAxis: "y",
      plugins: { legend: { position: "bottom" } },
      scales: { x: { beginAtZero: true, ticks: { precision: 0 } } },
    },
  });
})();
