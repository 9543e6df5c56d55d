// Client frames of the chat protocol (docs/protocol.md). The server takes identity from the
// session, so frames never need a `From`.

export const PRIVATE = "Private";
export const GROUP = "Group";

// `seq`: resume from that `Seq` (the replay ends with `Synced`); `since`: the old resume, new
// messages after that Id, for a server without `Seq`; neither: a first connection.
export function connect({ seq = null, since = null } = {}) {
  if (seq !== null) return { Type: "Connect", Seq: seq };
  return since ? { Type: "Connect", Since: since } : { Type: "Connect" };
}
// `replyTo`: the Id of the message this one answers (of the same conversation), or null.
export function send(chat, to, content, clientId, replyTo = null) {
  const frame = { Type: "Send", Chat: chat, To: to, Content: content, is_image: 0, ClientId: clientId };
  if (replyTo) frame.ReplyTo = replyTo;
  return frame;
}
export const sendImage = (chat, to, dataUrl, clientId) =>
  ({ Type: "Send", Chat: chat, To: to, Content: dataUrl, is_image: 1, ClientId: clientId });
export const join = (chat, to, before) =>
  (before ? { Type: "Join", Chat: chat, To: to, Before: before } : { Type: "Join", Chat: chat, To: to });
// A page of the conversation around message `id` (a search result), or the page just newer than it.
export const joinAround = (chat, to, id) => ({ Type: "Join", Chat: chat, To: to, Around: id });
export const joinAfter = (chat, to, id) => ({ Type: "Join", Chat: chat, To: to, After: id });
// Messages holding every word of `query`: everywhere, or in one conversation (`scope`: {chat, to});
// `before`: the next page, from the last `Found.Before`.
export function search(query, scope = null, before = null) {
  const frame = { Type: "Search", Query: query };
  if (scope) Object.assign(frame, { Chat: scope.chat, To: scope.to });
  if (before) frame.Before = before;
  return frame;
}
export const create = (name, members) => ({ Type: "Create", Name: name, List: members });
export const remove = (name) => ({ Type: "Delete", Name: name });
export const leave = (name) => ({ Type: "Leave", Name: name });
export const report = (id, reason) => ({ Type: "Report", Id: id, Reason: reason });
export const edit = (id, content) => ({ Type: "Edit", Id: id, Content: content });
export const removeMessage = (id) => ({ Type: "Remove", Id: id });
export const react = (id, emoji, on) => ({ Type: "React", Id: id, Emoji: emoji, On: on });
export const read = (chat, to, id) => ({ Type: "Read", Chat: chat, To: to, Id: id });

export function newClientId() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  // crypto.randomUUID needs a secure context; plain http on a LAN address has none.
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`;
}
