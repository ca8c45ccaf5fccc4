// Rich menu editor: the preview is drawn from the area rows; areas are placed on grid cells by
// dragging over the preview (or with the 列・行 selects); a preset re-lays the areas at once.
(function () {
  "use strict";
  const NS = "http://www.w3.org/2000/svg";
  let selected = 0;
  let drag = null;

  function parts() {
    const svg = document.getElementById("richmenu-preview");
    const form = document.getElementById("richmenu-form");
    if (!svg || !form) return null;
    return {
      svg: svg,
      form: form,
      sizes: JSON.parse(svg.dataset.sizes),
      columns: +svg.dataset.columns,
      rowsBySize: JSON.parse(svg.dataset.rows),
      presets: JSON.parse(svg.dataset.presets),
      features: JSON.parse(svg.dataset.features), // [[key, label], ...] in the usual order
      size: form.querySelector("[data-k=size]").value,
      rows: Array.from(form.querySelectorAll(".area-row")),
    };
  }

  function field(row, key) { return row.querySelector("[data-k=" + key + "]"); }

  // Pixel edges of grid lines, with the same rounding as saas/richmenu/layouts.py.
  function edge(total, count, index) { return Math.floor(total * index / count); }

  function bounds(p, row) {
    const size = p.sizes[p.size], gridRows = p.rowsBySize[p.size];
    const c0 = +field(row, "col_from").value - 1, c1 = +field(row, "col_to").value;
    const r0 = +field(row, "row_from").value - 1, r1 = +field(row, "row_to").value;
    const x = edge(size[0], p.columns, c0), y = edge(size[1], gridRows, r0);
    return { x: x, y: y, width: edge(size[0], p.columns, c1) - x, height: edge(size[1], gridRows, r1) - y };
  }

  function svgElement(name, attributes) {
    const element = document.createElementNS(NS, name);
    Object.keys(attributes).forEach(function (key) { element.setAttribute(key, attributes[key]); });
    return element;
  }

  function drawGrid(p) {
    const size = p.sizes[p.size], gridRows = p.rowsBySize[p.size];
    for (let r = 0; r < gridRows; r++) {
      for (let c = 0; c < p.columns; c++) {
        const x = edge(size[0], p.columns, c), y = edge(size[1], gridRows, r);
        p.svg.appendChild(svgElement("rect", {
          class: "cell", x: x, y: y, "data-col": c, "data-row": r,
          width: edge(size[0], p.columns, c + 1) - x, height: edge(size[1], gridRows, r + 1) - y,
        }));
      }
    }
  }

  function redraw() {
    const p = parts();
    if (!p) return;
    const size = p.sizes[p.size];
    p.svg.setAttribute("viewBox", "0 0 " + size[0] + " " + size[1]);
    while (p.svg.firstChild) p.svg.removeChild(p.svg.firstChild);
    drawGrid(p);
    p.rows.forEach(function (row, index) {
      row.classList.toggle("selected", index === selected);
      const label = field(row, "label").value.trim();
      const custom = !field(row, "action").value.startsWith("feature:");
      field(row, "value").hidden = !custom;
      if (!label) return;
      const box = bounds(p, row);
      const group = svgElement("g", { class: "area-group", "data-index": index });
      group.appendChild(svgElement("rect", Object.assign({ class: index === selected ? "area selected" : "area" }, box)));
      const text = svgElement("text", { x: box.x + box.width / 2, y: box.y + box.height / 2 });
      text.textContent = label;
      group.appendChild(text);
      p.svg.appendChild(group);
    });
  }

  function setCells(row, c0, c1, r0, r1) {
    field(row, "col_from").value = String(Math.min(c0, c1) + 1);
    field(row, "col_to").value = String(Math.max(c0, c1) + 1);
    field(row, "row_from").value = String(Math.min(r0, r1) + 1);
    field(row, "row_to").value = String(Math.max(r0, r1) + 1);
  }

  function setRowOptions(p, size) {
    const count = p.rowsBySize[size];
    p.rows.forEach(function (row) {
      ["row_from", "row_to"].forEach(function (key) {
        const select = field(row, key);
        while (select.options.length > count) select.remove(select.options.length - 1);
        while (select.options.length < count) {
          const n = select.options.length + 1;
          select.add(new Option(String(n), String(n)));
        }
      });
    });
  }

  // The same rule as layouts.relayout: rows keep their order, missing areas get unused features.
  function applyPreset(key) {
    const p = parts();
    if (!p || !p.presets[key]) return;
    const preset = p.presets[key], size = preset[1], columns = preset[2], rows = preset[3];
    p.form.querySelector("[data-k=size]").value = size;
    setRowOptions(p, size);
    const gridRows = p.rowsBySize[size], width = p.columns / columns, height = gridRows / rows;
    const labelled = p.rows.filter(function (row) { return field(row, "label").value.trim(); });
    const used = labelled.map(function (row) { return field(row, "action").value.replace("feature:", ""); });
    const spare = p.features.filter(function (f) { return used.indexOf(f[0]) < 0; });
    const blank = p.rows.filter(function (row) { return !field(row, "label").value.trim(); });
    const ordered = labelled.concat(blank);
    ordered.forEach(function (row, index) {
      if (index >= columns * rows) { field(row, "label").value = ""; return; }
      if (!field(row, "label").value.trim() && spare.length) {
        const feature = spare.shift();
        field(row, "label").value = feature[1];
        field(row, "action").value = "feature:" + feature[0];
      }
      const c = index % columns, r = Math.floor(index / columns);
      setCells(row, c * width, (c + 1) * width - 1, r * height, (r + 1) * height - 1);
    });
  }

  function cellAt(p, event) {
    const point = p.svg.createSVGPoint();
    point.x = event.clientX;
    point.y = event.clientY;
    const local = point.matrixTransform(p.svg.getScreenCTM().inverse());
    const size = p.sizes[p.size], gridRows = p.rowsBySize[p.size];
    return {
      col: Math.max(0, Math.min(p.columns - 1, Math.floor(local.x * p.columns / size[0]))),
      row: Math.max(0, Math.min(gridRows - 1, Math.floor(local.y * gridRows / size[1]))),
    };
  }

  function keepLayout(p) { p.form.querySelector("[name=preset]").value = ""; }

  document.addEventListener("pointerdown", function (event) {
    const p = parts();
    if (!p || !p.svg.contains(event.target)) return;
    const group = event.target.closest(".area-group");
    if (group) selected = +group.dataset.index;
    drag = { start: cellAt(p, event), moved: !group };
    p.svg.setPointerCapture(event.pointerId);
    event.preventDefault();
    if (!group) {
      setCells(p.rows[selected], drag.start.col, drag.start.col, drag.start.row, drag.start.row);
      keepLayout(p);
    }
    redraw();
  });

  document.addEventListener("pointermove", function (event) {
    const p = parts();
    if (!p || !drag) return;
    const here = cellAt(p, event);
    if (!drag.moved && here.col === drag.start.col && here.row === drag.start.row) return;
    drag.moved = true;
    setCells(p.rows[selected], drag.start.col, here.col, drag.start.row, here.row);
    keepLayout(p);
    redraw();
  });

  document.addEventListener("pointerup", function () { drag = null; });

  document.addEventListener("focusin", function (event) {
    const row = event.target.closest && event.target.closest(".area-row");
    if (!row) return;
    selected = +row.dataset.index;
    redraw();
  });

  document.addEventListener("change", function (event) {
    if (!event.target.closest("#richmenu-form")) return;
    if (event.target.name === "preset") applyPreset(event.target.value);
    else if (event.target.closest(".cells")) keepLayout(parts());
    redraw();
  });

  document.addEventListener("input", function (event) {
    if (event.target.closest("#richmenu-form")) redraw();
  });

  document.addEventListener("DOMContentLoaded", redraw);
})();
