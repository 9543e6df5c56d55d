// Client state, with no DOM: people, groups, conversations, the connection and the outbox of
// unsent messages. Only these methods change it; each returns what changed, for the UI to redraw.
import { GROUP, PRIVATE } from "./protocol.js";

export const convKey = (chat, name) => `${chat}:${name}`;

export class Store {
  constructor(me) {
    this.me = me;
    this.users = new Map(); // username -> {username, online}
    this.groups = new Map(); // name -> {name, owner, members}
    this.convs = new Map(); // key -> conversation
    this.active = null; // key of the open conversation
    this.connection = "connecting"; // "connecting", "open", "offline" or "ended"
    this.maxId = 0; // highest message Id seen: `Since` on reconnect
    this.countedUpTo = 0; // the server's Unread counts already include every message up to this Id
    this.outboxKey = `chat.outbox.${me}`;
    this.outbox = new Map(loadJSON(this.outboxKey, [])); // ClientId -> Send frame
  }

  conv(chat, name) {
    const key = convKey(chat, name);
    if (!this.convs.has(key)) {
      this.convs.set(key, { key, chat, name, messages: [], ids: new Set(), loaded: false, hasMore: false,
        loading: false, firstPaint: false, unread: 0, lastRead: 0 });
    }
    return this.convs.get(key);
  }

  get activeConv() { return this.active ? this.convs.get(this.active) : null; }

  get isOnline() { return this.connection === "open"; }

  isMember(groupName) { return this.groups.get(groupName)?.members.includes(this.me) ?? false; }

  // The one rule of "unread": a stored message by someone else past the conversation's read pointer.
  isUnread(conv, m) { return Boolean(m.Id) && m.From !== this.me && m.Id > conv.lastRead; }

  // Whether opening this conversation must ask the server for it (history, or membership).
  needsJoin(conv) { return !conv.loaded || (conv.chat === GROUP && !this.isMember(conv.name)); }

  setActive(conv) { this.active = conv ? conv.key : null; }

  setConnection(state) { this.connection = state; }

  applyState(frame) {
    this.users = new Map(frame.Users.map((u) => [u.Username, { username: u.Username, online: u.Online }]));
    this.groups = new Map(frame.Groups.map((g) => [g.Name, groupOf(g)]));
    for (const u of frame.Users) this.conv(PRIVATE, u.Username).unread = u.Unread ?? 0;
    for (const g of frame.Groups) this.conv(GROUP, g.Name).unread = g.Unread ?? 0;
    this.countedUpTo = frame.LastId ?? 0;
    if (!this.maxId) this.maxId = this.countedUpTo; // a first connection starts there: no replay
    if (this.active && !this.convs.has(this.active)) this.active = null;
  }

  applyGroup(frame) {
    if (frame.Event === "Deleted") {
      this.groups.delete(frame.Name);
      this.convs.delete(convKey(GROUP, frame.Name));
      if (this.active === convKey(GROUP, frame.Name)) this.active = null;
      return;
    }
    this.groups.set(frame.Name, groupOf(frame));
  }

  setOnline(username, online) {
    const user = this.users.get(username) ?? { username, online };
    user.online = online;
    this.users.set(username, user);
  }

  convOfMessage(m) {
    if (m.Chat === GROUP) return this.conv(GROUP, m.To);
    return this.conv(PRIVATE, m.From === this.me ? m.To : m.From);
  }

  // A server message: returns {conv, isNew, replaced, counted}. Its echo replaces the pending copy
  // (`replaced`); `counted` says it raised the unread count (it is new to the server's counts too).
  addMessage(m) {
    const conv = this.convOfMessage(m);
    this.maxId = Math.max(this.maxId, m.Id);
    let replaced = null;
    if (m.ClientId) {
      if (this.outbox.delete(m.ClientId)) this.saveOutbox();
      replaced = takePending(conv, m.ClientId);
    }
    if (conv.ids.has(m.Id)) return { conv, isNew: false, replaced, counted: false };
    insertSorted(conv, m);
    const counted = m.Id > this.countedUpTo && this.isUnread(conv, m);
    if (counted) conv.unread += 1;
    return { conv, isNew: true, replaced, counted };
  }

  // A page of history; returns {conv, added} with the messages that were not there yet.
  addHistory(frame) {
    const conv = this.conv(frame.Chat, frame.To);
    const oldestBefore = conv.messages.find((m) => m.Id)?.Id ?? Infinity;
    const added = [];
    for (const m of frame.Messages) {
      this.maxId = Math.max(this.maxId, m.Id);
      if (!conv.ids.has(m.Id)) { insertSorted(conv, m); added.push(m); }
    }
    // A page that reaches as far back as what we had says whether older ones remain.
    const first = frame.Messages[0]?.Id;
    if (!conv.loaded || first === undefined || first <= oldestBefore) conv.hasMore = frame.HasMore;
    conv.loaded = true;
    conv.loading = false;
    return { conv, added };
  }

  // A Join is on its way: its History is the conversation's first paint (scrolled to the bottom).
  beginJoin(conv) { conv.firstPaint = true; }

  // True once, for the History that answers a Join.
  takeFirstPaint(conv) {
    const first = conv.firstPaint;
    conv.firstPaint = false;
    return first;
  }

  // A Join with `Before` is on its way (true), or will not come (false: the socket closed).
  setLoading(conv, loading) { conv.loading = loading; }

  // A message typed here: shown at once as pending, sent now or on reconnect.
  addPending(conv, frame) {
    this.outbox.set(frame.ClientId, frame);
    this.saveOutbox();
    return pushPending(conv, frame, this.me);
  }

  restoreOutbox() {
    for (const frame of this.outbox.values()) {
      const conv = this.conv(frame.Chat, frame.To);
      if (!conv.messages.some((m) => m.ClientId === frame.ClientId)) pushPending(conv, frame, this.me);
    }
  }

  // The server refused a message for good: keep it visible as failed, stop resending it.
  // Returns {conv, message} of the message marked, or null.
  failPending(clientId, detail) {
    this.outbox.delete(clientId);
    this.saveOutbox();
    for (const conv of this.convs.values()) {
      const message = conv.messages.find((x) => x.pending && x.ClientId === clientId);
      if (message) { message.failed = detail; return { conv, message }; }
    }
    return null;
  }

  // Messages a moderator removed: gone from every conversation; returns [{conv, gone}] of those touched.
  removeMessages(ids) {
    const doomed = new Set(ids);
    const touched = [];
    for (const conv of this.convs.values()) {
      const gone = conv.messages.filter((m) => doomed.has(m.Id));
      if (!gone.length) continue;
      conv.messages = conv.messages.filter((m) => !doomed.has(m.Id));
      for (const m of gone) conv.ids.delete(m.Id);
      conv.unread = Math.min(conv.unread, this.countUnread(conv));
      touched.push({ conv, gone });
    }
    return touched;
  }

  // The reader saw the end of the conversation. Returns the Id to report in a `Read`, or 0 when
  // the server's pointer need not move (nothing new from anyone else: no frame for our own messages).
  markRead(conv) {
    const last = lastFromOthers(conv, this.me);
    if (!last || (last <= conv.lastRead && !conv.unread)) return 0;
    this.setRead(conv, last);
    return conv.lastRead;
  }

  // The read pointer moved (here, or a `Read` from another tab).
  setRead(conv, id) {
    conv.lastRead = Math.max(conv.lastRead, id);
    conv.unread = this.countUnread(conv);
  }

  countUnread(conv) {
    let n = 0;
    for (let i = conv.messages.length - 1; i >= 0 && (conv.messages[i].Id ?? Infinity) > conv.lastRead; i -= 1) {
      if (this.isUnread(conv, conv.messages[i])) n += 1;
    }
    return n;
  }

  totalUnread() {
    let n = 0;
    for (const conv of this.convs.values()) n += conv.unread;
    return n;
  }

  // Text survives a reload; images (megabytes) would not fit in localStorage, so they stay in memory.
  saveOutbox() {
    const texts = [...this.outbox].filter(([, frame]) => !frame.is_image);
    try { localStorage.setItem(this.outboxKey, JSON.stringify(texts)); } catch { /* private mode, full */ }
  }
}

function groupOf(g) { return { name: g.Name, owner: g.Owner, members: g.Members }; }

function pushPending(conv, frame, me) {
  const m = { Id: null, ClientId: frame.ClientId, From: me, To: frame.To, Chat: frame.Chat,
    Content: frame.Content, is_image: frame.is_image, Time: new Date().toISOString(), pending: true };
  conv.messages.push(m);
  return m;
}

// Pending messages sit at the end, so the search stops at the first stored one.
function takePending(conv, clientId) {
  for (let i = conv.messages.length - 1; i >= 0 && conv.messages[i].pending; i -= 1) {
    if (conv.messages[i].ClientId === clientId) return conv.messages.splice(i, 1)[0];
  }
  return null;
}

function lastFromOthers(conv, me) {
  for (let i = conv.messages.length - 1; i >= 0; i -= 1) {
    const m = conv.messages[i];
    if (m.Id && m.From !== me) return m.Id;
  }
  return 0;
}

function insertSorted(conv, m) {
  // Real messages by Id, pending ones (no Id yet) after them. New messages land at the end: O(1).
  const list = conv.messages;
  let i = list.length;
  while (i > 0 && (list[i - 1].Id === null || list[i - 1].Id > m.Id)) i -= 1;
  list.splice(i, 0, m);
  conv.ids.add(m.Id);
}

function loadJSON(key, fallback) {
  try { return JSON.parse(localStorage.getItem(key)) ?? fallback; } catch { return fallback; }
}
