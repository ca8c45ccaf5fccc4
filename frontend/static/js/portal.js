// Portal behaviour without inline handlers (the Content-Security-Policy forbids inline scripts).
document.addEventListener("DOMContentLoaded", () => {
  // The clinic switcher submits as soon as a clinic is chosen.
  const switcher = document.getElementById("clinic-switcher");
  if (switcher) switcher.addEventListener("change", () => switcher.form.submit());
  // Buttons with data-confirm ask before submitting their form.
  document.querySelectorAll("[data-confirm]").forEach((el) => {
    el.addEventListener("click", (event) => {
      if (!window.confirm(el.dataset.confirm)) event.preventDefault();
    });
  });
});
