// Keyboard shortcuts for the labelling form; the form works without them.
document.addEventListener("keydown", (event) => {
  const form = document.getElementById("label-form");
  if (!form || event.ctrlKey || event.metaKey || event.altKey) return;
  const typing = event.target instanceof HTMLInputElement && event.target.type === "text";
  if (typing) return;
  if (event.key === "Enter") {
    event.preventDefault();
    form.requestSubmit();
    return;
  }
  const choice = form.querySelector(`input[type=radio][data-key="${CSS.escape(event.key.toLowerCase())}"]`);
  if (choice) {
    event.preventDefault();
    choice.checked = true;
  }
});
