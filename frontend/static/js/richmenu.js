// Live preview of the rich menu editor: redraw the SVG from the area rows on every edit.
(function () {
  "use strict";
  const NS = "http://www.w3.org/2000/svg";
  function redraw() {
    const svg = document.getElementById("richmenu-preview");
    const form = document.getElementById("richmenu-form");
    if (!svg || !form) return;
    const sizes = JSON.parse(svg.dataset.sizes);
    const size = sizes[form.querySelector("[name=size]").value];
    svg.setAttribute("viewBox", "0 0 " + size[0] + " " + size[1]);
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    form.querySelectorAll(".area-row").forEach(function (row) {
      const value = function (k) { return row.querySelector("[data-k=" + k + "]").value; };
      const label = value("label");
      const x = +value("x"), y = +value("y"), w = +value("width"), h = +value("height");
      if (!label || !w || !h) return;
      const group = document.createElementNS(NS, "g");
      const rect = document.createElementNS(NS, "rect");
      [["x", x], ["y", y], ["width", w], ["height", h]].forEach(function (p) { rect.setAttribute(p[0], p[1]); });
      if (x + w > size[0] || y + h > size[1]) rect.classList.add("outside");
      const text = document.createElementNS(NS, "text");
      text.setAttribute("x", x + w / 2);
      text.setAttribute("y", y + h / 2);
      text.textContent = label;
      group.appendChild(rect);
      group.appendChild(text);
      svg.appendChild(group);
    });
  }
  document.addEventListener("input", function (event) {
    if (event.target.closest("#richmenu-form")) redraw();
  });
  document.addEventListener("change", function (event) {
    if (event.target.closest("#richmenu-form")) redraw();
  });
  document.addEventListener("DOMContentLoaded", redraw);
})();
