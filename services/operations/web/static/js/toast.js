// Transient messages in the corner. Errors stay longer than confirmations.

import { h } from "./dom.js";

const LIFETIME_MS = { success: 3500, info: 4500, error: 9000 };

/** kind: "success" | "info" | "error". */
export function toast(kind, title, message = "") {
  const container = document.getElementById("toasts");
  const close = h("button", { type: "button", class: "toast-x", "aria-label": "Dismiss" }, "×");
  const el = h("div", { class: `toast toast--${kind}`, "data-kind": kind, role: kind === "error" ? "alert" : null },
    h("div", { class: "toast-body" },
      h("div", { class: "toast-title" }, title),
      message ? h("div", { class: "toast-message" }, message) : null),
    close);
  const dismiss = () => {
    el.classList.add("toast--leaving");
    setTimeout(() => el.remove(), 200);
  };
  close.addEventListener("click", dismiss);
  container.append(el);
  while (container.children.length > 5) container.firstElementChild.remove();
  setTimeout(dismiss, LIFETIME_MS[kind] || 5000);
  return el;
}
