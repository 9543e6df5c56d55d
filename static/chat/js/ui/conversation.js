// The open conversation: its header, one message's row (meta, quote, text, reactions), the
// full-size image, and scrolling.
// The list of rows itself is ui/messages.js.
import { GROUP } from "../protocol.js";
import { editorFor } from "./edit.js";
import { avatar, el, formatTime } from "./format.js";
import { reactionBar } from "./reactions.js";
import { quoteNode } from "./reply.js";

const $ = (id) => document.getElementById(id);
const NEAR_BOTTOM = 80;
let restick = 0; // the last scrollToBottom's second look at the end; a newer one, or a highlight, cancels it

export function isAtBottom() {
  const box = $("messages");
  return box.scrollHeight - box.scrollTop - box.clientHeight < NEAR_BOTTOM;
}

export function scrollToBottom() {
  const box = $("messages");
  box.scrollTop = box.scrollHeight;
  // A chunk just drawn is laid out only at the next frame (content-visibility, chat.css): until then
  // its size is a guess, and the end is not where it will be. Once it is, the end again, unless the
  // reader scrolled up meanwhile.
  const top = box.scrollTop;
  const mine = ++restick;
  requestAnimationFrame(() => requestAnimationFrame(() => {
    if (mine === restick && box.scrollTop >= top && !isAtBottom()) box.scrollTop = box.scrollHeight;
  }));
  $("jump").hidden = true;
}

export function showJump() { $("jump").hidden = false; }

// An older page is shown (opened at a search result): "Jump to latest" reloads the newest.
export function showLatest(show) { $("latest").hidden = !show; }

export function renderHeader(store, conv) {
  const show = Boolean(conv);
  $("placeholder").hidden = show;
  for (const id of ["conv-head", "messages", "composer"]) $(id).hidden = !show;
  if (!conv) { $("jump").hidden = true; $("latest").hidden = true; return; }
  $("conv-name").textContent = conv.name;
  const leave = $("leave-group");
  const del = $("delete-group");
  const invite = $("invite-group");
  if (conv.chat === GROUP) {
    const group = store.groups.get(conv.name);
    const members = group?.members ?? [];
    $("conv-sub").textContent = `${members.length} member${members.length === 1 ? "" : "s"}: ${members.join(", ")}`;
    leave.hidden = !group || group.owner === store.me || !members.includes(store.me);
    del.hidden = !group || group.owner !== store.me;
    invite.hidden = del.hidden;
    invite.href = `/invites/?group=${encodeURIComponent(conv.name)}`;
  } else {
    const user = store.users.get(conv.name);
    $("conv-sub").textContent = !store.isOnline ? "connecting…" : user?.online ? "online" : "offline";
    leave.hidden = true;
    del.hidden = true;
    invite.hidden = true;
  }
}

export function messageNode(store, m, conv) {
  const mine = m.From === store.me;
  const row = el("div", `msg ${mine ? "mine" : "theirs"}${m.pending ? " pending" : ""}${m.failed ? " failed" : ""}`);
  if (m.Id) {
    row.dataset.id = m.Id;
    row.tabIndex = 0; // Tab reaches each message, then its actions (ui/actions.js)
  }
  if (m.ClientId) row.dataset.clientId = m.ClientId;
  if (!mine) row.append(avatar(m.From));
  const body = el("div", "body");
  const bubble = el("div", "bubble");
  bubble.append(metaNode(store, m, conv));
  if (m.ReplyTo) bubble.append(quoteNode(store, conv, m));
  bubble.append(m.is_image ? imageNode(m) : editorFor(m) ?? textNode(m));
  body.append(bubble);
  const reactions = reactionBar(store, m);
  if (reactions) body.append(reactions);
  row.append(body);
  return row;
}

function metaNode(store, m, conv) {
  const mine = m.From === store.me;
  const meta = el("div", "meta");
  if (!mine || conv.chat === GROUP) meta.append(el("span", "from", mine ? "You" : m.From));
  const time = el("time", "time", formatTime(m.Time));
  time.dateTime = m.Time;
  time.title = new Date(m.Time).toLocaleString();
  meta.append(time);
  if (m.Edited) {
    const edited = el("span", "edited", "(edited)");
    edited.title = `Edited ${new Date(m.Edited).toLocaleString()}`;
    meta.append(edited);
  }
  if (m.pending) meta.append(el("span", "state", m.failed ? `Not sent: ${m.failed}` : "Sending…"));
  return meta;
}

// The server's rendering of the text, or, for a message not stored yet, the text as typed. `Html`
// is the only HTML this page ever inserts: rendered and sanitized once on the server (markdown-it-py
// and nh3, messaging/render.py), with the Content-Security-Policy (no inline script) behind it.
// No filtering of our own here: a second, hand-written allow-list would only drift from nh3's.
function textNode(m) {
  if (!m.Html) return el("div", "text", m.Content);
  const node = el("div", "text rich");
  const html = document.createElement("template");
  html.innerHTML = m.Html; // a template's content is inert: nothing in it loads or runs here
  node.append(html.content);
  return node;
}

function imageNode(m) {
  const button = el("button", "image-link");
  button.type = "button";
  button.title = "Open the full image";
  const img = document.createElement("img");
  // A pending image shows its local data URL; a stored one its thumbnail, full size on click.
  img.src = m.pending ? m.Content : `${m.Content}thumb/`;
  img.alt = `Image from ${m.From}`;
  img.loading = "lazy";
  button.append(img);
  button.addEventListener("click", () => showFullImage(m.Content, img.alt));
  return button;
}

function showFullImage(src, alt) {
  const dialog = $("lightbox");
  const img = dialog.querySelector("img");
  img.src = src;
  img.alt = alt;
  dialog.showModal();
}

// Run a change above what the reader looks at (older messages, removals) without moving it.
export function keepingPosition(change) {
  const box = $("messages");
  const stick = isAtBottom();
  const fromBottom = box.scrollHeight - box.scrollTop;
  change();
  if (stick) scrollToBottom();
  else box.scrollTop = box.scrollHeight - fromBottom;
}

// Run a change of one row (a message drawn again) without moving what the reader looks at: the
// row at the top of the view stays where it is (at the bottom, the view stays at the bottom).
export function keepingView(change) {
  const box = $("messages");
  if (isAtBottom()) { change(); scrollToBottom(); return; }
  const anchor = topRow(box);
  if (!anchor) { keepingPosition(change); return; }
  const before = anchor.getBoundingClientRect().top;
  change();
  const now = box.querySelector(`.msg[data-id="${anchor.dataset.id}"]`);
  if (now) box.scrollTop += now.getBoundingClientRect().top - before;
}

function topRow(box) {
  const { left, right, top } = box.getBoundingClientRect();
  for (const x of [left + 60, right - 60, (left + right) / 2]) {
    const row = document.elementFromPoint(x, top + 12)?.closest(".msg[data-id]");
    if (row && box.contains(row)) return row;
  }
  return null;
}

// Bring a row into view and mark it for a moment (a quote's original).
export function highlight(row) {
  restick += 1;
  row.scrollIntoView({ block: "center" });
  row.classList.remove("flash");
  void row.offsetWidth; // restart the animation when it is shown twice in a row
  row.classList.add("flash");
  row.addEventListener("animationend", () => row.classList.remove("flash"), { once: true });
  row.focus({ preventScroll: true });
}
