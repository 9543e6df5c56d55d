// The one switch over server frame types. Each handler changes the store through its methods,
// then tells the controller (`app`) what changed, so that only that is drawn again.
import { GROUP } from "./protocol.js";
import { convKey } from "./store.js";
import { toast } from "./ui/toast.js";

export function makeDispatch(app) {
  const { store } = app;

  const handlers = {
    State(frame) {
      const { reset } = store.applyState(frame);
      if (reset) app.conversationsDropped();
      app.refresh();
    },

    Synced(frame) {
      if (store.applySynced(frame)) app.caughtUp();
    },

    Message(frame) {
      app.messageAdded(store.addMessage(frame), frame);
    },

    History(frame) {
      app.historyAdded(store.addHistory(frame));
    },

    Found(frame) {
      const change = store.search.addFound(frame);
      if (change) app.foundAdded(change);
    },

    Presence(frame) {
      store.setOnline(frame.Username, frame.Online);
      app.refreshSidebar();
      app.refreshHeader();
    },

    Group(frame) {
      const wasActive = store.active === convKey(GROUP, frame.Name);
      store.applyGroup(frame);
      if (frame.Event === "Deleted" && wasActive) {
        toast(`The group “${frame.Name}” was deleted by ${frame.User}.`, "info");
        app.closeConversation();
      } else if (frame.Event === "Created" && frame.User === store.me) {
        app.open(GROUP, frame.Name);
      } else if (frame.Event === "Left" && frame.User === store.me && wasActive) {
        app.closeConversation();
      }
      app.refresh();
    },

    Read(frame) {
      const conv = store.conv(frame.Chat, frame.To);
      store.setRead(conv, frame.Id);
      app.refreshUnread(conv);
    },

    Removed(frame) {
      app.messagesRemoved(store.removeMessages(frame.Ids, frame.Seq));
      const found = store.search.remove(frame.Ids);
      if (found.length) app.resultsRemoved(found);
    },

    Reported() {
      toast("Thanks, the moderators will look at it.", "info", 4000);
    },

    Error(frame) {
      // Refused for now, not for good: the message stays pending and goes again shortly.
      if (frame.ClientId && ["rate_limited", "server_error"].includes(frame.Code) && app.retryLater(frame.ClientId)) {
        return;
      }
      const detail = refusalText(frame);
      if (frame.ClientId) {
        const failed = store.failPending(frame.ClientId, detail);
        if (failed) app.messageFailed(failed);
      }
      if (frame.Ref === "Join" && frame.Code === "not_found") app.closeConversation();
      if (frame.Ref === "Search") { store.search.fail(); app.searchFailed(); }
      toast(detail);
    },
  };

  return (frame) => {
    const handler = Object.hasOwn(handlers, frame.Type) ? handlers[frame.Type] : null;
    if (handler) handler(frame);
  };
}

// What a refusal says: a mute's end in the reader's own time (the server's Detail says it in UTC).
function refusalText(frame) {
  if (typeof frame.Until === "string" && !Number.isNaN(Date.parse(frame.Until))) {
    const until = new Date(frame.Until).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
    return `You are muted until ${until}${typeof frame.Reason === "string" ? `: ${frame.Reason}` : "."}`;
  }
  return frame.Detail || `The server refused that (${frame.Code}).`;
}
