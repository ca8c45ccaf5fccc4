// Step delivery charts; data comes from each canvas's data attributes (CSP: no inline script).
(function () {
  if (!window.Chart) return;
  document.querySelectorAll("canvas.steps-chart").forEach(function (canvas) {
    var series = JSON.parse(canvas.dataset.series);
    new Chart(canvas, {
      type: "bar",
      data: {
        labels: JSON.parse(canvas.dataset.labels),
        datasets: series.map(function (s) {
          return { label: s.label, data: s.data, backgroundColor: s.color, borderColor: s.color };
        }),
      },
      options: {
        indexAxis: canvas.dataset.horizontal ? "y" : "x",
        plugins: { legend: { position: "bottom" } },
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } }, x: { beginAtZero: true, ticks: { precision: 0 } } },
      },
    });
  });
})();
