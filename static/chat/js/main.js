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
import { setupActions } from "./ui/actions.js";
import { confirmDialog } from "./ui/dialog.js";
import { setupEditor } from "./ui/edit.js";
import { renderReplyBar } from "./ui/reply.js";
import * as search from "./ui/search.js";
import { toast } from "./ui/toast.js";

const $ = (id) => document.getElementById(id);
const config = JSON.parse($("chat-config").textContent);
const store = new Store(config.User, { editWindow: config.EditWindow ?? null, moderator: Boolean(config.Moderator) });
const testHooks = window.chatTestHooks === true; // set by the browser tests only, never by the page
const READ_GAP = 1000; // ms between two `Read`s of one conversation
let socket;
let editor; // ui/edit.js: the message being edited in place
let actionsBar; // ui/actions.js: the bar of the message in use
let seeking = null; // {key, id}: a quote was clicked whose original is older than what is loaded
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

  refreshHeader() {
    view.renderHeader(store, store.activeConv);
    search.syncScope(store);
  },

  messageAdded({ conv, isNew, changed, replaced, counted }, m) {
    const shown = store.active === conv.key;
    const wasAtBottom = shown && view.isAtBottom();
    if (counted && !(shown && wasAtBottom && document.visibilityState === "visible")) this.attention(m, conv);
    if (changed) editor.follow(m);
    if (shown && changed && !isNew) {
      this.redraw(conv, [[changed, m]]); // an edit or a reaction: that row (and replies quoting it)
    } else if (shown) {
      if (replaced) rows.removeMessages(conv, [replaced]);
      if (isNew) rows.insertMessages(store, conv, [m]);
      if (m.From === store.me || wasAtBottom) view.scrollToBottom();
      else if (isNew) view.showJump();
      this.markRead();
    }
    if (counted) this.refreshUnread(conv);
  },

  historyAdded({ conv, added, changed, around, newer }) {
    if (store.active !== conv.key) return;
    view.showLatest(conv.hasNewer);
    if (around) { // a page around a search result: it replaced what was held
      rows.renderConversation(store, conv);
      this.landOn(conv, around);
      return;
    }
    if (changed.length) this.redraw(conv, changed);
    if (newer) {
      rows.insertMessages(store, conv, added); // a page below the others (`After`): the view stays
    } else if (store.takeFirstPaint(conv)) {
      if (rows.isDrawnFrom(conv)) rows.insertMessages(store, conv, added);
      else rows.renderConversation(store, conv); // what was drawn is gone from the store (a Reset)
      view.scrollToBottom();
    } else {
      view.keepingPosition(() => rows.insertMessages(store, conv, added));
    }
    this.markRead();
    if (seeking?.key === conv.key) this.showOriginal(seeking.id);
  },

  // Messages held in a newer state ([old, new] pairs): their rows, and the replies quoting them.
  redraw(conv, pairs) {
    const ids = pairs.map(([, m]) => m.Id);
    const quoting = store.repliesTo(conv, ids).filter((r) => !ids.includes(r.Id));
    view.keepingView(() => {
      for (const [old, m] of pairs) rows.redrawMessage(store, conv, m, old);
      for (const r of quoting) rows.redrawMessage(store, conv, r);
    });
    renderReplyBar(store, conv);
    actionsBar.sync();
  },

  messagesRemoved(touched) {
    for (const { conv, gone } of touched) {
      const ids = gone.map((m) => m.Id);
      editor.drop(ids);
      if (store.active === conv.key) {
        view.keepingPosition(() => rows.removeMessages(conv, gone));
        const quoting = store.repliesTo(conv, ids);
        if (quoting.length) view.keepingView(() => { for (const r of quoting) rows.redrawMessage(store, conv, r); });
        renderReplyBar(store, conv);
      }
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

  // `at`: the Id of a message to show (a search result), loaded with the page around it unless held.
  open(chat, name, at = null) {
    const conv = store.conv(chat, name);
    store.setActive(conv);
    sessionStorage.setItem("chat.active", JSON.stringify([chat, name]));
    $("app").dataset.view = "conversation";
    this.refreshSidebar();
    this.refreshHeader();
    editor.stop({ focusComposer: false });
    seeking = null;
    rows.renderConversation(store, conv);
    renderReplyBar(store, conv);
    view.scrollToBottom();
    view.showLatest(conv.hasNewer);
    const held = at !== null && conv.byId.has(at) && !store.needsJoin(conv);
    if (at !== null && !held) this.joinAround(conv, at);
    else if (store.needsJoin(conv)) this.join(conv);
    this.markRead();
    $("input").focus();
    if (held) this.landOn(conv, at);
  },

  // A search result: its conversation, at that message.
  openAt(m) {
    const conv = store.convOfMessage(m);
    this.open(conv.chat, conv.name, m.Id);
  },

  joinAround(conv, id) {
    store.beginAround(conv, id);
    if (!socket.send(P.joinAround(conv.chat, conv.name, id))) {
      store.beginAround(conv, null);
      if (store.needsJoin(conv)) this.join(conv); // goes on reconnect; the result is not shown
      toast("You are offline: try again once the connection is back.");
    }
  },

  // Scroll to message `id`, mark it for a moment and focus it (or say it is gone).
  landOn(conv, id) {
    const row = rows.rowOf(conv, id);
    if (row) view.highlight(row);
    else toast("That message is no longer there.", "info", 4000);
  },

  // "Jump to latest" from an older page: the newest page, loaded afresh.
  jumpToLatest() {
    const conv = store.activeConv;
    if (!conv) return;
    store.dropHeld(conv);
    this.open(conv.chat, conv.name);
  },

  foundAdded(change) { search.renderFound(store, change); },

  resultsRemoved(ids) { search.removeResults(ids); },

  searchFailed() { search.searchFailed(store); },

  // Offline the frame cannot go: the socket's next open sends it (see `connected`).
  join(conv) {
    store.beginJoin(conv);
    socket.send(P.join(conv.chat, conv.name));
  },

  closeConversation() {
    store.setActive(null);
    sessionStorage.removeItem("chat.active");
    $("app").dataset.view = "list";
    renderReplyBar(store, null);
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
    let conv = store.activeConv;
    if (!conv) return false;
    if (conv.hasNewer) { this.jumpToLatest(); conv = store.activeConv; } // what is sent goes at the end
    sendNew(conv, P.send(conv.chat, conv.name, text, P.newClientId(), conv.replyDraft));
    this.cancelReply();
    return true;
  },

  startReply(m) {
    const conv = store.activeConv;
    if (!conv) return;
    store.setReplyDraft(conv, m.Id);
    renderReplyBar(store, conv);
    $("input").focus();
  },

  // Returns whether there was a reply to cancel (Escape in the composer).
  cancelReply() {
    const conv = store.activeConv;
    if (!conv?.replyDraft) return false;
    store.setReplyDraft(conv, null);
    renderReplyBar(store, conv);
    return true;
  },

  // ↑ in an empty composer: edit my last message here, if it still may be.
  editLast() {
    const conv = store.activeConv;
    const m = conv && store.lastEditable(conv);
    if (!m || !rows.rowOf(conv, m.Id)) return false;
    editor.start(m);
    rows.rowOf(conv, m.Id).scrollIntoView({ block: "nearest" });
    return true;
  },

  async removeMessage(m) {
    const whose = m.From === store.me ? "your message" : `this message from ${m.From}`;
    const ok = await confirmDialog({ title: "Remove this message?", ok: "Remove",
      text: `This removes ${whose} for everyone in the conversation. It cannot be undone.` });
    if (ok && !socket.send(P.removeMessage(m.Id))) toast("You are offline: try again once the connection is back.");
  },

  react(m, emoji, on) {
    if (!socket.send(P.react(m.Id, emoji, on))) toast("You are offline: try again once the connection is back.");
  },

  // A quote was clicked: show its original, loading older pages until it is there (or the
  // conversation's beginning is reached).
  showOriginal(id) {
    const conv = store.activeConv;
    seeking = null;
    if (!conv) return;
    const row = rows.rowOf(conv, id);
    if (row) { view.highlight(row); return; }
    if (!conv.hasMore || store.isRemoved(id)) { toast("That message is no longer there.", "info", 4000); return; }
    seeking = { key: conv.key, id };
    if (!conv.loading && !requestOlder(conv)) seeking = null;
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
    search.resend(store, (frame) => socket.send(frame));
    const saved = first ? JSON.parse(sessionStorage.getItem("chat.active") || "null") : null;
    if (saved) { this.open(saved[0], saved[1]); return; }
    const conv = store.activeConv;
    if (!conv) return;
    if (store.needsJoin(conv)) this.join(conv);
    if (conv.loading) { store.setLoading(conv, false); rows.renderEnds(conv); }
    if (conv.around) this.joinAround(conv, conv.around);
    store.setLoadingNewer(conv, false);
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

// Scrolled down to the end of an older page: the page just newer than it.
function loadNewer() {
  const conv = store.activeConv;
  if (!conv?.hasNewer || conv.loadingNewer || !view.isAtBottom()) return;
  const newest = conv.messages.findLast((m) => m.Id);
  if (newest && socket.send(P.joinAfter(conv.chat, conv.name, newest.Id))) store.setLoadingNewer(conv, true);
}

function loadOlder() {
  const conv = store.activeConv;
  if (!conv || !conv.hasMore || conv.loading || $("messages").scrollTop > 60) return;
  requestOlder(conv);
}

// Ask for the page before the oldest message held; false when it cannot go now (offline).
function requestOlder(conv) {
  const oldest = conv.messages.find((m) => m.Id);
  if (!oldest || !socket.send(P.join(conv.chat, conv.name, oldest.Id))) return false;
  store.setLoading(conv, true);
  rows.renderEnds(conv);
  return true;
}

function start() {
  store.restoreOutbox();
  setupComposer({
    maxText: config.TextMaxLength,
    imageLimit: config.ImageMaxBytes,
    onText: (text) => app.sendText(text),
    onImage: (dataUrl) => app.sendImage(dataUrl),
    onEditLast: () => app.editLast(),
    onEscape: () => app.cancelReply(),
  });
  editor = setupEditor({
    maxText: config.TextMaxLength,
    redraw: (m) => {
      const conv = store.convOfMessage(m);
      if (store.active === conv.key) view.keepingView(() => rows.redrawMessage(store, conv, conv.byId.get(m.Id) ?? m));
      actionsBar.sync();
    },
    save: (m, text) => socket.send(P.edit(m.Id, text)),
  });
  actionsBar = setupActions(store, {
    react: (m, emoji, on) => app.react(m, emoji, on),
    reply: (m) => app.startReply(m),
    edit: (m) => editor.start(m),
    remove: (m) => app.removeMessage(m),
    showOriginal: (id) => app.showOriginal(id),
  });
  setupControls(app, { send: (frame) => socket.send(frame), loadOlder, loadNewer });
  search.setupSearch(store, { send: (frame) => socket.send(frame), openAt: (m) => app.openAt(m) });
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
