// The controller of the chat page: wires the store, the socket and the UI together. Server frames
// come in through dispatch.js, which changes the store and calls the methods here that draw what
// changed (one message row, one sidebar item), never the whole page.
import * as P from "./protocol.js";
import { ChatSocket } from "./socket.js";
import { Store } from "./store.js";
import { makeDispatch } from "./dispatch.js";
import { renderSidebar, renderUnread } from "./ui/sidebar.js";
import * as view from "./ui/conversation.js";
import * as rows from "./ui/messages.js";
import { setupComposer } from "./ui/composer.js";
import { showCatchingUp, showConnection } from "./ui/banner.js";
import { setupControls } from "./ui/controls.js";
import * as notify from "./ui/notify.js";

const $ = (id) => document.getElementById(id);
const config = JSON.parse($("chat-config").textContent);
const store = new Store(config.User);
const testHooks = window.chatTestHooks === true; // set by the browser tests only, never by the page
const READ_GAP = 1000; // ms between two `Read`s of one conversation
let socket;
const retries = new Map(); // ClientId -> times the server said "not now"
const reads = new Map(); // conversation key -> {due}: a `Read` went out less than READ_GAP ago

const app = {
  store,

  refresh() {
    this.refreshSidebar();
    this.refreshHeader();
    this.markRead();
  },

  refreshSidebar() {
    renderSidebar(store, { filter: $("search").value, onOpen: (chat, name) => this.open(chat, name) });
    notify.setUnreadTitle(store.totalUnread());
  },

  refreshUnread(conv) {
    renderUnread(store, conv);
    notify.setUnreadTitle(store.totalUnread());
  },

  refreshHeader() { view.renderHeader(store, store.activeConv); },

  messageAdded({ conv, isNew, changed, replaced, counted }, m) {
    const shown = store.active === conv.key;
    const wasAtBottom = shown && view.isAtBottom();
    if (counted && !(shown && wasAtBottom && document.visibilityState === "visible")) this.attention(m, conv);
    if (shown) {
      if (replaced) rows.removeMessages(conv, [replaced]);
      if (isNew) rows.insertMessages(store, conv, [m]);
      if (changed) rows.redrawMessage(store, conv, m, changed);
      if (m.From === store.me || wasAtBottom) view.scrollToBottom();
      else if (isNew) view.showJump();
      this.markRead();
    }
    if (counted) this.refreshUnread(conv);
  },

  historyAdded({ conv, added, changed }) {
    if (store.active !== conv.key) return;
    for (const [old, m] of changed) rows.redrawMessage(store, conv, m, old);
    if (store.takeFirstPaint(conv)) {
      if (rows.isDrawnFrom(conv)) rows.insertMessages(store, conv, added);
      else rows.renderConversation(store, conv); // what was drawn is gone from the store (a Reset)
      view.scrollToBottom();
    } else {
      view.keepingPosition(() => rows.insertMessages(store, conv, added));
    }
    this.markRead();
  },

  messagesRemoved(touched) {
    for (const { conv, gone } of touched) {
      if (store.active === conv.key) view.keepingPosition(() => rows.removeMessages(conv, gone));
      this.refreshUnread(conv);
    }
  },

  messageFailed({ conv, message }) { rows.redrawMessage(store, conv, message); },

  // The server found us too far behind to replay (`Reset`): the open conversation, now empty in
  // the store, is loaded afresh (its rows stay on screen until then); the others when opened.
  conversationsDropped() {
    const conv = store.activeConv;
    if (conv) this.join(conv);
  },

  caughtUp() { showCatchingUp(false); },

  open(chat, name) {
    const conv = store.conv(chat, name);
    store.setActive(conv);
    sessionStorage.setItem("chat.active", JSON.stringify([chat, name]));
    $("app").dataset.view = "conversation";
    this.refreshSidebar();
    this.refreshHeader();
    rows.renderConversation(store, conv);
    view.scrollToBottom();
    if (store.needsJoin(conv)) this.join(conv);
    this.markRead();
    $("input").focus();
  },

  // Offline the frame cannot go: the socket's next open sends it (see `connected`).
  join(conv) {
    store.beginJoin(conv);
    socket.send(P.join(conv.chat, conv.name));
  },

  closeConversation() {
    store.setActive(null);
    sessionStorage.removeItem("chat.active");
    $("app").dataset.view = "list";
    this.refreshHeader();
    this.refreshSidebar();
  },

  // Tell the server (and so our other tabs) how far the open conversation has been read.
  markRead() {
    const conv = store.activeConv;
    if (!conv || document.visibilityState !== "visible" || !view.isAtBottom()) return;
    if (!store.markRead(conv)) return;
    sendRead(conv);
    this.refreshUnread(conv);
  },

  attention(frame, conv) {
    notify.ping();
    if (testHooks) window.__chatPings += 1;
    const where = frame.Chat === P.GROUP ? ` in ${frame.To}` : "";
    if (document.visibilityState !== "visible" || store.active !== conv.key) notify.flashTitle(`${frame.From}${where}`);
  },

  sendText(text) {
    const conv = store.activeConv;
    return conv ? sendNew(conv, P.send(conv.chat, conv.name, text, P.newClientId())) : false;
  },

  sendImage(dataUrl) {
    const conv = store.activeConv;
    return conv ? sendNew(conv, P.sendImage(conv.chat, conv.name, dataUrl, P.newClientId())) : false;
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

  // After every (re)connect: catch up, resend what waited, and ask again for what was refused
  // by a closed socket (the open conversation's Join, a page of older messages).
  connected(first) {
    socket.send(P.connect(store.startConnect()));
    showCatchingUp(store.catchingUp);
    for (const frame of store.outbox.values()) socket.send(frame);
    const saved = first ? JSON.parse(sessionStorage.getItem("chat.active") || "null") : null;
    if (saved) { this.open(saved[0], saved[1]); return; }
    const conv = store.activeConv;
    if (!conv) return;
    if (store.needsJoin(conv)) this.join(conv);
    if (conv.loading) { store.setLoading(conv, false); rows.renderEnds(conv); }
  },
};

// Shown at once as pending; if offline it stays in the outbox and goes out on reconnect.
function sendNew(conv, frame) {
  const message = store.addPending(conv, frame);
  socket.send(frame);
  rows.insertMessages(store, conv, [message]);
  view.scrollToBottom();
  return true;
}

// At most one `Read` per conversation per READ_GAP (it spends the same rate budget as `Send`):
// the first goes at once, later ones wait and go as one, with the pointer as it is then.
function sendRead(conv) {
  const recent = reads.get(conv.key);
  if (recent) { recent.due = true; return; }
  socket.send(P.read(conv.chat, conv.name, conv.lastRead));
  const entry = { due: false };
  reads.set(conv.key, entry);
  setTimeout(() => {
    reads.delete(conv.key);
    if (entry.due && store.convs.get(conv.key) === conv) sendRead(conv);
  }, READ_GAP);
}

function loadOlder() {
  const conv = store.activeConv;
  if (!conv || !conv.hasMore || conv.loading || $("messages").scrollTop > 60) return;
  const oldest = conv.messages.find((m) => m.Id);
  if (!oldest || !socket.send(P.join(conv.chat, conv.name, oldest.Id))) return;
  store.setLoading(conv, true);
  rows.renderEnds(conv);
}

function start() {
  store.restoreOutbox();
  setupComposer({
    maxText: config.TextMaxLength,
    imageLimit: config.ImageMaxBytes,
    onText: (text) => app.sendText(text),
    onImage: (dataUrl) => app.sendImage(dataUrl),
  });
  setupControls(app, { send: (frame) => socket.send(frame), loadOlder });
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  let first = true;
  socket = new ChatSocket(`${scheme}://${window.location.host}${config.Socket}`, {
    onFrame: makeDispatch(app),
    onStatus: (status) => {
      store.setConnection({ open: "open", closed: "offline", ended: "ended" }[status.state]);
      showConnection(status, { retry: () => socket.retryNow() });
      app.refreshHeader();
    },
    onOpen: () => {
      app.connected(first);
      first = false;
    },
  });
  app.refresh();
  socket.start();
  if (testHooks) Object.assign(window, { chatApp: app, __chatPings: 0 });
}

start();
