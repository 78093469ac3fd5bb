// The alerts the page knows, merged from REST snapshots, live SSE updates and action replies.
//
// A snapshot is a list fetched over REST; it may have been read on the server before an SSE
// update that reached us while the request was in flight. Every live update is stamped with a
// sequence number, and a snapshot (or action reply) never overwrites an alert that changed live
// after the request was sent. SSE delivery is ordered, so whatever the snapshot missed arrives
// live afterwards.

/** How long an alert that cleared in front of the operator stays on the "active" board. */
export const LINGER_MS = 60_000;

export class AlertStore extends EventTarget {
  constructor() {
    super();
    this.alerts = new Map();
    this._touched = new Map(); // alert_id -> seq of its last live update
    this._lingerUntil = new Map(); // alert_id -> epoch ms
    this._seq = 0;
  }

  /** Stamp taken before a request; pass it back with the response. */
  mark() {
    return ++this._seq;
  }

  get(alertId) {
    return this.alerts.get(alertId);
  }

  values() {
    return this.alerts.values();
  }

  /**
   * Merge a REST list. With `authoritativeActive`, the list is every active alert: an alert we
   * hold as active but the list lacks has cleared unseen, so it is dropped.
   */
  applySnapshot(alerts, mark, { authoritativeActive = false } = {}) {
    const seen = new Set();
    for (const alert of alerts) {
      seen.add(alert.alert_id);
      if ((this._touched.get(alert.alert_id) || 0) > mark) continue;
      this.alerts.set(alert.alert_id, alert);
    }
    if (authoritativeActive) {
      for (const [id, alert] of this.alerts) {
        if (alert.active && !seen.has(id) && (this._touched.get(id) || 0) <= mark) this.alerts.delete(id);
      }
    }
    this._emit([]);
  }

  /** Apply one alert from the stream (or, with `mark`, from an action's reply). */
  applyLive(alert, { mark = null, flash = true } = {}) {
    const id = alert.alert_id;
    if (mark !== null && (this._touched.get(id) || 0) > mark) return;
    const previous = this.alerts.get(id);
    if (previous && alert.revision < previous.revision) return;
    this._touched.set(id, this.mark());
    if (previous && previous.active && !alert.active) this._lingerUntil.set(id, Date.now() + LINGER_MS);
    this.alerts.set(id, alert);
    this._emit(flash ? [id] : []);
  }

  isLingering(alertId, now = Date.now()) {
    const until = this._lingerUntil.get(alertId);
    if (until === undefined) return false;
    if (until > now) return true;
    this._lingerUntil.delete(alertId);
    return false;
  }

  /** The earliest moment a lingering alert should leave the board, or null. */
  nextLingerExpiry() {
    let next = null;
    for (const until of this._lingerUntil.values()) if (next === null || until < next) next = until;
    return next;
  }

  clear() {
    this.alerts.clear();
    this._touched.clear();
    this._lingerUntil.clear();
    this._emit([]);
  }

  _emit(flash) {
    this.dispatchEvent(new CustomEvent("change", { detail: { flash } }));
  }
}
