// How the dashboard writes times, durations and values for operators.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  absoluteTime,
  clockTime,
  duration,
  relativeTime,
  shortTime,
  titleCase,
  value,
} from "../../services/operations/web/static/js/format.js";

const NOW = Date.parse("2025-03-04T12:00:00Z");
const ago = (seconds) => new Date(NOW - seconds * 1000).toISOString();

describe("relativeTime", () => {
  test("recent times read 'just now', older ones in the largest whole unit", () => {
    assert.equal(relativeTime(ago(5), NOW), "just now");
    assert.equal(relativeTime(ago(45), NOW), "45 s ago");
    assert.equal(relativeTime(ago(4 * 60 + 59), NOW), "4 min ago");
    assert.equal(relativeTime(ago(3 * 3600), NOW), "3 h ago");
    assert.equal(relativeTime(ago(47 * 3600), NOW), "47 h ago");
    assert.equal(relativeTime(ago(3 * 86400), NOW), "3 d ago");
  });

  test("a little clock skew still reads 'just now'; the real future reads 'in …'", () => {
    assert.equal(relativeTime(ago(-20), NOW), "just now");
    assert.equal(relativeTime(ago(-120), NOW), "in 2 min");
  });

  test("a missing or unreadable time is a dash", () => {
    assert.equal(relativeTime(null, NOW), "—");
    assert.equal(relativeTime("", NOW), "—");
    assert.equal(relativeTime("not a time", NOW), "—");
  });
});

describe("duration", () => {
  test("uses the two largest units", () => {
    assert.equal(duration(42), "42s");
    assert.equal(duration(65), "1m 05s");
    assert.equal(duration(3600 + 7 * 60 + 30), "1h 07m");
    assert.equal(duration(2 * 86400 + 5 * 3600 + 59), "2d 5h");
  });

  test("rounds, never goes negative, and accepts numeric strings", () => {
    assert.equal(duration(59.6), "1m 00s");
    assert.equal(duration(-5), "0s");
    assert.equal(duration("90"), "1m 30s");
  });

  test("a missing or non-numeric duration is a dash", () => {
    assert.equal(duration(null), "—");
    assert.equal(duration(undefined), "—");
    assert.equal(duration("soon"), "—");
  });
});

describe("value", () => {
  test("fewer decimals as numbers grow, and no float noise", () => {
    assert.equal(value(0.1 + 0.2), "0.3");
    assert.equal(value(0.12345), "0.123");
    assert.equal(value(3.14159), "3.14");
    assert.equal(value(42.46), "42.5");
    assert.equal(value(142.6), "143");
  });

  test("thousands are separated by a narrow no-break space", () => {
    assert.equal(value(1234567), "1\u202f234\u202f567");
    assert.equal(value(-1500), "-1\u202f500");
  });

  test("missing values are a dash, and text that is not a number is shown as is", () => {
    assert.equal(value(null), "—");
    assert.equal(value(undefined), "—");
    assert.equal(value(""), "—");
    assert.equal(value("n/a"), "n/a");
    assert.equal(value(0), "0");
  });
});

test("titleCase turns ids into words", () => {
  assert.equal(titleCase("air-quality"), "Air Quality");
  assert.equal(titleCase("street_lighting"), "Street Lighting");
  assert.equal(titleCase("casablanca"), "Casablanca");
  assert.equal(titleCase(null), "");
});

describe("clock times", () => {
  test("absoluteTime gives UTC, then the operator's local time", () => {
    const local = clockTime(new Date("2025-03-04T14:05:09Z"));
    assert.equal(absoluteTime("2025-03-04T14:05:09Z"), `2025-03-04 14:05:09 UTC · ${local} local`);
    assert.equal(absoluteTime(""), "");
    assert.equal(absoluteTime("garbage"), "garbage");
  });

  test("clockTime is local HH:MM:SS with leading zeros", () => {
    assert.equal(clockTime(new Date(2025, 2, 4, 7, 5, 9)), "07:05:09");
  });

  test("shortTime shows the time alone today, and the day and month otherwise", () => {
    const now = new Date(2025, 2, 4, 18, 0, 0);
    assert.equal(shortTime(new Date(2025, 2, 4, 9, 7).toISOString(), now), "09:07");
    assert.equal(shortTime(new Date(2025, 2, 1, 23, 30).toISOString(), now), "1 Mar 23:30");
    assert.equal(shortTime(null, now), "");
    assert.equal(shortTime("garbage", now), "");
  });
});
