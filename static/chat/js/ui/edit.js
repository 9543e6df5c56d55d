// Editing one of my messages in place: its text becomes a textarea. Enter saves, Shift+Enter starts
// a line, Escape cancels; an unchanged text just closes. What is being typed lives here (it is not
// chat state): a row redrawn meanwhile (a reaction came) keeps the same editor (`editorFor`).
import { el } from "./format.js";
import { toast } from "./toast.js";

let editing = null; // {id, box, area, m}

// The live editor of message `m`, for its row being drawn again; null when it is not being edited.
export const editorFor = (m) => (editing && editing.id === m.Id ? editing.box : null);

export const editingId = () => editing?.id ?? null;

// `redraw(m)`: draw m's row again; `save(m, text)`: send the edit, false when it could not go.
export function setupEditor({ maxText, redraw, save }) {
  function stop({ focusComposer = true } = {}) {
    if (!editing) return;
    const { m } = editing;
    editing = null;
    redraw(m);
    if (focusComposer) document.getElementById("input").focus();
  }

  function submit() {
    const { m, area } = editing;
    const text = area.value;
    if (text === m.Content) { stop(); return; }
    if (!text.trim()) { toast("A message cannot be empty. To take it back, remove it instead."); return; }
    if (text.length > maxText) { toast(`A message has at most ${maxText.toLocaleString()} characters.`); return; }
    if (!save(m, text)) { toast("You are offline: the edit can be saved once the connection is back."); return; }
    stop();
  }

  function start(m) {
    if (editing) stop({ focusComposer: false });
    const box = el("div", "editor");
    const area = document.createElement("textarea");
    area.value = m.Content;
    area.rows = Math.min(8, m.Content.split("\n").length + 1);
    area.setAttribute("aria-label", "Edit your message");
    area.title = "Enter saves, Shift+Enter starts a new line, Escape cancels";
    const cancel = el("button", "", "Cancel");
    cancel.type = "button";
    const ok = el("button", "primary", "Save");
    ok.type = "button";
    const actions = el("div", "editor-actions");
    actions.append(el("span", "hint", "Enter saves · Esc cancels"), cancel, ok);
    box.append(area, actions);
    area.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); submit(); }
      if (event.key === "Escape") { event.preventDefault(); event.stopPropagation(); stop(); }
    });
    cancel.addEventListener("click", () => stop());
    ok.addEventListener("click", submit);
    editing = { id: m.Id, box, area, m };
    redraw(m);
    area.focus();
    area.setSelectionRange(area.value.length, area.value.length);
  }

  // The message changed or went while being edited: follow its newest copy, or give up.
  function follow(m) { if (editing && editing.id === m.Id) editing.m = m; }
  function drop(ids) { if (editing && ids.includes(editing.id)) { editing = null; } }

  return { start, stop, follow, drop };
}
