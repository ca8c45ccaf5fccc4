// 「コピー」 buttons: data-copy names the field whose value is copied; the button says it worked
// (and a screen reader hears it through data-copy-status). No inline script: the CSP forbids it.
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-copy]").forEach((button) => {
    const label = button.textContent;
    button.addEventListener("click", () => {
      const input = document.querySelector(button.dataset.copy);
      const status = button.parentElement.querySelector("[data-copy-status]");
      const say = (text) => {
        button.textContent = text;
        if (status) status.textContent = text;
        setTimeout(() => { button.textContent = label; }, 4000);
      };
      const fallback = () => {
        input.select();
        say(document.execCommand("copy") ? button.dataset.copied : button.dataset.copyFailed || label);
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(input.value).then(() => say(button.dataset.copied), fallback);
      } else fallback();
    });
  });
});
