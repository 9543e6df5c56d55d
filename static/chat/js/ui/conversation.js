// The open conversation: its header, one message's row, the full-size image, and scrolling.
// The list of rows itself is ui/messages.js.
import { GROUP } from "../protocol.js";
import { avatar, el, formatTime } from "./format.js";

const $ = (id) => document.getElementById(id);
const NEAR_BOTTOM = 80;

export function isAtBottom() {
  const box = $("messages");
  return box.scrollHeight - box.scrollTop - box.clientHeight < NEAR_BOTTOM;
}

export function scrollToBottom() {
  const box = $("messages");
  box.scrollTop = box.scrollHeight;
  $("jump").hidden = true;
}

export function showJump() { $("jump").hidden = false; }

export function renderHeader(store, conv) {
  const show = Boolean(conv);
  $("placeholder").hidden = show;
  for (const id of ["conv-head", "messages", "composer"]) $(id).hidden = !show;
  if (!conv) { $("jump").hidden = true; return; }
  $("conv-name").textContent = conv.name;
  const leave = $("leave-group");
  const del = $("delete-group");
  if (conv.chat === GROUP) {
    const group = store.groups.get(conv.name);
    const members = group?.members ?? [];
    $("conv-sub").textContent = `${members.length} member${members.length === 1 ? "" : "s"}: ${members.join(", ")}`;
    leave.hidden = !group || group.owner === store.me || !members.includes(store.me);
    del.hidden = !group || group.owner !== store.me;
  } else {
    const user = store.users.get(conv.name);
    $("conv-sub").textContent = !store.isOnline ? "connecting…" : user?.online ? "online" : "offline";
    leave.hidden = true;
    del.hidden = true;
  }
}

export function messageNode(store, m, conv) {
  const mine = m.From === store.me;
  const row = el("div", `msg ${mine ? "mine" : "theirs"}${m.pending ? " pending" : ""}${m.failed ? " failed" : ""}`);
  if (m.Id) row.dataset.id = m.Id;
  if (m.ClientId) row.dataset.clientId = m.ClientId;
  if (!mine) row.append(avatar(m.From));
  const bubble = el("div", "bubble");
  const meta = el("div", "meta");
  if (!mine || conv.chat === GROUP) meta.append(el("span", "from", mine ? "You" : m.From));
  const time = el("time", "time", formatTime(m.Time));
  time.dateTime = m.Time;
  time.title = new Date(m.Time).toLocaleString();
  meta.append(time);
  if (m.pending) meta.append(el("span", "state", m.failed ? `Not sent: ${m.failed}` : "Sending…"));
  bubble.append(meta, m.is_image ? imageNode(m) : el("div", "text", m.Content));
  row.append(bubble);
  if (!mine && m.Id) {
    const flag = el("button", "icon small report", "⚑");
    flag.type = "button";
    flag.title = "Report this message to the moderators";
    flag.setAttribute("aria-label", `Report message from ${m.From}`);
    flag.dataset.report = m.Id;
    row.append(flag);
  }
  return row;
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
