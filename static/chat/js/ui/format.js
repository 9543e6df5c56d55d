// Small pure helpers for display: times, day labels, avatars.

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: "long", day: "numeric", month: "long", year: "numeric" });

export const formatTime = (iso) => timeFmt.format(new Date(iso));

export function dayKey(iso) {
  const d = new Date(iso);
  return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
}

export function dayLabel(iso) {
  const d = new Date(iso);
  const today = new Date();
  const yesterday = new Date(today);
  yesterday.setDate(today.getDate() - 1);
  if (dayKey(d.toISOString()) === dayKey(today.toISOString())) return "Today";
  if (dayKey(d.toISOString()) === dayKey(yesterday.toISOString())) return "Yesterday";
  return dayFmt.format(d);
}

export function initial(name) {
  return Array.from(name.trim())[0]?.toUpperCase() ?? "?";
}

export function hue(name) {
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.codePointAt(0)) % 360;
  return h;
}

export function avatar(name, extraClass = "") {
  const el = document.createElement("span");
  el.className = `avatar ${extraClass}`.trim();
  el.textContent = initial(name);
  el.style.setProperty("--hue", hue(name));
  el.setAttribute("aria-hidden", "true");
  return el;
}

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}
