// Reactions: the chips under a bubble (emoji and count, pressed when one is mine) and the quick
// picker that adds one (the usual six, and the composer's full list behind "…").
import { EMOJI, emojiButton } from "./emoji.js";
import { el } from "./format.js";

export const QUICK = ["👍", "❤️", "😂", "😮", "😢", "🎉"];

// The chips of `m`, or null when nobody reacted. A chip carries data-react (ui/actions.js sends it).
export function reactionBar(store, m) {
  if (!m.Reactions?.length || !m.Id) return null;
  const bar = el("div", "reactions");
  for (const { Emoji: emoji, Users: users } of m.Reactions) {
    const mine = users.includes(store.me);
    const chip = el("button", `chip${mine ? " mine" : ""}`);
    chip.type = "button";
    chip.dataset.react = emoji;
    chip.setAttribute("aria-pressed", String(mine));
    chip.title = `${users.join(", ")} reacted with ${emoji}${mine ? " (click to take yours back)" : ""}`;
    chip.setAttribute("aria-label", `${emoji} ${users.length}: ${users.join(", ")}`);
    chip.append(el("span", "chip-emoji", emoji), el("span", "chip-count", String(users.length)));
    bar.append(chip);
  }
  const more = el("button", "chip add", "+");
  more.type = "button";
  more.dataset.pick = m.Id;
  more.title = "Add a reaction";
  more.setAttribute("aria-label", "Add a reaction");
  bar.append(more);
  return bar;
}

export const hasMine = (store, m, emoji) =>
  m.Reactions?.some((r) => r.Emoji === emoji && r.Users.includes(store.me)) ?? false;

// One picker for the page, opened next to `anchor` for a message; `onPick(emoji)`.
export function setupPicker() {
  const panel = el("div", "react-picker");
  panel.setAttribute("role", "dialog");
  panel.setAttribute("aria-label", "React with an emoji");
  panel.hidden = true;
  const quick = el("div", "react-quick");
  const all = el("div", "react-all");
  all.hidden = true;
  const more = el("button", "emoji more", "…");
  more.type = "button";
  more.title = "More emoji";
  more.setAttribute("aria-label", "More emoji");
  panel.append(quick, all);
  document.body.append(panel);
  let picked = null;
  let back = null;
  let closed = null;
  const choose = (emoji) => { const f = picked; close(); f?.(emoji); };
  quick.append(...QUICK.map((e) => emojiButton(e, `React with ${e}`, choose)), more);
  all.append(...EMOJI.map((e) => emojiButton(e, `React with ${e}`, choose)));
  more.addEventListener("click", () => { all.hidden = !all.hidden; place(panel, back); all.querySelector("button")?.focus(); });

  function close() {
    if (panel.hidden) return;
    panel.hidden = true;
    all.hidden = true;
    picked = null;
    if (back?.isConnected) back.focus();
    closed?.();
    closed = null;
  }

  // `onClose()`: once it closes (after the focus went back to `anchor`).
  function open(anchor, onPick, onClose = null) {
    close();
    picked = onPick;
    back = anchor;
    closed = onClose;
    panel.hidden = false;
    place(panel, anchor);
    quick.querySelector("button").focus();
  }

  panel.addEventListener("keydown", (event) => {
    if (event.key === "Escape") { event.stopPropagation(); close(); }
  });
  document.addEventListener("pointerdown", (event) => {
    if (!panel.hidden && !panel.contains(event.target) && !event.target.closest?.("[data-pick], .act-react")) close();
  });
  return { open, close, get isOpen() { return !panel.hidden; } };
}

// Below the anchor (above it when there is no room), never past the window's edges.
function place(panel, anchor) {
  if (!anchor) return;
  const box = anchor.getBoundingClientRect();
  const width = panel.offsetWidth;
  const height = panel.offsetHeight;
  const left = Math.max(8, Math.min(box.right - width, window.innerWidth - width - 8));
  const below = box.bottom + 6;
  const top = below + height > window.innerHeight - 8 ? Math.max(8, box.top - height - 6) : below;
  panel.style.left = `${left}px`;
  panel.style.top = `${top}px`;
}
