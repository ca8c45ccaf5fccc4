// 医療広告ガイドライン check, live: every <textarea data-adcheck> (or <input data-adcheck>) gets a
// panel below it listing the findings of what is typed, with the phrase highlighted. The check runs
// on the server (POST JSON to <body data-adcheck-url>), debounced, so the rules stay in one place.
// Spans are in code points (the server's str indices): we slice with Array.from, not String.slice.
(() => {
  const DELAY_MS = 400;
  const CONTEXT = 18;

  const csrfToken = () => {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (error) {
      return "";
    }
  };

  const element = (tag, className, text) => {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  };

  const excerpt = (chars, finding) => {
    const line = element("span", "adcheck-excerpt");
    const from = Math.max(0, finding.start - CONTEXT);
    const to = Math.min(chars.length, finding.end + CONTEXT);
    line.append((from > 0 ? "…" : "") + chars.slice(from, finding.start).join(""));
    line.append(element("mark", "", chars.slice(finding.start, finding.end).join("")));
    line.append(chars.slice(finding.end, to).join("") + (to < chars.length ? "…" : ""));
    return line;
  };

  const selectPhrase = (field, chars, finding) => {
    const start = chars.slice(0, finding.start).join("").length; // UTF-16 offsets for the selection
    const end = start + chars.slice(finding.start, finding.end).join("").length;
    field.focus();
    field.setSelectionRange(start, end);
  };

  const labels = (panel) => ({
    warning: panel.dataset.labelWarning || "注意",
    block: panel.dataset.labelBlock || "要承認",
  });

  const renderFinding = (field, panel, chars, finding) => {
    const item = element("li", `adcheck-finding adcheck-${finding.severity}`);
    item.dataset.rule = finding.rule_id;
    item.append(element("span", "badge adcheck-badge", labels(panel)[finding.severity] || finding.severity), " ");
    item.append(element("strong", "", finding.title), " ");
    item.append(excerpt(chars, finding));
    const jump = element("button", "adcheck-jump", panel.dataset.labelJump || "該当箇所を選択");
    jump.type = "button";
    jump.addEventListener("click", () => selectPhrase(field, chars, finding));
    item.append(" ", jump, element("p", "small", finding.explanation));
    if (finding.missing.length) {
      item.append(element("p", "small", `${panel.dataset.labelMissing || "記載がない項目"}：${finding.missing.join("・")}`));
    }
    item.append(element("p", "small muted", `${panel.dataset.labelSource || "根拠"}：${finding.source}`));
    return item;
  };

  const render = (field, panel, text, findings) => {
    const chars = Array.from(text);
    panel.replaceChildren();
    field.dataset.adcheckFindings = String(findings.length);
    if (!findings.length) return;
    const list = element("ul", "adcheck-list");
    findings.forEach((finding) => list.append(renderFinding(field, panel, chars, finding)));
    panel.append(list);
  };

  const bind = (field) => {
    if (field.dataset.adcheckBound) return;
    field.dataset.adcheckBound = "1";
    const url = document.body.dataset.adcheckUrl;
    if (!url) return;
    const target = field.dataset.adcheck && document.getElementById(field.dataset.adcheck);
    const panel = target || element("div", "adcheck-panel");
    Object.assign(panel.dataset, document.body.dataset.adcheckLabels ? JSON.parse(document.body.dataset.adcheckLabels) : {});
    panel.setAttribute("aria-live", "polite");
    panel.dataset.testid = "adcheck-panel";
    if (!target) field.insertAdjacentElement("afterend", panel);
    let timer = null;
    let sequence = 0;
    const run = async () => {
      const text = field.value;
      const mine = ++sequence;
      if (!text.trim()) return render(field, panel, "", []);
      try {
        const answer = await fetch(url, {
          method: "POST",
          headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
          body: JSON.stringify({ text }),
          credentials: "same-origin",
        });
        if (!answer.ok || mine !== sequence) return;
        render(field, panel, text, (await answer.json()).findings || []);
      } catch (error) {
        // Offline or signed out: the server checks again on submit.
      }
    };
    field.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(run, DELAY_MS);
    });
    if (field.value.trim()) run();
  };

  const bindAll = (root) => root.querySelectorAll("textarea[data-adcheck], input[data-adcheck]").forEach(bind);
  document.addEventListener("DOMContentLoaded", () => bindAll(document));
  document.addEventListener("htmx:afterSwap", (event) => bindAll(event.target || document));
})();
