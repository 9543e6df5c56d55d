// The "new group" dialog: a name and members picked from the users. It closes once the request
// is on its way; offline it stays open and says so (`onCreate` returns false).
import { el } from "./format.js";

const $ = (id) => document.getElementById(id);

export function setupGroupDialog(store, { onCreate }) {
  const dialog = $("group-dialog");
  const renderChoices = () => {
    const needle = $("member-filter").value.trim().toLocaleLowerCase();
    const checked = new Set([...dialog.querySelectorAll("input[name=member]:checked")].map((i) => i.value));
    const users = [...store.users.values()].map((u) => u.username).filter((n) => n !== store.me).sort();
    $("member-choices").replaceChildren(...users.filter((n) => !needle || n.toLocaleLowerCase().includes(needle)).map((name) => {
      const li = el("li");
      const label = el("label");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.name = "member";
      box.value = name;
      box.checked = checked.has(name);
      label.append(box, el("span", "", name));
      li.append(label);
      return li;
    }));
  };
  $("new-group").addEventListener("click", () => {
    $("group-name").value = "";
    $("member-filter").value = "";
    $("group-error").textContent = "";
    $("member-choices").replaceChildren();
    renderChoices();
    dialog.showModal();
    $("group-name").focus();
  });
  $("member-filter").addEventListener("input", renderChoices);
  $("group-cancel").addEventListener("click", () => dialog.close());
  $("group-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = $("group-name").value.trim();
    if (!name) { $("group-error").textContent = "Give the group a name."; return; }
    const members = [...dialog.querySelectorAll("input[name=member]:checked")].map((i) => i.value);
    if (!onCreate(name, members)) {
      $("group-error").textContent = "You are offline: the group can be created once the connection is back.";
      return;
    }
    dialog.close();
  });
}

// A yes/no question in the page's own dialog (window.confirm cannot be styled, and blocks the
// socket's handlers). Resolves true when `ok` was chosen.
export function confirmDialog({ title, text, ok }) {
  const dialog = $("confirm-dialog");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = ok;
  dialog.returnValue = "";
  dialog.showModal();
  $("confirm-cancel").focus();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}
