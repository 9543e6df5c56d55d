// What can be done with one message: a small bar at the top of its bubble (React, Reply, Edit,
// Remove, Report) shown on hover, on keyboard focus of its row, or after a long press on a phone;
// and the clicks inside rows (reaction chips, quotes). One bar for the page, moved to the row in use.
import { el } from "./format.js";
import { hasMine, setupPicker } from "./reactions.js";
import { toast } from "./toast.js";

const LONG_PRESS = 500; // ms
const list = () => document.getElementById("message-list");

// `actions`: {react(m, emoji, on), reply(m), edit(m), remove(m), showOriginal(id)}.
export function setupActions(store, actions) {
  const picker = setupPicker();
  const bar = el("div", "msg-actions");
  bar.setAttribute("role", "toolbar");
  bar.setAttribute("aria-label", "Message actions");
  let current = null; // the Id of the message the bar is for
  let pressedId = null; // the Id of the message whose bar a long press opened

  const messageOf = (row) => {
    const conv = store.activeConv;
    const m = conv && row?.dataset.id ? conv.byId.get(Number(row.dataset.id)) : null;
    return m ? { conv, m } : null;
  };

  // The bar stays visible while its picker is open, so that the focus can come back to it.
  const openPicker = (anchor, m) => {
    bar.classList.add("picking");
    picker.open(anchor, (emoji) => actions.react(m, emoji, !hasMine(store, m, emoji)),
      () => bar.classList.remove("picking"));
  };

  function button(symbol, label, className, onClick) {
    const b = el("button", `icon small ${className}`, symbol);
    b.type = "button";
    b.title = label;
    b.setAttribute("aria-label", label);
    if (onClick) b.addEventListener("click", onClick);
    return b;
  }

  function attach(row) {
    const found = messageOf(row);
    if (!found) { bar.remove(); current = null; return; }
    const { conv, m } = found;
    const buttons = [
      button("😊", "Add a reaction", "act-react", (event) => openPicker(event.currentTarget, m)),
      button("↩", "Reply", "act-reply", () => actions.reply(m)),
    ];
    if (store.canEdit(m)) buttons.push(button("✎", "Edit", "act-edit", () => actions.edit(m)));
    if (store.canRemove(conv, m)) buttons.push(button("🗑", "Remove", "act-remove", () => actions.remove(m)));
    if (m.From !== store.me) {
      const flag = button("⚑", "Report to the moderators", "report");
      flag.dataset.report = m.Id; // ui/controls.js asks why and sends it
      buttons.push(flag);
    }
    bar.replaceChildren(...buttons);
    bar.style.transform = "";
    row.querySelector(".bubble").append(bar);
    current = m.Id;
    keepOnScreen();
  }

  // The bar sits at the top right of the bubble; a narrow bubble near an edge would push it out.
  function keepOnScreen() {
    const box = bar.getBoundingClientRect();
    const width = document.documentElement.clientWidth;
    const dx = Math.max(4 - box.left, 0) - Math.max(box.right - (width - 4), 0);
    if (dx) bar.style.transform = `translateX(${dx}px)`;
  }

  function closeOpen() {
    pressedId = null;
    for (const row of list().querySelectorAll(".msg.actions-open")) row.classList.remove("actions-open");
  }

  const messages = list();
  messages.addEventListener("mouseover", (event) => {
    const row = event.target.closest(".msg");
    if (!row || bar.parentNode?.closest(".msg") === row || bar.contains(document.activeElement)) return;
    attach(row);
  });
  messages.addEventListener("focusin", (event) => {
    const row = event.target.closest(".msg");
    if (row && bar.parentNode?.closest(".msg") !== row) attach(row);
  });
  messages.addEventListener("keydown", (event) => onKey(event));
  messages.addEventListener("click", (event) => {
    const target = event.target.closest("[data-react], [data-pick], [data-quote]");
    const found = target && messageOf(target.closest(".msg"));
    if (!found) return;
    if (target.dataset.react) actions.react(found.m, target.dataset.react, !hasMine(store, found.m, target.dataset.react));
    else if (target.dataset.pick) openPicker(target, found.m);
    else actions.showOriginal(Number(target.dataset.quote));
  });
  setupLongPress(messages, (row, chip) => {
    if (chip) { toast(chip.title, "info", 4000); return; } // who reacted: a phone has no hover
    closeOpen();
    attach(row);
    row.classList.add("actions-open");
    pressedId = current;
  });
  document.addEventListener("pointerdown", (event) => {
    if (!event.target.closest?.(".msg.actions-open, .react-picker")) closeOpen();
  });

  function onKey(event) {
    const row = event.target.closest(".msg");
    if (!row) return;
    if (event.key === "Escape" && !picker.isOpen) {
      closeOpen();
      if (bar.contains(event.target)) row.focus();
      return;
    }
    if (event.target !== row) return;
    if (event.key === "Enter") { event.preventDefault(); bar.querySelector("button")?.focus(); }
    if (event.key === "ArrowUp" || event.key === "ArrowDown") {
      const rows = [...messages.querySelectorAll(".msg[tabindex]")];
      const next = rows[rows.indexOf(row) + (event.key === "ArrowUp" ? -1 : 1)];
      if (next) { event.preventDefault(); next.focus(); next.scrollIntoView({ block: "nearest" }); }
    }
  }

  // A row was drawn again (the message changed): the bar goes with the new row, still open
  // if a long press had opened it.
  function sync() {
    if (bar.isConnected || current === null) return;
    const row = messages.querySelector(`.msg[data-id="${current}"]`);
    if (!row) return;
    attach(row);
    if (pressedId === current) row.classList.add("actions-open");
  }

  return { sync, closePicker: () => picker.close() };
}

// About LONG_PRESS ms of a still finger on a row calls onPress(row), or on a reaction chip
// onPress(row, chip). Scrolling cancels it (the browser sends pointercancel); the long press's own
// context menu, and the click its release makes (a chip's would toggle), are suppressed.
function setupLongPress(area, onPress) {
  let timer = null;
  let start = null;
  let pressed = false;
  const clear = () => { clearTimeout(timer); timer = null; };
  area.addEventListener("pointerdown", (event) => {
    pressed = false;
    const row = event.pointerType === "touch" && event.target.closest(".msg[data-id]");
    const chip = row && event.target.closest(".chip[data-react]");
    if (!row || (!chip && event.target.closest("button, textarea, a"))) return;
    start = { x: event.clientX, y: event.clientY };
    timer = setTimeout(() => { timer = null; pressed = true; onPress(row, chip); }, LONG_PRESS);
  });
  area.addEventListener("click", (event) => {
    if (pressed) { event.preventDefault(); event.stopPropagation(); pressed = false; }
  }, true);
  area.addEventListener("pointermove", (event) => {
    if (timer && Math.hypot(event.clientX - start.x, event.clientY - start.y) > 10) clear();
  });
  for (const type of ["pointerup", "pointercancel"]) area.addEventListener(type, clear);
  area.addEventListener("contextmenu", (event) => { if (timer || pressed) event.preventDefault(); });
}
