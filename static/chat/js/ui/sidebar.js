// The sidebar: groups (joined first) and people (online first), with unread badges and a filter.
import { GROUP, PRIVATE } from "../protocol.js";
import { convKey } from "../store.js";
import { avatar, el } from "./format.js";

const byName = (a, b) => a.localeCompare(b, undefined, { sensitivity: "base" });

function badge(count) {
  const node = el("span", "badge", count > 99 ? "99+" : String(count));
  node.setAttribute("aria-label", `${count} unread`);
  return node;
}

function item({ kind, name, active, unread, lead, sub, onOpen }) {
  const li = el("li");
  li.dataset.kind = kind;
  li.dataset.name = name;
  const button = el("button", `conv${active ? " active" : ""}${unread ? " unread" : ""}`);
  button.type = "button";
  if (active) button.setAttribute("aria-current", "true");
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

export function renderSidebar(store, { filter, onOpen }) {
  const needle = filter.trim().toLocaleLowerCase();
  const matches = (name) => !needle || name.toLocaleLowerCase().includes(needle);

  const groups = [...store.groups.values()].filter((g) => matches(g.name));
  groups.sort((a, b) => Number(b.members.includes(store.me)) - Number(a.members.includes(store.me)) || byName(a.name, b.name));
  const groupList = document.getElementById("group-list");
  groupList.replaceChildren(...groups.map((g) => {
    const member = g.members.includes(store.me);
    const key = convKey(GROUP, g.name);
    const lead = avatar(g.name, "group");
    return item({
      kind: "group", name: g.name, active: store.active === key, unread: store.convs.get(key)?.unread ?? 0, lead,
      sub: member ? `${g.members.length} member${g.members.length === 1 ? "" : "s"}` : "Click to join",
      onOpen: () => onOpen(GROUP, g.name),
    });
  }));
  if (!groups.length) groupList.append(el("li", "empty-note", needle ? "No matching groups" : "No groups yet"));

  const users = [...store.users.values()].filter((u) => u.username !== store.me && matches(u.username));
  users.sort((a, b) => Number(b.online) - Number(a.online) || byName(a.username, b.username));
  const userList = document.getElementById("user-list");
  userList.replaceChildren(...users.map((u) => {
    const key = convKey(PRIVATE, u.username);
    const lead = avatar(u.username);
    const dot = el("span", `dot${u.online ? " online" : ""}`);
    dot.setAttribute("aria-label", u.online ? "online" : "offline");
    dot.title = u.online ? "online" : "offline";
    lead.append(dot);
    return item({
      kind: "user", name: u.username, active: store.active === key, unread: store.convs.get(key)?.unread ?? 0, lead,
      sub: u.online ? "online" : "offline", onOpen: () => onOpen(PRIVATE, u.username),
    });
  }));
  if (!users.length) userList.append(el("li", "empty-note", needle ? "No matching people" : "Nobody else yet"));
}
