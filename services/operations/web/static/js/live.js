// Live alert changes over Server-Sent Events.
//
// EventSource cannot send headers, so the token goes in ?access_token=. The browser reconnects on
// its own after a dropped connection and resends Last-Event-ID, so the server can resume. It gives
// up for good when the server answers with an error status (401, 5xx): then we reconnect
// ourselves with backoff, passing the last cursor as ?last_event_id= (ignored by a server that
// does not know it), and the page re-reads the alert list to cover any gap.

const BACKOFF_MS = [1000, 2000, 5000, 10000, 20000, 30000];
// Only enforced once the server has shown it sends heartbeats.
const HEARTBEAT_TIMEOUT_MS = 45000;

export function createLiveStream({ getToken, onAlert, onState, onReconnected, onGaveUp }) {
  let source = null;
  let lastEventId = "";
  let everOpened = false;
  let attempt = 0;
  let retryTimer = null;
  let lastSeen = 0;
  let heartbeats = false;
  let stopped = true;

  const watchdog = setInterval(() => {
    if (!stopped && source && heartbeats && Date.now() - lastSeen > HEARTBEAT_TIMEOUT_MS) {
      source.close();
      scheduleReconnect();
    }
  }, 5000);

  function url() {
    const params = new URLSearchParams({ access_token: getToken() || "" });
    if (lastEventId) params.set("last_event_id", lastEventId);
    return `/api/v1/stream?${params}`;
  }

  function connect() {
    clearTimeout(retryTimer);
    if (source) source.close();
    onState("reconnecting", everOpened ? "Reconnecting…" : "Connecting…");
    const es = new EventSource(url());
    source = es;
    es.addEventListener("open", () => {
      if (es !== source) return;
      attempt = 0;
      lastSeen = Date.now();
      onState("connected", "Live");
      if (everOpened) onReconnected();
      everOpened = true;
    });
    es.addEventListener("alert", (event) => {
      if (es !== source) return;
      lastSeen = Date.now();
      if (event.lastEventId) lastEventId = event.lastEventId;
      let payload;
      try {
        payload = JSON.parse(event.data);
      } catch {
        console.warn("madina: ignoring an SSE alert that is not JSON", event.data);
        return;
      }
      if (payload && payload.alert) onAlert(payload);
    });
    es.addEventListener("heartbeat", () => {
      if (es !== source) return;
      lastSeen = Date.now();
      heartbeats = true;
    });
    es.addEventListener("error", () => {
      if (es !== source || stopped) return;
      onState("reconnecting", "Reconnecting…");
      if (es.readyState === EventSource.CLOSED) {
        scheduleReconnect();
        onGaveUp();
      }
    });
  }

  function scheduleReconnect() {
    if (stopped) return;
    if (source) source.close();
    onState("reconnecting", "Reconnecting…");
    const delay = BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)];
    attempt += 1;
    clearTimeout(retryTimer);
    retryTimer = setTimeout(connect, delay);
  }

  return {
    start() {
      stopped = false;
      connect();
    },
    stop() {
      stopped = true;
      clearTimeout(retryTimer);
      if (source) source.close();
      source = null;
    },
    dispose() {
      this.stop();
      clearInterval(watchdog);
    },
  };
}
