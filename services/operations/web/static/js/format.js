// Formatting of times, durations and values for operators.

const pad = (n) => String(n).padStart(2, "0");

export function relativeTime(iso, now = Date.now()) {
  if (!iso) return "—";
  const seconds = Math.round((now - Date.parse(iso)) / 1000);
  if (Number.isNaN(seconds)) return "—";
  if (seconds < -30) return "in " + shortSpan(-seconds);
  if (seconds < 10) return "just now";
  return shortSpan(seconds) + " ago";
}

function shortSpan(seconds) {
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h`;
  return `${Math.floor(hours / 24)} d`;
}

/** "2025-03-04 14:05:09 UTC · 15:05:09 local" for tooltips. */
export function absoluteTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const utc = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
  return `${utc} · ${clockTime(d)} local`;
}

/** Local HH:MM:SS. */
export function clockTime(date) {
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

/** Local "HH:MM" today, otherwise "DD Mon HH:MM". */
export function shortTime(iso, now = new Date()) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (d.toDateString() === now.toDateString()) return hm;
  return `${d.getDate()} ${d.toLocaleString("en", { month: "short" })} ${hm}`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(Number(seconds))) return "—";
  let s = Math.max(0, Math.round(Number(seconds)));
  if (s < 60) return `${s}s`;
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${pad(m)}m`;
  return `${m}m ${pad(s)}s`;
}

/** Numbers as read on a gauge: no float noise, thin spaces for thousands. */
export function value(v) {
  if (v === null || v === undefined || v === "") return "—";
  const n = Number(v);
  if (!Number.isFinite(n)) return String(v);
  const abs = Math.abs(n);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 3;
  return n.toLocaleString("en", { maximumFractionDigits: digits }).replace(/,/g, "\u202f");
}

export function titleCase(text) {
  return String(text || "").replace(/[-_]+/g, " ").replace(/\b\w/g, (c) => c.toUpperCase());
}
