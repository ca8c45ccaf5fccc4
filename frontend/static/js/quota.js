// The daily usage chart on the quota page; data comes from the canvas's data attributes (CSP: no inline script).
(function () {
  var canvas = document.getElementById("daily-usage");
  if (!canvas || !window.Chart) return;
  new Chart(canvas, {
    type: "bar",
    data: {
      labels: JSON.parse(canvas.dataset.labels),
      datasets: [{ label: canvas.dataset.seriesLabel, data: JSON.parse(canvas.dataset.counts), backgroundColor: "#06c755" }],
    },
    options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
  });
})();
