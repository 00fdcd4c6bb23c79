// beakerd's pages work without this script; it adds copy buttons, the narrative preview
// without a reload, and a confirmation before a tag is deleted. No inline handlers: the CSP
// allows scripts from beakerd only.
"use strict";

function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    return navigator.clipboard.writeText(text);
  }
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.style.position = "absolute";
  area.style.left = "-9999px";
  document.body.appendChild(area);
  area.select();
  document.execCommand("copy");
  area.remove();
  return Promise.resolve();
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("button.copy");
  if (!button) return;
  copyText(button.dataset.copy || "").then(() => {
    const label = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = label; }, 1500);
  });
});

document.addEventListener("submit", (event) => {
  const button = event.submitter;
  if (button && button.dataset.confirm && !window.confirm(button.dataset.confirm)) {
    event.preventDefault();
  }
});

const editForm = document.querySelector("form[data-preview]");
if (editForm) {
  const previewButton = editForm.querySelector("#preview-button");
  const pane = document.getElementById("preview");
  previewButton.addEventListener("click", (event) => {
    event.preventDefault();
    const data = new FormData(editForm);
    pane.setAttribute("aria-busy", "true");
    fetch(editForm.dataset.preview, { method: "POST", body: new URLSearchParams(data), credentials: "same-origin" })
      .then((response) => response.text().then((html) => ({ ok: response.ok, html })))
      .then(({ ok, html }) => {
        // Rendered and sanitized by beakerd, as the image page shows it.
        if (ok) {
          pane.innerHTML = html;
        } else {
          pane.textContent = "The preview failed: " + new DOMParser().parseFromString(html, "text/html").querySelector(".problem")?.textContent;
        }
      })
      .finally(() => pane.removeAttribute("aria-busy"));
  });
}
