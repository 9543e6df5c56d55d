// Client state, with no DOM: people, groups, conversations, the connection and the outbox of
// unsent messages. Only these methods change it; each returns what changed, for the UI to redraw.
//
// Resume (docs/protocol.md, "Reconnecting"): every change the server makes has a `Seq`. The client
// keeps `cursor`, the `Seq` up to which it is known to hold everything (the last `Synced`, or the
// first `State`), and sends it back on reconnect; the replay may repeat what it holds, so each
// message is held with its `Seq` and a frame is applied only if it is newer than what is held.
import { SearchState } from "./found.js";
import { GROUP, PRIVATE } from "./protocol.js";

export const convKey = (chat, name) => `${chat}:${name}`;

const REMOVED_KEPT = 5000; // removed Ids remembered, so that a late copy of one is not shown again

export class Store {
  // `editWindow`: seconds after which a message can no longer be edited (null: no limit);
  // `moderator`: this user may remove any message (the page's config says both).
  constructor(me, { editWindow = null, moderator = false } = {}) {
    this.me = me;
    this.editWindow = editWindow;
    this.moderator = moderator;
    this.users = new Map(); // username -> {username, online}
    this.groups = new Map(); // name -> {name, owner, members}
    this.convs = new Map(); // key -> conversation
    this.active = null; // key of the open conversation
    this.connection = "connecting"; // "connecting", "open", "offline" or "ended"
    this.cursor = null; // `Seq` to resume from; null until a server that has them gave one
    this.catchingUp = false; // a `Connect` with `Seq` went out and its `Synced` has not come yet
    this.maxId = 0; // highest message Id seen: `Since` on reconnect, for a server without `Seq`
    // The server's Unread counts include every message up to the last State: by `Seq` (up to
    // its `Seq`) or, from a server without them, by Id (up to its `LastId`).
    this.counted = { seq: null, id: 0 };
    this.removed = new Map(); // Id -> Seq of its removal (Infinity without one): oldest first
    this.outboxKey = `chat.outbox.${me}`;
    this.outbox = new Map(loadJSON(this.outboxKey, [])); // ClientId -> Send frame
    this.search = new SearchState();
  }

  conv(chat, name) {
    const key = convKey(chat, name);
    if (!this.convs.has(key)) {
      this.convs.set(key, { key, chat, name, messages: [], byId: new Map(), loaded: false, hasMore: false,
        loading: false, firstPaint: false, unread: 0, lastRead: 0, replyDraft: null,
        // Opened at an older message: `hasNewer` (newer pages exist, not held), `around` (the Id
        // of the `Join` with `Around` on its way), `loadingNewer` (a `Join` with `After` is).
        hasNewer: false, around: null, loadingNewer: false });
    }
    return this.convs.get(key);
  }

  get activeConv() { return this.active ? this.convs.get(this.active) : null; }

  get isOnline() { return this.connection === "open"; }

  isMember(groupName) { return this.groups.get(groupName)?.members.includes(this.me) ?? false; }

  // The one rule of "unread": a stored message by someone else past the conversation's read pointer.
  isUnread(conv, m) { return Boolean(m.Id) && m.From !== this.me && m.Id > conv.lastRead; }

  // What this user may do with a message (the server checks again; these only decide what is offered).
  canEdit(m, now = Date.now()) {
    if (!m.Id || m.From !== this.me || m.is_image) return false;
    return this.editWindow === null || now - Date.parse(m.Time) < this.editWindow * 1000;
  }

  canRemove(conv, m) {
    if (!m.Id) return false;
    const ownsGroup = conv.chat === GROUP && this.groups.get(conv.name)?.owner === this.me;
    return m.From === this.me || ownsGroup || this.moderator;
  }

  // My newest message of the conversation that I may still edit (↑ in an empty composer), or null.
  lastEditable(conv) {
    for (let i = conv.messages.length - 1; i >= 0; i -= 1) {
      const m = conv.messages[i];
      if (m.From === this.me && m.Id) return this.canEdit(m) ? m : null;
    }
    return null;
  }

  // The held messages of `conv` that reply to one of `ids` (their quotes show the original as held).
  repliesTo(conv, ids) {
    const wanted = new Set(ids);
    return conv.messages.filter((m) => m.ReplyTo && wanted.has(m.ReplyTo.Id));
  }

  isRemoved(id) { return this.removed.has(id); }

  // The message the composer's next text answers (an Id of this conversation), or null.
  setReplyDraft(conv, id) { conv.replyDraft = id; }

  // Whether opening this conversation must ask the server for it (history, or membership).
  needsJoin(conv) { return !conv.loaded || (conv.chat === GROUP && !this.isMember(conv.name)); }

  setActive(conv) { this.active = conv ? conv.key : null; }

  setConnection(state) {
    this.connection = state;
    if (state !== "open") this.catchingUp = false;
  }

  // A socket opened: where its `Connect` resumes from, for protocol.connect. With a `Seq` the
  // server replays every change after it and ends with `Synced`: until then we are catching up.
  startConnect() {
    this.catchingUp = this.cursor !== null;
    if (this.catchingUp) return { seq: this.cursor };
    return this.maxId ? { since: this.maxId } : {};
  }

  // Returns {reset}: the server found us too far behind and sent no replay; every cached
  // conversation is gone (the open one is there again, empty, for its Join to load).
  applyState(frame) {
    const hasSeq = Number.isInteger(frame.Seq);
    const reset = hasSeq && frame.Reset === true;
    if (reset) this.dropConversations(frame.Seq);
    this.users = new Map(frame.Users.map((u) => [u.Username, { username: u.Username, online: u.Online }]));
    this.groups = new Map(frame.Groups.map((g) => [g.Name, groupOf(g)]));
    this.counted = { seq: hasSeq ? frame.Seq : null, id: frame.LastId ?? 0 };
    for (const u of frame.Users) this.setServerUnread(this.conv(PRIVATE, u.Username), u.Unread);
    for (const g of frame.Groups) this.setServerUnread(this.conv(GROUP, g.Name), g.Unread);
    // A first State (or a reset) holds everything up to its Seq. A resumed one does not make
    // the cursor move: the replay after it might be cut short; its `Synced` moves it.
    if (hasSeq && (this.cursor === null || reset)) this.cursor = frame.Seq;
    if (!this.maxId) this.maxId = this.counted.id; // a first connection starts there: no replay
    if (this.active && !this.convs.has(this.active)) this.active = null;
    return { reset };
  }

  // The server's count, plus what this page holds that came after the State (live frames can
  // come before it): those are not in the server's count.
  setServerUnread(conv, unread) {
    let n = unread ?? 0;
    for (const m of conv.messages) if (this.afterState(m) && this.isUnread(conv, m)) n += 1;
    conv.unread = n;
  }

  // Whether the last State's Unread counts leave this message out (it came after that State).
  afterState(m) {
    if (this.counted.seq !== null && Number.isInteger(m.Seq)) return m.Seq > this.counted.seq;
    return m.Id > this.counted.id;
  }

  // "This socket holds every change up to Seq". Returns true if it ended a catch-up.
  applySynced(frame) {
    if (!Number.isInteger(frame.Seq)) return false;
    this.cursor = frame.Seq;
    const ended = this.catchingUp;
    this.catchingUp = false;
    return ended;
  }

  // A reset: every cached conversation goes; the open one keeps its place, empty and not loaded.
  // Kept: what came after the State (live frames can come before it), and the outbox's pending.
  dropConversations(seq) {
    const newer = [...this.convs.values()].flatMap((conv) => conv.messages.filter((m) => m.Seq > seq));
    const open = this.activeConv;
    this.convs = new Map();
    if (open) this.conv(open.chat, open.name);
    for (const m of newer) insertSorted(this.convOfMessage(m), m);
    this.restoreOutbox();
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

  // A server message: returns {conv, isNew, changed, replaced, counted}. Its echo replaces the
  // pending copy (`replaced`); a newer state of a message held replaces it (`changed`: the old
  // one); `counted` says it raised the unread count (it is new to the server's counts too).
  addMessage(m) {
    const conv = this.convOfMessage(m);
    this.maxId = Math.max(this.maxId, m.Id);
    let replaced = null;
    if (m.ClientId) {
      if (this.outbox.delete(m.ClientId)) this.saveOutbox();
      replaced = takePending(conv, m.ClientId);
    }
    if (this.beyondHistory(conv, m) || this.pastPage(conv, m)) return { conv, isNew: false, changed: null, replaced, counted: false };
    const result = this.hold(conv, m);
    // A change (an edit, a reaction) of a message not held yet is no new message.
    const counted = result.isNew && !m.Change && this.afterState(m) && this.isUnread(conv, m);
    if (counted) conv.unread += 1;
    return { conv, ...result, replaced, counted };
  }

  // A live or replayed message older than the oldest one held, with older history not loaded: the
  // edit or reaction of an old message. Held, it would sit alone above a gap that paging (by the
  // oldest Id held) would never fill; its History page brings it, as it is then, when scrolled to.
  beyondHistory(conv, m) {
    if (conv.byId.has(m.Id)) return false;
    const oldest = conv.messages.find((x) => x.Id)?.Id;
    return oldest !== undefined && m.Id < oldest && (conv.hasMore || !conv.loaded);
  }

  // A message newer than the page held, when newer pages exist and are not held: held, it would
  // sit below a gap; scrolling down (`After`) or "Jump to latest" brings it.
  pastPage(conv, m) {
    if (!conv.hasNewer || conv.byId.has(m.Id)) return false;
    const newest = conv.messages.findLast((x) => x.Id)?.Id;
    return newest !== undefined && m.Id > newest;
  }

  // The one rule of applying a message's state: only if its Id is new, or its Seq newer than the
  // copy held; never for a removed one, unless it changed after its removal.
  // Returns {isNew, changed}: `changed` is the copy it replaced.
  hold(conv, m) {
    const none = { isNew: false, changed: null };
    const removedAt = this.removed.get(m.Id);
    if (removedAt !== undefined && !(m.Seq > removedAt)) return none;
    const held = conv.byId.get(m.Id);
    if (!held) { insertSorted(conv, m); return { isNew: true, changed: null }; }
    if (!(m.Seq > (held.Seq ?? -1))) return none;
    conv.messages[conv.messages.lastIndexOf(held)] = m;
    conv.byId.set(m.Id, m);
    return { isNew: false, changed: held };
  }

  // A page of history; returns {conv, added, changed}: the messages that were not there yet, and
  // [old, new] pairs of those it holds in a newer state.
  // For a page that need not be the newest (it has `HasNewer`): `around`, the Id it was asked
  // around (that page replaces every message held), or null (an `After` page, held below the rest).
  addHistory(frame) {
    const conv = this.conv(frame.Chat, frame.To);
    const paged = typeof frame.HasNewer === "boolean";
    const around = paged ? conv.around : null;
    if (around) this.dropHeld(conv);
    const oldestBefore = conv.messages.find((m) => m.Id)?.Id ?? Infinity;
    const added = [];
    const changed = [];
    for (const m of frame.Messages) {
      this.maxId = Math.max(this.maxId, m.Id);
      const result = this.hold(conv, m);
      if (result.isNew) added.push(m);
      if (result.changed) changed.push([result.changed, m]);
    }
    // A page that reaches as far back as what we had says whether older ones remain.
    const first = frame.Messages[0]?.Id;
    // The first page of a conversation held before it was loaded: what came live and is older than
    // the page (an old message's edit, say) goes, so no gap sits between it and the page.
    if (!conv.loaded && frame.HasMore && first !== undefined) dropOlder(conv, first);
    if (!conv.loaded || first === undefined || first <= oldestBefore) conv.hasMore = frame.HasMore;
    conv.loaded = true;
    if (paged) {
      conv.hasNewer = frame.HasNewer;
      conv.loadingNewer = false;
      conv.around = null;
    } else {
      conv.loading = false;
    }
    return { conv, added, changed, around, newer: paged && !around };
  }

  // Open at message `id`: a `Join` with `Around` is on its way; its page replaces what is held.
  beginAround(conv, id) {
    conv.around = id;
    conv.firstPaint = false;
  }

  // A `Join` with `After` is on its way (true), or will not come (false: the socket closed).
  setLoadingNewer(conv, loading) { conv.loadingNewer = loading; }

  // Every stored message held goes (pending ones stay): the conversation is as if never loaded. For
  // a page around a message, and "Jump to latest" from such a page (its Join is then a first paint).
  dropHeld(conv) {
    conv.messages = conv.messages.filter((m) => m.pending);
    conv.byId = new Map();
    Object.assign(conv, { loaded: false, hasMore: false, hasNewer: false, loading: false, loadingNewer: false });
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

  // Messages removed (by a moderator, at `seq`): gone from every conversation, and remembered, so
  // that a copy still on its way is not shown again. Returns [{conv, gone}] of those touched.
  removeMessages(ids, seq) {
    for (const id of ids) this.rememberRemoved(id, Number.isInteger(seq) ? seq : Infinity);
    const doomed = new Set(ids);
    const touched = [];
    for (const conv of this.convs.values()) {
      const gone = conv.messages.filter((m) => doomed.has(m.Id));
      if (!gone.length) continue;
      conv.messages = conv.messages.filter((m) => !doomed.has(m.Id));
      for (const m of gone) conv.byId.delete(m.Id);
      if (doomed.has(conv.replyDraft)) conv.replyDraft = null;
      conv.unread = Math.min(conv.unread, this.countUnread(conv));
      touched.push({ conv, gone });
    }
    return touched;
  }

  rememberRemoved(id, seq) {
    this.removed.delete(id); // the newest removal last: the oldest is forgotten first
    this.removed.set(id, seq);
    if (this.removed.size > REMOVED_KEPT) this.removed.delete(this.removed.keys().next().value);
  }

  // The reader saw the end of the conversation. Returns the Id to report in a `Read`, or 0 when
  // the server's pointer need not move (nothing new from anyone else: no frame for our own messages).
  markRead(conv) {
    if (conv.hasNewer) return 0; // the end of an older page is not the end of the conversation
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
  if (frame.ReplyTo) m.ReplyTo = { Id: frame.ReplyTo }; // its quote comes from the original held
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

function dropOlder(conv, id) {
  for (const m of conv.messages) if (m.Id && m.Id < id) conv.byId.delete(m.Id);
  conv.messages = conv.messages.filter((m) => !m.Id || m.Id >= id);
}

function insertSorted(conv, m) {
  // Real messages by Id, pending ones (no Id yet) after them. New messages land at the end: O(1).
  const list = conv.messages;
  let i = list.length;
  while (i > 0 && (list[i - 1].Id === null || list[i - 1].Id > m.Id)) i -= 1;
  list.splice(i, 0, m);
  conv.byId.set(m.Id, m);
}

function loadJSON(key, fallback) {
  try { return JSON.parse(localStorage.getItem(key)) ?? fallback; } catch { return fallback; }
}
