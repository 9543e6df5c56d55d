// One WebSocket with reconnect and backoff. It knows nothing of chat semantics: it reports
// its status, hands every frame to `onFrame`, and calls `onOpen` after each (re)connect.

const RESYNC = 4012; // close code: the server may have missed events for us (docs/protocol.md)

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
  }

  get isOpen() { return this.ws?.readyState === WebSocket.OPEN; }

  start() {
    clearTimeout(this.timer);
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.addEventListener("open", () => {
      this.attempt = 0;
      this.onStatus({ state: "open", reconnected: this.everOpened });
      this.everOpened = true;
      this.onOpen();
    });
    ws.addEventListener("message", (event) => {
      let frame;
      try { frame = JSON.parse(event.data); } catch { return; }
      this.onFrame(frame);
    });
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws) return;
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

  retryNow() {
    if (!this.isOpen) this.start();
  }

  send(frame) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }
}
