// Message search: the panel (a drawer over the conversation; the whole screen on a phone) with
// its form, the results found so far with the query's words marked, "Load more" and the close
// button (or Escape). Results are drawn as they come (one row each); a click opens the
// conversation at that message (`openAt`). Closed, the panel keeps its results: opened again, it
// shows them (the way back from a result). The state is the store's (`store.search`, found.js).
import * as P from "../protocol.js";
import { avatar, el } from "./format.js";

const $ = (id) => document.getElementById(id);
const resultRows = new Map(); // message Id -> its row in the list
const timeFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
let opener = null; // what had the focus before the panel opened: it gets it back

export function setupSearch(store, { send, openAt }) {
  const panel = $("search-panel");
  const close = () => {
    panel.hidden = true;
    opener?.focus?.();
    opener = null;
  };
  $("open-search").addEventListener("click", () => openPanel(store, false));
  $("conv-search").addEventListener("click", () => openPanel(store, true));
  $("search-close").addEventListener("click", close);
  panel.addEventListener("keydown", (event) => {
    if (event.key === "Escape") { event.preventDefault(); close(); }
  });
  $("msg-search").addEventListener("submit", (event) => {
    event.preventDefault();
    const query = $("msg-query").value.trim();
    const conv = store.activeConv;
    const scope = $("msg-scope").value === "open" && conv ? { chat: conv.chat, to: conv.name } : null;
    if (!query) return;
    store.search.start(query, scope);
    clearResults();
    status(send(P.search(query, scope)) ? "Searching…" : "Offline: searching once the connection is back…");
  });
  $("search-more").addEventListener("click", () => {
    const before = store.search.more();
    if (before === null) return;
    send(P.search(store.search.query, store.search.scope, before)); // offline: it goes on reconnect
    renderMore(store);
  });
  $("search-results").addEventListener("click", (event) => {
    const id = Number(event.target.closest("[data-result]")?.dataset.result);
    const m = id && store.search.results.find((x) => x.Id === id);
    if (!m) return;
    close();
    openAt(m);
  });
}

// `inOpen`: the search keeps to the open conversation (the header's button), else everywhere.
function openPanel(store, inOpen) {
  syncScope(store);
  $("msg-scope").value = inOpen && store.activeConv ? "open" : "all";
  if ($("search-panel").hidden) opener = document.activeElement;
  $("search-panel").hidden = false;
  $("msg-query").focus();
  $("msg-query").select();
}

// The socket (re)opened: the page asked for and not answered goes (again).
export function resend(store, send) {
  const { search } = store;
  if (search.open && search.loading && send(P.search(search.query, search.scope, search.asked))) {
    if (!search.results.length) status("Searching…");
  }
}

// The scope "in the open conversation" names it (the open one changes while the panel is open).
export function syncScope(store) {
  const conv = store.activeConv;
  const option = $("msg-scope-open");
  option.disabled = !conv;
  option.textContent = conv ? `In “${conv.name}”` : "In the open conversation";
  if (!conv) $("msg-scope").value = "all";
}

function clearResults() {
  resultRows.clear();
  $("search-results").replaceChildren();
  $("search-more").hidden = true;
}

function status(text) { $("search-status").textContent = text; }

// A page of results came: its rows go below the others.
export function renderFound(store, { added }) {
  const list = $("search-results");
  for (const m of added) {
    const row = resultNode(store, m, store.search.query);
    resultRows.set(m.Id, row);
    list.append(row);
  }
  renderMore(store);
  const n = store.search.results.length;
  if (n) status(`${n}${store.search.hasMore ? "+" : ""} message${n === 1 ? "" : "s"} found`);
  else status(store.search.hasMore ? "Nothing yet: load more to look further back." : "No messages found");
}

export function removeResults(ids) {
  for (const id of ids) { resultRows.get(id)?.remove(); resultRows.delete(id); }
}

export function searchFailed(store) {
  renderMore(store);
  status("");
}

function renderMore(store) {
  const more = $("search-more");
  more.hidden = !store.search.hasMore;
  more.disabled = store.search.loading;
  more.textContent = store.search.loading ? "Loading…" : "Load more";
}

function resultNode(store, m, query) {
  const li = el("li");
  const button = el("button", "result");
  button.type = "button";
  button.dataset.result = m.Id;
  const group = m.Chat === P.GROUP;
  const where = group ? m.To : m.From === store.me ? m.To : m.From;
  const head = el("span", "result-head");
  const conv = el("span", "result-conv");
  conv.append(avatar(where, group ? "group small" : "small"), el("span", "result-name", where));
  const time = el("time", "result-time", timeFmt.format(new Date(m.Time)));
  time.dateTime = m.Time;
  head.append(conv, time);
  const from = el("span", "result-from", m.From === store.me ? "You" : m.From);
  const text = el("span", "result-text");
  text.append(m.is_image ? "Image" : highlighted(m.Content, query));
  button.append(head, from, text);
  li.append(button);
  return li;
}

// `text` as text nodes, each word of `query` found in it (in any case) in a <mark>.
export function highlighted(text, query) {
  const fragment = document.createDocumentFragment();
  const words = [...new Set(query.split(/\s+/).filter(Boolean))].sort((a, b) => b.length - a.length);
  if (!words.length) { fragment.append(text); return fragment; }
  const pattern = new RegExp(words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|"), "giu");
  let at = 0;
  for (const match of text.matchAll(pattern)) {
    if (match.index > at) fragment.append(text.slice(at, match.index));
    fragment.append(el("mark", null, match[0]));
    at = match.index + match[0].length;
  }
  if (at < text.length) fragment.append(text.slice(at));
  return fragment;
}
