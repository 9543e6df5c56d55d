// Client state, with no DOM: people, groups, conversations and the outbox of unsent messages.
import { GROUP, PRIVATE } from "./protocol.js";

export const convKey = (chat, name) => `${chat}:${name}`;

export class Store {
  constructor(me) {
    this.me = me;
    this.users = new Map(); // username -> {username, online}
    this.groups = new Map(); // name -> {name, owner, members}
    this.convs = new Map(); // key -> conversation
    this.active = null; // key of the open conversation
    this.maxId = 0; // highest message Id seen: `Since` on reconnect
    this.outboxKey = `chat.outbox.${me}`;
    this.outbox = new Map(loadJSON(this.outboxKey, [])); // ClientId -> Send frame
  }

  conv(chat, name) {
    const key = convKey(chat, name);
    if (!this.convs.has(key)) {
      this.convs.set(key, { key, chat, name, messages: [], loaded: false, hasMore: false, loading: false, unread: 0, lastRead: 0 });
    }
    return this.convs.get(key);
  }

  get activeConv() { return this.active ? this.convs.get(this.active) : null; }

  isMember(groupName) { return this.groups.get(groupName)?.members.includes(this.me) ?? false; }

  applyState(frame) {
    this.users = new Map(frame.Users.map((u) => [u.Username, { username: u.Username, online: u.Online }]));
    this.groups = new Map(frame.Groups.map((g) => [g.Name, groupOf(g)]));
    for (const u of frame.Users) this.conv(PRIVATE, u.Username).unread = u.Unread ?? 0;
    for (const g of frame.Groups) this.conv(GROUP, g.Name).unread = g.Unread ?? 0;
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

  // Adds a server message; returns {conv, isNew}. An echo replaces its pending copy.
  addMessage(m) {
    const conv = this.convOfMessage(m);
    this.maxId = Math.max(this.maxId, m.Id);
    if (m.ClientId && this.outbox.delete(m.ClientId)) this.saveOutbox();
    conv.messages = conv.messages.filter((x) => !(x.pending && x.ClientId && x.ClientId === m.ClientId));
    if (conv.messages.some((x) => x.Id === m.Id)) return { conv, isNew: false };
    insertSorted(conv.messages, m);
    return { conv, isNew: true };
  }

  addHistory(frame) {
    const conv = this.conv(frame.Chat, frame.To);
    const oldestBefore = oldestId(conv);
    const known = new Set(conv.messages.map((m) => m.Id));
    for (const m of frame.Messages) {
      this.maxId = Math.max(this.maxId, m.Id);
      if (!known.has(m.Id)) insertSorted(conv.messages, m);
    }
    // A page that reaches as far back as what we had says whether older ones remain.
    const first = frame.Messages[0]?.Id;
    if (!conv.loaded || first === undefined || first <= oldestBefore) conv.hasMore = frame.HasMore;
    conv.loaded = true;
    conv.loading = false;
    return conv;
  }

  // A message typed here: shown at once as pending, sent now or on reconnect.
  addPending(conv, frame) {
    const m = { Id: null, ClientId: frame.ClientId, From: this.me, To: conv.name, Chat: conv.chat,
      Content: frame.Content, is_image: frame.is_image, Time: new Date().toISOString(), pending: true };
    conv.messages.push(m);
    this.outbox.set(frame.ClientId, frame);
    this.saveOutbox();
    return m;
  }

  restoreOutbox() {
    for (const frame of this.outbox.values()) {
      const conv = this.conv(frame.Chat, frame.To);
      if (!conv.messages.some((m) => m.ClientId === frame.ClientId)) {
        conv.messages.push({ Id: null, ClientId: frame.ClientId, From: this.me, To: frame.To, Chat: frame.Chat,
          Content: frame.Content, is_image: frame.is_image, Time: new Date().toISOString(), pending: true });
      }
    }
  }

  // The server refused a message for good: keep it visible as failed, stop resending it.
  failPending(clientId, detail) {
    this.outbox.delete(clientId);
    this.saveOutbox();
    for (const conv of this.convs.values()) {
      const m = conv.messages.find((x) => x.pending && x.ClientId === clientId);
      if (m) { m.failed = detail; return conv; }
    }
    return null;
  }

  // Messages a moderator removed: gone from every conversation; returns the ones touched.
  removeMessages(ids) {
    const gone = new Set(ids);
    const touched = [];
    for (const conv of this.convs.values()) {
      const before = conv.messages.length;
      conv.messages = conv.messages.filter((m) => !gone.has(m.Id));
      if (conv.messages.length !== before) {
        touched.push(conv);
        conv.unread = Math.min(conv.unread, conv.messages.filter((m) => m.Id > conv.lastRead && m.From !== this.me).length);
      }
    }
    return touched;
  }

  dropMessage(conv, clientId) {
    conv.messages = conv.messages.filter((m) => m.ClientId !== clientId || !m.pending);
  }

  setRead(conv, id) {
    conv.lastRead = Math.max(conv.lastRead, id);
    conv.unread = conv.messages.filter((m) => m.Id > conv.lastRead && m.From !== this.me).length;
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

function oldestId(conv) { return conv.messages.find((m) => m.Id)?.Id ?? Infinity; }

function insertSorted(list, m) {
  // Real messages by Id, pending ones (no Id yet) after them.
  let i = list.length;
  while (i > 0 && (list[i - 1].Id === null || list[i - 1].Id > m.Id)) i -= 1;
  list.splice(i, 0, m);
}

function loadJSON(key, fallback) {
  try { return JSON.parse(localStorage.getItem(key)) ?? fallback; } catch { return fallback; }
}
