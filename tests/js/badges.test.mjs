// Severity and status badges: class names the stylesheet colours by, and the text operators read.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";

import { installFakeDom } from "./fake-dom.mjs";

let severityBadge;
let statusBadge;
before(async () => {
  installFakeDom();
  ({ severityBadge, statusBadge } = await import("../../services/operations/web/static/js/badges.js"));
});

describe("severityBadge", () => {
  test("is coloured by severity and labelled in words", () => {
    const badge = severityBadge("critical");
    assert.equal(badge.tagName, "span");
    assert.equal(badge.getAttribute("class"), "sev-badge sev-critical");
    assert.equal(badge.getAttribute("data-severity"), "critical");
    assert.equal(badge.textContent, "Critical");
  });

  test("shows a severity it does not know as sent, and a dash for none", () => {
    assert.equal(severityBadge("catastrophic").textContent, "catastrophic");
    assert.equal(severityBadge(null).textContent, "—");
    assert.equal(severityBadge(null).getAttribute("data-severity"), null);
  });
});

describe("statusBadge", () => {
  test("is coloured by status and labelled with its two facts", () => {
    const badge = statusBadge("active_unacknowledged");
    assert.equal(badge.getAttribute("class"), "status-badge st-active-unacknowledged");
    assert.equal(badge.getAttribute("data-status-badge"), "active_unacknowledged");
    assert.equal(badge.textContent, "Active · Unacked");
    const [dot] = badge.children;
    assert.equal(dot.getAttribute("class"), "status-dot");
    assert.equal(dot.getAttribute("aria-hidden"), "true");
  });

  test("a short label replaces the text but not the colour", () => {
    const badge = statusBadge("cleared_acknowledged", "Cleared");
    assert.equal(badge.textContent, "Cleared");
    assert.equal(badge.getAttribute("class"), "status-badge st-cleared-acknowledged");
  });

  test("an unknown status is shown as sent, a missing one as a dash", () => {
    assert.equal(statusBadge("snoozed").textContent, "snoozed");
    assert.equal(statusBadge(undefined).textContent, "—");
    assert.equal(statusBadge(undefined).getAttribute("class"), "status-badge st-");
  });
});
