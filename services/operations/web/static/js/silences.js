// Silences (Alertmanager-style matchers with a time window): the list, the create form and expiry.

import { fill, h } from "./dom.js";
import { absoluteTime, relativeTime } from "./format.js";
import { FORBIDDEN_MESSAGE } from "./actions.js";
import { toast } from "./toast.js";

// Longest operators first, so "=~" is not read as "=" followed by "~...".
const MATCHER = /^\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$/;

/** "name=value" lines to matcher objects; throws with the line number on a bad line. */
export function parseMatchers(text) {
  const matchers = [];
  text.split("\n").forEach((line, index) => {
    if (!line.trim() || line.trim().startsWith("#")) return;
    const match = MATCHER.exec(line);
    if (!match) throw new Error(`Line ${index + 1}: expected name=value, name!=value, name=~regex or name!~regex`);
    let [, name, op, value] = match;
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    if (op === "=~" || op === "!~") {
      try {
        new RegExp(`^(?:${value})$`);
      } catch (error) {
        throw new Error(`Line ${index + 1}: invalid regular expression: ${error.message}`);
      }
    }
    matchers.push({ name, op, value });
  });
  if (!matchers.length) throw new Error("Add at least one matcher");
  return matchers;
}

export function createSilences({ api, onChange }) {
  const form = document.getElementById("silence-form");
  const error = document.getElementById("silence-form-error");
  const listEl = document.getElementById("silence-list");
  const countEl = document.getElementById("silences-count");
  let silences = [];

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    let matchers;
    try {
      matchers = parseMatchers(form.elements.matchers.value);
    } catch (e) {
      showError(e.message);
      return;
    }
    const seconds = Number(form.elements.duration.value);
    const now = new Date();
    const body = {
      matchers,
      starts_at: now.toISOString(),
      ends_at: new Date(now.getTime() + seconds * 1000).toISOString(),
      comment: form.elements.comment.value.trim(),
    };
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    try {
      await api.post("/api/v1/silences", body);
      form.reset();
      toast("success", "Silence created", matchers.map(text).join(", "));
      await refresh();
      onChange();
    } catch (e) {
      if (e.status === 401) return;
      showError(e.status === 403 ? [FORBIDDEN_MESSAGE, e.detail].filter(Boolean).join(" — ") : e.message);
    } finally {
      button.disabled = false;
    }
  });

  function showError(message) {
    error.textContent = message;
    error.hidden = false;
  }

  async function refresh() {
    const reply = await api.get("/api/v1/silences");
    silences = (reply && reply.silences) || [];
    render();
  }

  function render() {
    const active = silences.filter((x) => x.active);
    countEl.textContent = active.length ? String(active.length) : "";
    const ordered = [...silences].sort((a, b) => Number(b.active) - Number(a.active) || Date.parse(a.ends_at) - Date.parse(b.ends_at));
    if (!ordered.length) {
      fill(listEl, h("div", { class: "empty empty--small" }, "No silences."));
      return;
    }
    fill(listEl, ...ordered.map((silence) => {
      const pending = Date.parse(silence.starts_at) > Date.now();
      const expire = h("button", {
        type: "button", class: "btn btn--ghost btn--sm", "data-silence-action": "delete",
        title: silence.active ? "End this silence now" : "Delete this silence",
      }, silence.active ? "Expire" : "Delete");
      expire.addEventListener("click", () => confirmThen(expire, () => remove(silence)));
      return h("div", { class: ["silence", silence.active ? "is-active" : "is-expired"], "data-silence-id": silence.silence_id },
        h("div", { class: "silence-head" },
          h("span", { class: ["pill", silence.active ? "pill--on" : "pill--off"] }, silence.active ? (pending ? "Pending" : "Active") : "Expired"),
          h("span", { class: "silence-when", title: `${absoluteTime(silence.starts_at)} → ${absoluteTime(silence.ends_at)}` },
            silence.active ? `ends ${relativeTime(silence.ends_at)}` : `ended ${relativeTime(silence.ends_at)}`),
          h("span", { class: "spacer" }),
          expire),
        h("div", { class: "matchers" }, (silence.matchers || []).map((m) => h("span", { class: "matcher mono" }, text(m)))),
        h("div", { class: "silence-meta" },
          h("span", { class: "silence-comment" }, silence.comment || ""),
          h("span", { class: "muted" }, silence.created_by ? ` — ${silence.created_by}` : "")));
    }));
  }

  // Two clicks instead of a modal: quick for operators, hard to do by accident.
  function confirmThen(button, fn) {
    if (button.dataset.confirming) {
      fn();
      return;
    }
    const original = button.textContent;
    button.dataset.confirming = "1";
    button.textContent = "Confirm?";
    button.classList.add("btn--danger");
    setTimeout(() => {
      delete button.dataset.confirming;
      button.textContent = original;
      button.classList.remove("btn--danger");
    }, 3000);
  }

  async function remove(silence) {
    try {
      await api.del(`/api/v1/silences/${encodeURIComponent(silence.silence_id)}`);
      toast("success", "Silence expired", (silence.matchers || []).map(text).join(", "));
      await refresh();
      onChange();
    } catch (e) {
      if (e.status === 401) return;
      toast("error", "Could not expire the silence", e.status === 403 ? FORBIDDEN_MESSAGE : e.message);
    }
  }

  return {
    refresh,
    render,
    /** Pre-fill the form from an alert: same rule in the same district. */
    prefill(alert) {
      const lines = [`rule_id=${alert.rule_id}`];
      if (alert.district) lines.push(`city=${alert.district.city_id}`, `district=${alert.district.district_id}`);
      else lines.push(`source_id=${alert.source && alert.source.entity_id}`);
      form.elements.matchers.value = lines.join("\n");
      form.elements.comment.value = "";
      error.hidden = true;
      form.elements.comment.focus();
    },
  };
}

function text(m) {
  return `${m.name}${m.op}${m.value}`;
}
