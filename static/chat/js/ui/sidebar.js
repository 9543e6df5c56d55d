// The sidebar: groups (joined first) and people (online first), with unread badges and a filter.
// Keyed by conversation: an item is rebuilt only when what it shows changed, and moved only when
// the order changed.
import { GROUP, PRIVATE } from "../protocol.js";
import { convKey } from "../store.js";
import { avatar, el } from "./format.js";

const collator = new Intl.Collator(undefined, { sensitivity: "base" });
const items = new Map(); // conversation key -> {li, look}

function badge(count) {
  const node = el("span", "badge", count > 99 ? "99+" : String(count));
  node.setAttribute("aria-label", `${count} unread`);
  return node;
}

function itemNode({ kind, name, active, unread, online, sub, onOpen }) {
  const li = el("li");
  li.dataset.kind = kind;
  li.dataset.name = name;
  const button = el("button", `conv${active ? " active" : ""}${unread ? " unread" : ""}`);
  button.type = "button";
  if (active) button.setAttribute("aria-current", "true");
  const lead = avatar(name, kind === "group" ? "group" : "");
  if (kind === "user") {
    const dot = el("span", `dot${online ? " online" : ""}`);
    dot.setAttribute("aria-label", online ? "online" : "offline");
    dot.title = online ? "online" : "offline";
    lead.append(dot);
  }
  button.append(lead);
  const text = el("span", "conv-text");
  text.append(el("span", "conv-name", name));
  if (sub) text.append(el("span", "conv-sub", sub));
  button.append(text);
  if (unread) button.append(badge(unread));
  button.addEventListener("click", onOpen);
  li.append(button);
  return li;
}

// The item of one conversation, reused when it would look the same.
function item(key, look, onOpen) {
  const known = items.get(key);
  const sig = JSON.stringify(look);
  if (known?.sig === sig) return known.li;
  const li = itemNode({ ...look, onOpen });
  known?.li.replaceWith(li);
  items.set(key, { li, sig, look, onOpen });
  return li;
}

function groupLook(store, g) {
  const member = g.members.includes(store.me);
  const key = convKey(GROUP, g.name);
  return { kind: "group", name: g.name, active: store.active === key, unread: store.convs.get(key)?.unread ?? 0,
    sub: member ? `${g.members.length} member${g.members.length === 1 ? "" : "s"}` : "Click to join" };
}

function userLook(store, u) {
  const key = convKey(PRIVATE, u.username);
  return { kind: "user", name: u.username, active: store.active === key, unread: store.convs.get(key)?.unread ?? 0,
    online: u.online, sub: u.online ? "online" : "offline" };
}

// Make `list` hold exactly `nodes`, in order, moving only what is out of place.
function sync(list, nodes) {
  nodes.forEach((node, i) => { if (list.children[i] !== node) list.insertBefore(node, list.children[i] ?? null); });
  while (list.children.length > nodes.length) list.lastElementChild.remove();
}

export function renderSidebar(store, { filter, onOpen }) {
  const needle = filter.trim().toLocaleLowerCase();
  const matches = (name) => !needle || name.toLocaleLowerCase().includes(needle);

  const groups = [...store.groups.values()].filter((g) => matches(g.name));
  groups.sort((a, b) => Number(b.members.includes(store.me)) - Number(a.members.includes(store.me)) || collator.compare(a.name, b.name));
  const groupNodes = groups.map((g) => item(convKey(GROUP, g.name), groupLook(store, g), () => onOpen(GROUP, g.name)));
  if (!groups.length) groupNodes.push(el("li", "empty-note", needle ? "No matching groups" : "No groups yet"));
  sync(document.getElementById("group-list"), groupNodes);

  const users = [...store.users.values()].filter((u) => u.username !== store.me && matches(u.username));
  users.sort((a, b) => Number(b.online) - Number(a.online) || collator.compare(a.username, b.username));
  const userNodes = users.map((u) => item(convKey(PRIVATE, u.username), userLook(store, u), () => onOpen(PRIVATE, u.username)));
  if (!users.length) userNodes.push(el("li", "empty-note", needle ? "No matching people" : "Nobody else yet"));
  sync(document.getElementById("user-list"), userNodes);
}

// One conversation's unread count changed: only its item, where the list shows it.
export function renderUnread(store, conv) {
  const known = items.get(conv.key);
  if (!known?.li.isConnected) return;
  item(conv.key, { ...known.look, unread: conv.unread }, known.onOpen);
}
