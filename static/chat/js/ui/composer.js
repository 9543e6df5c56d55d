// The composer: a growing textarea (Enter sends, Shift+Enter starts a line), the emoji picker and
// image attachments. It checks what it can before anything goes out; sending is the caller's.
import { setupAttachments } from "./attach.js";
import { setupEmojiPicker } from "./emoji.js";
import { toast } from "./toast.js";

const $ = (id) => document.getElementById(id);

// onText(text) and onImage(dataUrl) return true when the message was taken; onEditLast() (↑ in
// an empty composer) and onEscape() return true when they did something.
export function setupComposer({ maxText, imageLimit, onText, onImage, onEditLast, onEscape }) {
  const input = $("input");
  const grow = () => {
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
  };
  input.addEventListener("input", grow);
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
    if (event.key === "ArrowUp" && !input.value && onEditLast()) event.preventDefault();
    if (event.key === "Escape" && onEscape()) event.preventDefault();
  });
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    if (submit(input.value, maxText, onText)) {
      input.value = "";
      grow();
    }
    input.focus();
  });
  setupEmojiPicker({ toggle: $("emoji-toggle"), panel: $("emoji-panel"), textarea: input });
  setupAttachments({ limit: imageLimit, onSend: onImage });
}

function submit(text, maxText, onText) {
  if (!text.trim()) return false;
  if (text.length > maxText) {
    toast(`A message has at most ${maxText.toLocaleString()} characters; this one has ${text.length.toLocaleString()}.`);
    return false;
  }
  return onText(text);
}
