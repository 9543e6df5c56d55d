// The composer's emoji picker: plain UTF-8 emoji inserted at the cursor. Its list is also the
// reactions' full list (ui/reactions.js).

export const EMOJI = [
  "😀", "😃", "😄", "😁", "😆", "😅", "😂", "🤣", "😊", "😇", "🙂", "🙃", "😉", "😍", "🥰", "😘",
  "😋", "😛", "😜", "🤪", "🤓", "😎", "🥳", "🤩", "😏", "😒", "😞", "😔", "😟", "😕", "🙁", "😣",
  "😢", "😭", "😤", "😠", "😡", "🤯", "😳", "🥺", "😱", "😨", "🤔", "🤫", "🤭", "🙄", "😴", "🤤",
  "👍", "👎", "👌", "✌️", "🤞", "👏", "🙌", "🙏", "💪", "👋", "🤝", "✍️", "👀", "🧠", "❤️", "🧡",
  "💛", "💚", "💙", "💜", "🖤", "💔", "💯", "✨", "🔥", "🎉", "🎊", "🎂", "🎁", "☕", "🍕", "🍔",
  "🍺", "⚽", "🏀", "🎮", "🎵", "📚", "✏️", "💻", "📎", "✅", "❌", "❓", "❗", "⭐", "🌈", "☀️",
  "🌙", "🚀", "🐶", "🐱", "🦄", "🌸", "🍀", "🌍",
];

export function insertAtCursor(textarea, text) {
  const start = textarea.selectionStart ?? textarea.value.length;
  const end = textarea.selectionEnd ?? start;
  textarea.setRangeText(text, start, end, "end");
  textarea.dispatchEvent(new Event("input", { bubbles: true }));
  textarea.focus();
}

// One emoji of a picker (this one, and the reactions' in ui/reactions.js).
export function emojiButton(emoji, label, onPick) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "emoji";
  button.textContent = emoji;
  button.title = label;
  button.setAttribute("aria-label", label);
  button.addEventListener("click", () => onPick(emoji));
  return button;
}

export function setupEmojiPicker({ toggle, panel, textarea }) {
  for (const emoji of EMOJI) {
    const button = emojiButton(emoji, `Insert ${emoji}`, () => insertAtCursor(textarea, emoji));
    button.setAttribute("role", "option");
    panel.append(button);
  }
  const setOpen = (open) => {
    panel.hidden = !open;
    toggle.setAttribute("aria-expanded", String(open));
    if (open) panel.querySelector("button")?.focus();
  };
  toggle.addEventListener("click", () => setOpen(panel.hidden));
  panel.addEventListener("keydown", (event) => {
    if (event.key === "Escape") { setOpen(false); toggle.focus(); }
  });
  document.addEventListener("click", (event) => {
    if (!panel.hidden && !panel.contains(event.target) && event.target !== toggle) setOpen(false);
  });
}
