// Parsing the silence form's matcher lines (Alertmanager style).
import assert from "node:assert/strict";
import { test } from "node:test";

import { parseMatchers } from "../../services/operations/web/static/js/silences.js";

test("each line is one matcher with one of the four operators", () => {
  const text = "rule_id=pm25-hourly\ncity!=rabat\nsource_id=~casa-.*\ndistrict!~anfa|maarif";
  assert.deepEqual(parseMatchers(text), [
    { name: "rule_id", op: "=", value: "pm25-hourly" },
    { name: "city", op: "!=", value: "rabat" },
    { name: "source_id", op: "=~", value: "casa-.*" },
    { name: "district", op: "!~", value: "anfa|maarif" },
  ]);
});

test("'=~' is read as the regex operator, not '=' followed by '~'", () => {
  assert.deepEqual(parseMatchers("name=~x"), [{ name: "name", op: "=~", value: "x" }]);
});

test("spaces around names and values, blank lines and comments are ignored; quotes are taken off", () => {
  const text = "  # same rule, same district\n\n  rule_id = pm25-hourly  \nlabels.zone=\"a b\"\n";
  assert.deepEqual(parseMatchers(text), [
    { name: "rule_id", op: "=", value: "pm25-hourly" },
    { name: "labels.zone", op: "=", value: "a b" },
  ]);
});

test("names may hold letters, digits, '_', '.' and '-', and not start with a digit", () => {
  assert.deepEqual(parseMatchers("a.b-c_9=1"), [{ name: "a.b-c_9", op: "=", value: "1" }]);
  assert.throws(() => parseMatchers("9a=1"), /Line 1: expected name=value/);
});

test("a bad line is reported with its number", () => {
  assert.throws(() => parseMatchers("rule_id=x\njust words"), /^Error: Line 2: expected name=value/);
});

test("an invalid regular expression is reported with its line", () => {
  assert.throws(() => parseMatchers("rule_id=x\nsource_id=~casa-(\n"), /Line 2: invalid regular expression/);
});

test("at least one matcher is needed", () => {
  assert.throws(() => parseMatchers(""), /Add at least one matcher/);
  assert.throws(() => parseMatchers("# only a comment\n"), /Add at least one matcher/);
});
