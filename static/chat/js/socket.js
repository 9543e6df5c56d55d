// One WebSocket with reconnect and backoff. It knows nothing of chat semantics: it reports
// its status, hands every frame to `onFrame`, and calls `onOpen` after each (re)connect.

const RESYNC = 4012; // close code: the server may have missed events for us (docs/protocol.md)
// Close codes after which reconnecting cannot help: the session ended (4001) or the user was
// banned (4003). The status "ended" tells the page to go and ask the server what now.
const FINAL = new Set([4001, 4003]);

export class ChatSocket {
  constructor(url, { onFrame, onOpen, onStatus }) {
    this.url = url;
    this.onFrame = onFrame;
    this.onOpen = onOpen;
    this.onStatus = onStatus;
    this.ws = null;
    this.attempt = 0;
    this.timer = null;
    this.everOpened = false;
    this.ended = false;
  }

  get isOpen() { return this.ws?.readyState === WebSocket.OPEN; }

  // Connecting or open: a new socket now would run beside this one.
  get isLive() { return this.ws !== null && this.ws.readyState <= WebSocket.OPEN; }

  start() {
    clearTimeout(this.timer);
    if (this.ended || this.isLive) return;
    const ws = new WebSocket(this.url);
    this.ws = ws;
    // Every listener checks that its socket is still the current one: a replaced socket is silent.
    ws.addEventListener("open", () => {
      if (this.ws !== ws) return;
      this.attempt = 0;
      this.onStatus({ state: "open", reconnected: this.everOpened });
      this.everOpened = true;
      this.onOpen();
    });
    ws.addEventListener("message", (event) => {
      if (this.ws !== ws) return;
      let frame;
      try { frame = JSON.parse(event.data); } catch { return; }
      this.onFrame(frame);
    });
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (FINAL.has(event.code)) {
        this.ended = true;
        this.onStatus({ state: "ended", code: event.code });
        return;
      }
      this.scheduleReconnect(event.code);
    });
  }

  scheduleReconnect(code) {
    // 0.5 s, 1 s, 2 s ... capped at 15 s, with jitter so a restarted server is not stormed.
    // 4012: the server asks every socket of a process to catch up; spread them over 0-3 s.
    const base = Math.min(15000, 500 * 2 ** this.attempt);
    const delay = code === RESYNC && this.attempt === 0
      ? Math.round(Math.random() * 3000)
      : Math.round(base * (0.75 + Math.random() * 0.5));
    this.attempt += 1;
    this.onStatus({ state: "closed", code, retryIn: delay, attempt: this.attempt });
    this.timer = setTimeout(() => this.start(), delay);
  }

  // "Retry now": a no-op while a socket is already connecting or open.
  retryNow() { this.start(); }

  send(frame) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }
}
