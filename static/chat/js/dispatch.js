// The one switch over server frame types. Each handler updates the store, then the UI.
import { GROUP, PRIVATE } from "./protocol.js";
import { convKey } from "./store.js";
import { toast } from "./ui/toast.js";

export function makeDispatch(app) {
  const { store } = app;

  const handlers = {
    State(frame) {
      store.applyState(frame);
      // Unread counts already include everything up to LastId; a first connection starts there.
      store.countedUpTo = frame.LastId ?? 0;
      if (!store.maxId) store.maxId = store.countedUpTo;
      if (store.active && !store.convs.has(store.active)) store.active = null;
      app.refresh();
    },

    Message(frame) {
      const { conv, isNew } = store.addMessage(frame);
      if (!isNew) { app.refreshConversation(conv); return; }
      const fromOther = frame.From !== store.me && frame.Id > (store.countedUpTo ?? 0);
      const seen = store.active === conv.key && document.visibilityState === "visible";
      if (fromOther && !(seen && app.isAtBottom())) {
        conv.unread += 1;
        app.attention(frame, conv);
      }
      app.refreshConversation(conv, { newMessage: frame });
      app.refreshSidebar();
    },

    History(frame) {
      const conv = store.addHistory(frame);
      app.refreshConversation(conv, { history: true });
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
      app.refreshSidebar();
    },

    Removed(frame) {
      for (const conv of store.removeMessages(frame.Ids)) app.refreshConversation(conv);
      app.refreshSidebar();
    },

    Reported() {
      toast("Thanks, the moderators will look at it.", "info", 4000);
    },

    Error(frame) {
      // Refused for now, not for good: the message stays pending and goes again shortly.
      if (frame.ClientId && ["rate_limited", "server_error"].includes(frame.Code) && app.retryLater(frame.ClientId)) {
        return;
      }
      if (frame.ClientId) {
        const conv = store.failPending(frame.ClientId, frame.Detail);
        if (conv) app.refreshConversation(conv);
      }
      if (frame.Ref === "Join" && frame.Code === "not_found") app.closeConversation();
      toast(frame.Detail || `The server refused that (${frame.Code}).`);
    },
  };

  return (frame) => {
    const handler = Object.hasOwn(handlers, frame.Type) ? handlers[frame.Type] : null;
    if (handler) handler(frame);
  };
}

export { PRIVATE, GROUP };
