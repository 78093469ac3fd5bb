// One modal for the actions that need words from the operator (assign, comment, resolve).
// Native prompt() would block the live stream's rendering and cannot be styled for a control room.

const dialog = () => document.getElementById("action-dialog");

/**
 * Ask for one line or paragraph of text.
 * Resolves with the trimmed text, or null when cancelled. An optional field may be left empty.
 */
export function askText({ title, subtitle = "", label, confirm, placeholder = "", required = true, initial = "" }) {
  const el = dialog();
  const form = document.getElementById("action-dialog-form");
  const input = document.getElementById("action-dialog-input");
  const confirmButton = document.getElementById("action-dialog-confirm");
  document.getElementById("action-dialog-title").textContent = title;
  document.getElementById("action-dialog-subtitle").textContent = subtitle;
  document.getElementById("action-dialog-label").textContent = label;
  confirmButton.textContent = confirm;
  input.value = initial;
  input.placeholder = placeholder;
  input.required = required;
  input.rows = required && label.toLowerCase().includes("assignee") ? 1 : 3;

  return new Promise((resolve) => {
    let done = false;
    const finish = (result) => {
      if (done) return;
      done = true;
      form.removeEventListener("submit", onSubmit);
      el.removeEventListener("cancel", onCancel);
      el.removeEventListener("close", onClose);
      cancelButton.removeEventListener("click", onCancel);
      input.removeEventListener("keydown", onKeyDown);
      if (el.open) el.close();
      resolve(result);
    };
    const onSubmit = (event) => {
      event.preventDefault();
      const text = input.value.trim();
      if (required && !text) {
        input.focus();
        return;
      }
      finish(text);
    };
    const onCancel = (event) => {
      event.preventDefault();
      finish(null);
    };
    const onClose = () => finish(null);
    // Enter submits, Shift+Enter makes a new line: operators type short notes fast.
    const onKeyDown = (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      }
    };
    const cancelButton = el.querySelector('[data-dialog="cancel"]');
    form.addEventListener("submit", onSubmit);
    el.addEventListener("cancel", onCancel);
    el.addEventListener("close", onClose);
    cancelButton.addEventListener("click", onCancel);
    input.addEventListener("keydown", onKeyDown);
    el.showModal();
    input.focus();
    input.select();
  });
}
