// LINE channel settings: copy the webhook URL (no inline script: the CSP forbids it).
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-copy]").forEach((button) => {
    button.addEventListener("click", () => {
      const input = document.querySelector(button.dataset.copy);
      const done = () => { button.textContent = button.dataset.copied; };
      if (navigator.clipboard) navigator.clipboard.writeText(input.value).then(done);
      else { input.select(); document.execCommand("copy"); done(); }
    });
  });
});
