// The analytics pages' charts; data comes from each canvas's data attributes (CSP: no inline script).
(function () {
  if (!window.Chart) return;
  document.querySelectorAll("canvas.analytics-canvas").forEach(function (canvas) {
    var spec = JSON.parse(canvas.dataset.chart);
    var rates = spec.series.some(function (s) { return s.kind === "line" && /%|％/.test(s.label); });
    var scales = { y: { beginAtZero: true, ticks: { precision: 0 } } };
    if (rates && spec.series.length > 1) scales.rate = { position: "right", beginAtZero: true, grid: { drawOnChartArea: false } };
    new Chart(canvas, {
      type: "bar",
      data: {
        labels: JSON.parse(canvas.dataset.labels),
        datasets: spec.series.map(function (s) {
          var isRate = rates && s.kind === "line" && /%|％/.test(s.label) && spec.series.length > 1;
          return {
            type: s.kind, label: s.label, data: s.data, backgroundColor: s.color, borderColor: s.color,
            yAxisID: isRate ? "rate" : (spec.horizontal ? undefined : "y"), spanGaps: true,
          };
        }),
      },
      options: {
        indexAxis: spec.horizontal ? "y" : "x",
        plugins: { legend: { position: "bottom" } },
        scales: spec.horizontal ? { x: { beginAtZero: true, ticks: { precision: 0 } } } : scales,
      },
    });
  });
})();
