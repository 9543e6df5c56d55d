// The list of message rows of the open conversation, with day separators. Drawn whole once when
// the conversation opens; after that each change adds, replaces or removes only its own rows.
// Rows live in chunks of at most CHUNK nodes, so that a change lays out one chunk and walks the
// others' cached sizes, and chunks out of view are skipped (`content-visibility`, chat.css).
import { messageNode } from "./conversation.js";
import { dayKey, dayLabel, el } from "./format.js";

const CHUNK = 50;
const list = () => document.getElementById("message-list");

// The conversation drawn (its key, and the store's object it was drawn from); for each message its
// row and the separator before it (when it starts a day); the marker above the rows and the note
// of an empty conversation.
let shown = { key: null, conv: null, rows: new Map(), top: null, none: null };
const owner = new WeakMap(); // row or separator -> its message

const isShown = (conv) => shown.key === conv.key;
// False once the store has replaced the conversation drawn (a reset): then only a new drawing fits.
export const isDrawnFrom = (conv) => shown.conv === conv;
const startsDay = (prev, m) => !prev || dayKey(prev.Time) !== dayKey(m.Time);
const newChunk = () => el("div", "chunk");

function entryOf(store, conv, m, prev) {
  const entry = { row: messageNode(store, m, conv), sep: startsDay(prev, m) ? separator(m) : null };
  owner.set(entry.row, m);
  shown.rows.set(m, entry);
  return entry;
}

function separator(m) {
  const sep = el("div", "day", dayLabel(m.Time));
  sep.setAttribute("role", "separator");
  return sep;
}

function topNode(conv) {
  if (conv.hasMore) return el("div", "older", conv.loading ? "Loading older messages…" : "Scroll up for older messages");
  if (conv.loaded) return el("div", "older start", "This is the beginning of the conversation.");
  return null;
}

export function renderConversation(store, conv) {
  shown = { key: conv.key, conv, rows: new Map(), top: null, none: null };
  const chunks = [];
  let chunk = null;
  let prev = null;
  for (const m of conv.messages) {
    if (!chunk || chunk.childElementCount >= CHUNK) { chunk = newChunk(); chunks.push(chunk); }
    const entry = entryOf(store, conv, m, prev);
    if (entry.sep) chunk.append(entry.sep);
    chunk.append(entry.row);
    prev = m;
  }
  list().replaceChildren(...chunks);
  renderEnds(conv);
}

export function renderEnds(conv) {
  if (!isShown(conv)) return;
  const top = topNode(conv);
  const same = shown.top && top && shown.top.className === top.className && shown.top.textContent === top.textContent;
  if (!same) {
    shown.top?.remove();
    if (top) list().prepend(top);
    shown.top = top;
  }
  const empty = conv.loaded && !conv.messages.length;
  if (empty && !shown.none) { shown.none = el("div", "none", "No messages yet. Say hello! 👋"); list().append(shown.none); }
  if (!empty && shown.none) { shown.none.remove(); shown.none = null; }
}

// Messages just added to the store, in any order.
export function insertMessages(store, conv, added) {
  if (!isShown(conv)) return;
  const at = added.map((m) => conv.messages.lastIndexOf(m)).filter((i) => i >= 0).sort((a, b) => b - a);
  for (const i of at) place(store, conv, i); // from the last: each one's successor is on screen already
  renderEnds(conv);
}

function place(store, conv, i) {
  const m = conv.messages[i];
  const next = shown.rows.get(conv.messages[i + 1]);
  const entry = entryOf(store, conv, m, conv.messages[i - 1]);
  const nodes = entry.sep ? [entry.sep, entry.row] : [entry.row];
  if (next) {
    const anchor = next.sep ?? next.row;
    const chunk = anchor.parentNode;
    if (anchor === chunk.firstElementChild && chunk.childElementCount >= CHUNK) chunkBefore(chunk).append(...nodes);
    else anchor.before(...nodes);
    fixSeparator(conv.messages[i + 1], m, next);
  } else {
    lastChunk().append(...nodes);
  }
}

// Where rows go that come before a full chunk: the chunk before it, or a new one.
function chunkBefore(chunk) {
  const prev = chunk.previousElementSibling;
  if (prev?.classList.contains("chunk") && prev.childElementCount < CHUNK) return prev;
  const fresh = newChunk();
  chunk.before(fresh);
  return fresh;
}

function lastChunk() {
  const last = shown.none ? shown.none.previousElementSibling : list().lastElementChild;
  if (last?.classList.contains("chunk") && last.childElementCount < CHUNK) return last;
  const fresh = newChunk();
  if (shown.none) shown.none.before(fresh);
  else list().append(fresh);
  return fresh;
}

function fixSeparator(m, prev, entry) {
  const needs = startsDay(prev, m);
  if (needs && !entry.sep) { entry.sep = separator(m); entry.row.before(entry.sep); }
  if (!needs && entry.sep) { entry.sep.remove(); entry.sep = null; }
}

// The node after `node` in reading order, across chunks; rowAfter skips separators.
function nextNode(node) {
  if (node.nextElementSibling) return node.nextElementSibling;
  const chunk = node.parentNode.nextElementSibling;
  return chunk?.classList.contains("chunk") ? chunk.firstElementChild : null;
}

function rowAfter(node) {
  let next = nextNode(node);
  while (next?.classList.contains("day")) next = nextNode(next);
  return next;
}

// Messages gone from the store (removed, or a pending copy replaced by its echo).
export function removeMessages(conv, gone) {
  if (!isShown(conv)) return;
  const followers = new Set();
  for (const m of gone) {
    const entry = shown.rows.get(m);
    if (!entry) continue;
    followers.add(rowAfter(entry.row));
    const chunk = entry.row.parentNode;
    entry.sep?.remove();
    entry.row.remove();
    if (!chunk.childElementCount) chunk.remove();
    shown.rows.delete(m);
  }
  // The message after a removed one may now start its day, or no longer.
  for (const row of followers) {
    const m = row && owner.get(row);
    const entry = m && shown.rows.get(m);
    if (entry) fixSeparator(m, conv.messages[conv.messages.lastIndexOf(m) - 1], entry);
  }
  renderEnds(conv);
}

// One message changed in place: a pending one that failed (`old` is `m`), or a newer state of a
// stored one (`old` is the copy it replaced).
export function redrawMessage(store, conv, m, old = m) {
  const entry = isShown(conv) && shown.rows.get(old);
  if (!entry) return;
  const row = messageNode(store, m, conv);
  entry.row.replaceWith(row);
  entry.row = row;
  owner.set(row, m);
  shown.rows.delete(old);
  shown.rows.set(m, entry);
}

// The row of message `id` of `conv`, when it is on screen.
export function rowOf(conv, id) {
  const m = conv.byId.get(id);
  return (m && isShown(conv) && shown.rows.get(m)?.row) || null;
}
