// Attention: a short notification sound (mutable, remembered) and a flashing tab title.

const MUTE_KEY = "chat.muted";
let audio = null;
let flashTimer = null;
let baseTitle = document.title;
let unread = 0;

export const isMuted = () => localStorage.getItem(MUTE_KEY) === "1";

export function setMuted(muted) {
  localStorage.setItem(MUTE_KEY, muted ? "1" : "0");
}

// Browsers only allow audio after a user gesture: create the context on the first one.
export function unlockAudio() {
  if (!audio && (window.AudioContext || window.webkitAudioContext)) {
    audio = new (window.AudioContext || window.webkitAudioContext)();
  }
  if (audio?.state === "suspended") audio.resume();
}

export function ping() {
  if (isMuted() || !audio) return;
  const now = audio.currentTime;
  for (const [i, freq] of [880, 1320].entries()) {
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.type = "sine";
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.0001, now + i * 0.09);
    gain.gain.exponentialRampToValueAtTime(0.18, now + i * 0.09 + 0.01);
    gain.gain.exponentialRampToValueAtTime(0.0001, now + i * 0.09 + 0.16);
    osc.connect(gain).connect(audio.destination);
    osc.start(now + i * 0.09);
    osc.stop(now + i * 0.09 + 0.18);
  }
}

export function setUnreadTitle(count) {
  unread = count;
  if (!flashTimer) document.title = count ? `(${count}) ${baseTitle}` : baseTitle;
}

export function flashTitle(text) {
  if (flashTimer) clearInterval(flashTimer);
  let on = false;
  flashTimer = setInterval(() => {
    on = !on;
    document.title = on ? `💬 ${text}` : (unread ? `(${unread}) ${baseTitle}` : baseTitle);
  }, 1000);
  document.title = `💬 ${text}`;
}

export function stopFlash() {
  if (flashTimer) clearInterval(flashTimer);
  flashTimer = null;
  setUnreadTitle(unread);
}

// The mute button; the audio context waits for the first gesture (browsers refuse one before).
export function setupMute(button) {
  const show = () => {
    button.textContent = isMuted() ? "🔕" : "🔔";
    button.setAttribute("aria-pressed", String(isMuted()));
    button.title = isMuted() ? "Sound is off: click to turn it on" : "Sound is on: click to mute";
  };
  button.addEventListener("click", () => { setMuted(!isMuted()); show(); });
  show();
  for (const type of ["pointerdown", "keydown"]) document.addEventListener(type, unlockAudio, { once: true });
}
