// The connection banner: hidden while connected; "Reconnecting in N s…" with a "Retry now" button
// while not, and "Catching up…" while a reconnected socket replays what it missed. It also finds
// out, over HTTP, when a lost connection means the session is gone.
import { toast } from "./toast.js";

const banner = () => document.getElementById("banner");

// `status` comes from ChatSocket; `retry` is its retryNow. Returns nothing; the page state
// (store.connection) is set by the caller.
export function showConnection(status, { retry }) {
  document.body.classList.toggle("offline", status.state !== "open");
  document.body.classList.remove("catching-up");
  if (status.state === "open") {
    banner().hidden = true;
    if (status.reconnected) toast("Reconnected.", "info", 2500);
    return;
  }
  if (status.state === "ended") {
    // The server closed for good (session ended, or banned): load the page again. `/` needs a
    // login, so a dead session lands on the login page and a live one gets a fresh chat page.
    show("Your session has changed. Reloading…");
    window.location.assign("/");
    return;
  }
  const seconds = Math.max(1, Math.round(status.retryIn / 1000));
  show(`Connection lost. Reconnecting in ${seconds} s… Messages you send will go out then. `);
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = "Retry now";
  button.addEventListener("click", retry);
  banner().append(button);
  if (status.attempt >= 2) checkSession();
}

// From a `Connect` that resumes until its `Synced` (on while connected only: a closed socket
// shows the offline banner instead).
export function showCatchingUp(on) {
  if (on) {
    document.body.classList.add("catching-up");
    show("Catching up…", "info");
  } else if (document.body.classList.contains("catching-up")) {
    document.body.classList.remove("catching-up");
    banner().hidden = true;
  }
}

function show(text, kind = "") {
  banner().hidden = false;
  banner().className = kind ? `banner ${kind}` : "banner";
  banner().replaceChildren(text);
}

// A socket refused at the handshake looks like any dropped connection; ask over HTTP.
async function checkSession() {
  try {
    const response = await fetch("/api/users/", { credentials: "same-origin" });
    if (response.status === 401) window.location.href = "/accounts/login/?next=/";
  } catch { /* the server is down: keep retrying */ }
}
