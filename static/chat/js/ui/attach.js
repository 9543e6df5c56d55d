// Attaching an image: by button, paste or drag-and-drop; a preview; scaled down in the
// browser when that brings it under the server's limit.
import { toast } from "./toast.js";

const $ = (id) => document.getElementById(id);
const TYPES = ["image/png", "image/jpeg", "image/gif", "image/webp"];
const mb = (bytes) => `${(bytes / 1_000_000).toFixed(1)} MB`;

const readAsDataURL = (blob) => new Promise((resolve, reject) => {
  const reader = new FileReader();
  reader.onload = () => resolve(reader.result);
  reader.onerror = () => reject(reader.error);
  reader.readAsDataURL(blob);
});

const canvasBlob = (canvas, type, quality) => new Promise((resolve) => canvas.toBlob(resolve, type, quality));

// Re-draw smaller and smaller until the file fits; null when it cannot.
async function shrink(file, limit) {
  let bitmap;
  try { bitmap = await createImageBitmap(file); } catch { return null; }
  let scale = Math.min(1, 2560 / Math.max(bitmap.width, bitmap.height));
  for (let attempt = 0; attempt < 6; attempt += 1, scale *= 0.75) {
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round(bitmap.width * scale));
    canvas.height = Math.max(1, Math.round(bitmap.height * scale));
    canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    const blob = await canvasBlob(canvas, "image/webp", 0.85);
    if (blob && blob.size <= limit) return blob;
  }
  return null;
}

export function setupAttachments({ limit, onSend }) {
  let chosen = null; // {dataUrl, name, size}
  const box = $("attachment");

  const clear = () => {
    chosen = null;
    box.hidden = true;
    $("attachment-img").removeAttribute("src");
    $("file-input").value = "";
  };

  async function take(file) {
    if (!file) return;
    if (!TYPES.includes(file.type)) {
      toast(`“${file.name || "This file"}” is not a PNG, JPEG, GIF or WebP image.`);
      return;
    }
    let blob = file;
    let note = mb(file.size);
    if (file.size > limit) {
      blob = await shrink(file, limit);
      if (!blob) {
        toast(`This image is ${mb(file.size)}; images can be at most ${mb(limit)}, and scaling it down did not help.`);
        return;
      }
      note = `${mb(file.size)} → scaled down to ${mb(blob.size)}`;
    }
    chosen = { dataUrl: await readAsDataURL(blob), name: file.name || "pasted image" };
    $("attachment-img").src = chosen.dataUrl;
    $("attachment-name").textContent = `${chosen.name} (${note})`;
    box.hidden = false;
    $("attachment-send").focus();
  }

  $("attach").addEventListener("click", () => $("file-input").click());
  $("file-input").addEventListener("change", (event) => take(event.target.files[0]));
  $("input").addEventListener("paste", (event) => {
    const file = [...(event.clipboardData?.files ?? [])].find((f) => f.type.startsWith("image/"));
    if (file) { event.preventDefault(); take(file); }
  });
  const area = $("conversation");
  area.addEventListener("dragover", (event) => {
    if ([...event.dataTransfer.types].includes("Files")) { event.preventDefault(); area.classList.add("dropping"); }
  });
  area.addEventListener("dragleave", (event) => { if (event.target === area) area.classList.remove("dropping"); });
  area.addEventListener("drop", (event) => {
    area.classList.remove("dropping");
    if (event.dataTransfer.files.length) { event.preventDefault(); take(event.dataTransfer.files[0]); }
  });
  $("attachment-cancel").addEventListener("click", clear);
  $("attachment-send").addEventListener("click", () => {
    if (chosen && onSend(chosen.dataUrl)) clear();
  });
}
