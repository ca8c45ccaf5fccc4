// The clinic dashboard's charts; data comes from each canvas's data attributes (CSP: no inline script).
(function () {
  if (!window.Chart) return;
  ["friend-chart", "message-chart", "coupon-chart"].forEach(function (id) {
    var canvas = document.getElementById(id);
    if (!canvas) return;
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
        plugins: { legend: { position: "bottom" } },
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
      },
    });
  });
})();
