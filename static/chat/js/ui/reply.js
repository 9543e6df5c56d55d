// Replies: the quote above a reply's text, and the composer's "Replying to …" bar. A quote shows
// the original as this page holds it now (so an edit or a removal of it shows at once), else as
// the server described it in `ReplyTo`.
import { el } from "./format.js";

const $ = (id) => document.getElementById(id);
const QUOTE_CHARS = 120;

// {from, text} of the original of `m` (its ReplyTo.Id), or {removed: true}.
export function originalOf(store, conv, id, described = {}) {
  const held = conv.byId.get(id);
  if (held) return { from: held.From, text: held.is_image ? "📷 Image" : held.Content };
  if (described.Removed || store.isRemoved(id) || !described.From) return { removed: true };
  return { from: described.From, text: described.is_image ? "📷 Image" : described.Content ?? "" };
}

const short = (text) => (text.length > QUOTE_CHARS ? `${text.slice(0, QUOTE_CHARS)}…` : text);

// A button: a click (or Enter) takes the reader to the original (`data-quote`, see ui/controls.js).
export function quoteNode(store, conv, m) {
  const original = originalOf(store, conv, m.ReplyTo.Id, m.ReplyTo);
  const quote = el("button", `quote${original.removed ? " removed" : ""}`);
  quote.type = "button";
  quote.dataset.quote = m.ReplyTo.Id;
  if (original.removed) {
    quote.append(el("span", "quote-text", "Original message removed"));
    quote.title = "The message this answered was removed";
    quote.disabled = true;
  } else {
    quote.append(el("span", "quote-from", original.from), el("span", "quote-text", short(original.text)));
    quote.title = "Show the message this answers";
    quote.setAttribute("aria-label", `In reply to ${original.from}: ${short(original.text)}. Show it`);
  }
  return quote;
}

// The bar above the composer while the next message answers another (conv.replyDraft).
export function renderReplyBar(store, conv) {
  const bar = $("reply-bar");
  const id = conv?.replyDraft;
  const original = id ? originalOf(store, conv, id) : null;
  if (!original || original.removed) { bar.hidden = true; return; }
  $("reply-to").replaceChildren("Replying to ", el("strong", "", original.from), `: ${short(original.text)}`);
  bar.hidden = false;
}
