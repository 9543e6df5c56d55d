// The page's buttons and listeners outside the composer: search, back, scrolling, reporting,
// jumping to the end, cancelling a reply, leaving or deleting a group, the lightbox, sound, focus and the group dialog.
// They act through the controller (`app`) and `send` (a frame to the server; false when offline).
import * as P from "../protocol.js";
import * as view from "./conversation.js";
import { setupGroupDialog } from "./dialog.js";
import { avatar } from "./format.js";
import * as notify from "./notify.js";

const $ = (id) => document.getElementById(id);

export function setupControls(app, { send, loadOlder, loadNewer }) {
  const { store } = app;
  $("my-avatar").replaceWith(avatar(store.me, "me"));
  $("search").addEventListener("input", () => app.refreshSidebar());
  $("back").addEventListener("click", () => app.closeConversation());
  $("messages").addEventListener("scroll", () => {
    loadOlder();
    loadNewer();
    if (view.isAtBottom()) { $("jump").hidden = true; app.markRead(); }
  });
  $("messages").addEventListener("click", (event) => {
    const id = Number(event.target.closest("[data-report]")?.dataset.report);
    if (!id) return;
    const reason = window.prompt("Why are you reporting this message? (optional)");
    if (reason !== null) send(P.report(id, reason.slice(0, 500)));
  });
  $("reply-cancel").addEventListener("click", () => app.cancelReply());
  $("jump").addEventListener("click", () => { view.scrollToBottom(); app.markRead(); });
  $("latest").addEventListener("click", () => app.jumpToLatest());
  $("delete-group").addEventListener("click", () => {
    const conv = store.activeConv;
    if (conv && window.confirm(`Delete the group “${conv.name}” and all its messages, for everyone?`)) {
      send(P.remove(conv.name));
    }
  });
  $("leave-group").addEventListener("click", () => {
    const conv = store.activeConv;
    if (conv && window.confirm(`Leave the group “${conv.name}”?`)) send(P.leave(conv.name));
  });
  $("lightbox").addEventListener("click", () => $("lightbox").close());
  notify.setupMute($("mute"));
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") { notify.stopFlash(); app.markRead(); }
  });
  window.addEventListener("focus", () => notify.stopFlash());
  setupGroupDialog(store, { onCreate: (name, members) => send(P.create(name, members)) });
}
