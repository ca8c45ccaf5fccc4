// Portal behaviour without inline handlers (the Content-Security-Policy forbids inline scripts).
document.addEventListener("DOMContentLoaded", () => {
  // The clinic switcher submits as soon as a clinic is chosen.
  const switcher = document.getElementById("clinic-switcher");
  if (switcher) switcher.addEventListener("change", () => switcher.form.submit());
  // <form data-confirm="..."> asks before submitting; so does a <button data-confirm="...">.
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
  document.querySelectorAll("button[data-confirm], a[data-confirm]").forEach((el) => {
    el.addEventListener("click", (event) => {
      if (!window.confirm(el.dataset.confirm)) event.preventDefault();
    });
  });
});

// A chat opens at its newest message, and stays there when new messages arrive.
(() => {
  const toNewest = () => {
    const conversation = document.getElementById("conversation");
    if (conversation) conversation.scrollTop = conversation.scrollHeight;
  };
  document.addEventListener("DOMContentLoaded", toNewest);
  document.addEventListener("htmx:afterSwap", (event) => {
    if (event.target && event.target.closest && event.target.closest("#conversation")) toNewest();
  });
})();
