// Readable notices for server errors and other events; never silence.
import { el } from "./format.js";

const box = () => document.getElementById("toasts");

export function toast(message, kind = "error", ms = 6000) {
  const node = el("div", `toast ${kind}`);
  node.setAttribute("role", kind === "error" ? "alert" : "status");
  node.append(el("span", "", message));
  const close = el("button", "icon small", "×");
  close.type = "button";
  close.setAttribute("aria-label", "Dismiss");
  close.addEventListener("click", () => node.remove());
  node.append(close);
  box().append(node);
  setTimeout(() => node.remove(), ms);
}
