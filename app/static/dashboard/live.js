// Live updates: the event stream when it is up; polling the overview while it is down
// (every 5 s while a priority screenshot is active, else every 30 s: the original's adaptive polling).
const FAST_POLL_MS = 5000;
const SLOW_POLL_MS = 30000;
// After the stream was refused outright (EventSource gives up), try again this long after.
const RECONNECT_MS = 5000;
const KINDS = ["status", "screenshot", "priority", "error"];

export class Live {
  constructor({ onEvent, onStateChange, poll, fastPolling }) {
    this.onEvent = onEvent;
    this.onStateChange = onStateChange;
    this.poll = poll;
    this.fastPolling = fastPolling;
    this.source = null;
    this.everOpened = false;
    this.pollTimer = null;
    this.reconnectTimer = null;
    this.state = "connecting";
  }

  start() {
    this.connect();
  }

  connect() {
    this.reconnectTimer = null;
    const source = new EventSource("/api/events", { withCredentials: true });
    this.source = source;
    source.addEventListener("open", () => {
      const resumed = this.everOpened;
      this.everOpened = true;
      this.setState("live");
      this.stopPolling();
      // Reconnected after a gap (a restart may have lost what the stream would have replayed):
      // one overview read puts every tile right.
      if (resumed) this.poll();
    });
    source.addEventListener("error", () => {
      this.setState("lost");
      this.startPolling();
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        if (!this.reconnectTimer) this.reconnectTimer = setTimeout(() => this.connect(), RECONNECT_MS);
      }
    });
    for (const kind of KINDS) {
      source.addEventListener(kind, (message) => {
        let data;
        try {
          data = JSON.parse(message.data);
        } catch {
          return;
        }
        this.onEvent(kind, data, message.lastEventId);
      });
    }
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.onStateChange(state);
  }

  // The interval is chosen again every second: a priority screenshot that appears (or ends) while the
  // stream is down switches between 5 s and 30 s at once, not after the next slow poll.
  startPolling() {
    if (this.pollTimer) return;
    let lastPoll = performance.now();
    let inFlight = false;
    this.pollTimer = setInterval(async () => {
      const interval = this.fastPolling() ? FAST_POLL_MS : SLOW_POLL_MS;
      if (inFlight || performance.now() - lastPoll < interval) return;
      inFlight = true;
      lastPoll = performance.now();
      try {
        await this.poll();
      } finally {
        inFlight = false;
      }
    }, 1000);
  }

  stopPolling() {
    clearInterval(this.pollTimer);
    this.pollTimer = null;
  }
}
