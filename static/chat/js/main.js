// Wires the store, the socket and the UI together; the controller of the chat page.
import * as P from "./protocol.js";
import { ChatSocket } from "./socket.js";
import { Store, convKey } from "./store.js";
import { makeDispatch } from "./dispatch.js";
import { renderSidebar } from "./ui/sidebar.js";
import * as view from "./ui/conversation.js";
import { setupEmojiPicker } from "./ui/emoji.js";
import { setupGroupDialog } from "./ui/dialog.js";
import { setupAttachments } from "./ui/attach.js";
import * as notify from "./ui/notify.js";
import { toast } from "./ui/toast.js";
import { avatar } from "./ui/format.js";

const $ = (id) => document.getElementById(id);
const config = JSON.parse($("chat-config").textContent);
const store = new Store(config.User);
const MAX_TEXT = config.TextMaxLength;
let socket;
const retries = new Map(); // ClientId -> times the server said "not now"

const app = {
  store,
  isAtBottom: view.isAtBottom,

  refresh() {
    this.refreshSidebar();
    this.refreshHeader();
    const conv = store.activeConv;
    if (conv) this.refreshConversation(conv);
  },

  refreshSidebar() {
    renderSidebar(store, { filter: $("search").value, onOpen: (chat, name) => this.open(chat, name) });
    notify.setUnreadTitle(store.totalUnread());
  },

  refreshHeader() { view.renderHeader(store, store.activeConv); },

  refreshConversation(conv, { newMessage, history } = {}) {
    if (store.active !== conv.key) return;
    const wasAtBottom = view.isAtBottom();
    view.rerenderKeepingPosition(store, conv);
    if (newMessage) {
      if (newMessage.From === store.me || wasAtBottom) view.scrollToBottom();
      else view.showJump();
    } else if (history && conv.firstPaint) {
      conv.firstPaint = false;
      view.scrollToBottom();
    }
    this.markRead();
  },

  open(chat, name) {
    const conv = store.conv(chat, name);
    store.active = conv.key;
    sessionStorage.setItem("chat.active", JSON.stringify([chat, name]));
    $("app").dataset.view = "conversation";
    this.refreshSidebar();
    this.refreshHeader();
    const needsJoin = !conv.loaded || (chat === P.GROUP && !store.isMember(name));
    view.renderMessages(store, conv);
    view.scrollToBottom();
    if (needsJoin) {
      conv.firstPaint = true;
      socket.send(P.join(chat, name));
    }
    this.markRead();
    $("input").focus();
  },

  closeConversation() {
    store.active = null;
    sessionStorage.removeItem("chat.active");
    $("app").dataset.view = "list";
    this.refreshHeader();
    this.refreshSidebar();
  },

  // Tell the server (and so our other tabs) how far the open conversation has been read.
  markRead() {
    const conv = store.activeConv;
    if (!conv || document.visibilityState !== "visible" || !view.isAtBottom()) return;
    const last = conv.messages.reduce((max, m) => (m.Id && m.Id > max ? m.Id : max), 0);
    if (last && (last > conv.lastRead || conv.unread)) {
      conv.lastRead = Math.max(conv.lastRead, last);
      conv.unread = 0;
      socket.send(P.read(conv.chat, conv.name, last));
      this.refreshSidebar();
    }
  },

  attention(frame, conv) {
    notify.ping();
    const where = frame.Chat === P.GROUP ? ` in ${frame.To}` : "";
    if (document.visibilityState !== "visible" || store.active !== conv.key) notify.flashTitle(`${frame.From}${where}`);
  },

  sendText(text) {
    const conv = store.activeConv;
    if (!conv || !text.trim()) return false;
    if (text.length > MAX_TEXT) {
      toast(`A message has at most ${MAX_TEXT.toLocaleString()} characters; this one has ${text.length.toLocaleString()}.`);
      return false;
    }
    const frame = P.send(conv.chat, conv.name, text, P.newClientId());
    store.addPending(conv, frame);
    socket.send(frame); // if offline it stays in the outbox and goes out on reconnect
    this.refreshConversation(conv, { newMessage: { From: store.me } });
    return true;
  },

  sendImage(dataUrl) {
    const conv = store.activeConv;
    if (!conv) return false;
    const frame = P.sendImage(conv.chat, conv.name, dataUrl, P.newClientId());
    store.addPending(conv, frame);
    socket.send(frame);
    this.refreshConversation(conv, { newMessage: { From: store.me } });
    return true;
  },

  flushOutbox() {
    for (const frame of store.outbox.values()) socket.send(frame);
  },

  // Returns false once a message has been retried enough: the caller then marks it failed.
  retryLater(clientId) {
    const tries = (retries.get(clientId) ?? 0) + 1;
    retries.set(clientId, tries);
    if (tries > 5) return false;
    setTimeout(() => {
      const frame = store.outbox.get(clientId);
      if (frame) socket.send(frame);
    }, 1500 * tries);
    return true;
  },
};

function loadOlder() {
  const conv = store.activeConv;
  if (!conv || !conv.hasMore || conv.loading || $("messages").scrollTop > 60) return;
  const oldest = conv.messages.find((m) => m.Id);
  if (!oldest) return;
  conv.loading = true;
  socket.send(P.join(conv.chat, conv.name, oldest.Id));
  view.rerenderKeepingPosition(store, conv);
}

function setBanner(status) {
  const banner = $("banner");
  if (status.state === "open") {
    banner.hidden = true;
    document.body.classList.remove("offline");
    if (status.reconnected) toast("Reconnected.", "info", 2500);
    app.refreshHeader();
    return;
  }
  document.body.classList.add("offline");
  app.refreshHeader();
  if (status.code === 4003) { checkSession(); return; } // closed by a moderator: banned
  banner.hidden = false;
  const seconds = Math.max(1, Math.round(status.retryIn / 1000));
  banner.replaceChildren(`Connection lost. Reconnecting in ${seconds} s… Messages you send will go out then. `);
  const retry = document.createElement("button");
  retry.type = "button";
  retry.textContent = "Retry now";
  retry.addEventListener("click", () => socket.retryNow());
  banner.append(retry);
  if (status.attempt >= 2) checkSession();
}

// A socket refused at the handshake looks like any dropped connection; ask over HTTP.
async function checkSession() {
  try {
    const response = await fetch("/api/users/", { credentials: "same-origin" });
    if (response.status === 401) window.location.href = "/accounts/login/?next=/";
  } catch { /* the server is down: keep retrying */ }
}

function setupComposer() {
  const input = $("input");
  const grow = () => {
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
  };
  input.addEventListener("input", grow);
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    if (app.sendText(input.value)) {
      input.value = "";
      grow();
    }
    input.focus();
  });
  setupEmojiPicker({ toggle: $("emoji-toggle"), panel: $("emoji-panel"), textarea: input });
  setupAttachments({ limit: config.ImageMaxBytes, onSend: (dataUrl) => app.sendImage(dataUrl) });
  $("lightbox").addEventListener("click", () => $("lightbox").close());
}

function setupControls() {
  $("my-avatar").replaceWith(avatar(store.me, "me"));
  $("search").addEventListener("input", () => app.refreshSidebar());
  $("back").addEventListener("click", () => app.closeConversation());
  $("messages").addEventListener("scroll", () => {
    loadOlder();
    if (view.isAtBottom()) { $("jump").hidden = true; app.markRead(); }
  });
  $("messages").addEventListener("click", (event) => {
    const id = Number(event.target.closest("[data-report]")?.dataset.report);
    if (!id) return;
    const reason = window.prompt("Why are you reporting this message? (optional)");
    if (reason !== null) socket.send(P.report(id, reason.slice(0, 500)));
  });
  $("jump").addEventListener("click", () => { view.scrollToBottom(); app.markRead(); });
  $("delete-group").addEventListener("click", () => {
    const conv = store.activeConv;
    if (conv && window.confirm(`Delete the group “${conv.name}” and all its messages, for everyone?`)) {
      socket.send(P.remove(conv.name));
    }
  });
  $("leave-group").addEventListener("click", () => {
    const conv = store.activeConv;
    if (conv && window.confirm(`Leave the group “${conv.name}”?`)) socket.send(P.leave(conv.name));
  });
  const mute = $("mute");
  const showMute = () => {
    mute.textContent = notify.isMuted() ? "🔕" : "🔔";
    mute.setAttribute("aria-pressed", String(notify.isMuted()));
    mute.title = notify.isMuted() ? "Sound is off: click to turn it on" : "Sound is on: click to mute";
  };
  mute.addEventListener("click", () => { notify.setMuted(!notify.isMuted()); showMute(); });
  showMute();
  for (const type of ["pointerdown", "keydown"]) document.addEventListener(type, notify.unlockAudio, { once: true });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") { notify.stopFlash(); app.markRead(); }
  });
  window.addEventListener("focus", () => notify.stopFlash());
  setupGroupDialog(store, { onCreate: (name, members) => socket.send(P.create(name, members)) });
}

function start() {
  store.restoreOutbox();
  setupComposer();
  setupControls();
  const dispatch = makeDispatch(app);
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  let first = true;
  socket = new ChatSocket(`${scheme}://${window.location.host}${config.Socket}`, {
    onFrame: dispatch,
    onStatus: setBanner,
    onOpen: () => {
      socket.send(P.connect(store.maxId || null));
      app.flushOutbox();
      if (first) {
        first = false;
        const saved = JSON.parse(sessionStorage.getItem("chat.active") || "null");
        if (saved) app.open(saved[0], saved[1]);
      }
    },
  });
  app.refresh();
  socket.start();
  window.chatApp = app; // for debugging in the console
}

start();
export { convKey };
