// Operator actions on an alert. The server publishes each command on the bus and answers once it
// has been applied, so the reply carries the alert as it now is.

import { askText } from "./dialog.js";
import { toast } from "./toast.js";

export const FORBIDDEN_MESSAGE = "your token cannot do this (needs scope alerts:write)";

const ACTIONS = {
  ack: {
    label: "Acknowledge",
    path: "ack",
    ask: null,
    done: () => "Acknowledged",
  },
  assign: {
    label: "Assign",
    path: "assign",
    ask: (alert) => ({
      title: "Assign alert", label: "Assignee", confirm: "Assign",
      placeholder: "operator or team, e.g. casa-env-oncall", initial: alert.assignee || "",
    }),
    body: (text) => ({ assignee: text }),
    done: (alert) => `Assigned to ${alert.assignee || "—"}`,
  },
  comment: {
    label: "Comment",
    path: "comment",
    ask: () => ({ title: "Add comment", label: "Comment", confirm: "Add comment", placeholder: "What you saw or did" }),
    body: (text) => ({ text }),
    done: () => "Comment added",
  },
  resolve: {
    label: "Resolve",
    path: "resolve",
    ask: () => ({
      title: "Resolve alert", label: "Note (optional)", confirm: "Resolve", required: false,
      placeholder: "How it was resolved",
    }),
    body: (text) => (text ? { note: text } : {}),
    done: () => "Resolved",
  },
};

export const ACTION_KINDS = Object.keys(ACTIONS);
export const actionLabel = (kind) => ACTIONS[kind].label;

/** Whether the action makes sense for the alert in its current status. */
export function actionEnabled(kind, alert) {
  if (kind === "ack") return alert.status === "active_unacknowledged" || alert.status === "cleared_unacknowledged";
  if (kind === "resolve") return Boolean(alert.active);
  return true;
}

export function createActions({ api, store, onPendingChange }) {
  const pending = new Set();
  const key = (id, kind) => `${id}\u0000${kind}`;

  async function run(kind, alertId) {
    const spec = ACTIONS[kind];
    const alert = store.get(alertId);
    if (!spec || !alert || pending.has(key(alertId, kind))) return;
    let body = {};
    if (spec.ask) {
      const text = await askText({ ...spec.ask(alert), subtitle: alert.message || alert.alert_id });
      if (text === null) return;
      body = spec.body(text);
    }
    pending.add(key(alertId, kind));
    onPendingChange(alertId);
    const mark = store.mark();
    try {
      const reply = await api.post(`/api/v1/alerts/${encodeURIComponent(alertId)}/${spec.path}`, body);
      if (reply && reply.alert) store.applyLive(reply.alert, { mark, flash: false });
      toast("success", spec.done((reply && reply.alert) || alert), alert.message || alertId);
    } catch (error) {
      if (error.status === 401) return; // the sign-in panel takes over
      const message = error.status === 403
        ? [FORBIDDEN_MESSAGE, error.detail && error.detail !== FORBIDDEN_MESSAGE ? error.detail : ""].filter(Boolean).join(" — ")
        : error.message;
      toast("error", `${spec.label} failed`, message);
    } finally {
      pending.delete(key(alertId, kind));
      onPendingChange(alertId);
    }
  }

  return {
    run,
    isPending: (alertId, kind) => pending.has(key(alertId, kind)),
  };
}
