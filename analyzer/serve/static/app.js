// The upload page: drag and drop, upload progress, then follow the analysis to its report.
// Everything from the server or the user is shown with textContent, never as HTML.
"use strict";
(function () {
  const form = document.getElementById("upload");
  if (!form) return;
  const input = document.getElementById("files");
  const drop = document.getElementById("drop");
  const chosen = document.getElementById("chosen");
  const box = document.getElementById("progress");
  const bar = document.getElementById("bar");
  const phase = document.getElementById("phase");
  const error = document.getElementById("error");
  const go = document.getElementById("go");

  // control characters and the marks that reorder a line (U+202E) as escapes, as the pages show them
  const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
  function shown(text) {
    return String(text).replace(CONTROL, (c) => {
      const n = c.charCodeAt(0);
      return n < 256 ? "\\x" + n.toString(16).padStart(2, "0") : "\\u" + n.toString(16).padStart(4, "0");
    });
  }

  function showChosen() {
    chosen.replaceChildren();
    for (const f of input.files) {
      const li = document.createElement("li");
      li.textContent = shown(f.name) + " (" + f.size + " bytes)";
      chosen.appendChild(li);
    }
  }
  function fail(text) {
    error.textContent = shown(text);
    error.hidden = false;
    box.hidden = true;
    go.disabled = false;
  }
  input.addEventListener("change", showChosen);
  ["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.remove("over"); }));
  drop.addEventListener("drop", (e) => {
    if (e.dataTransfer && e.dataTransfer.files.length) {
      input.files = e.dataTransfer.files;
      showChosen();
    }
  });

  function follow(id) {
    fetch("/api/analyses/" + encodeURIComponent(id), { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then((r) => r.json().then((body) => ({ ok: r.ok, body })))
      .then(({ ok, body }) => {
        if (!ok) return fail(body.detail || "the analysis disappeared");
        if (body.status === "done") { window.location.assign("/analyses/" + encodeURIComponent(id)); return; }
        if (body.status === "failed") return fail("The analysis failed: " + (body.error || "no reason given"));
        bar.removeAttribute("value");
        let text = body.status === "queued" ? "Waiting for a worker…" : "Analyzing…";
        if (body.progress) text = "Analyzing: " + body.progress.inputs_read + " input(s) read, now " + body.progress.current;
        phase.textContent = shown(text);
        setTimeout(() => follow(id), 700);
      })
      .catch(() => setTimeout(() => follow(id), 1500));
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (!input.files.length) return fail("Choose at least one file.");
    error.hidden = true;
    go.disabled = true;
    box.hidden = false;
    bar.value = 0;
    phase.textContent = "Uploading…";
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/analyses");
    xhr.responseType = "json";
    xhr.upload.addEventListener("progress", (ev) => {
      if (ev.lengthComputable) {
        bar.value = Math.round((100 * ev.loaded) / ev.total);
        phase.textContent = "Uploading… " + bar.value + " %";
      }
    });
    xhr.addEventListener("load", () => {
      const body = xhr.response || {};
      if (xhr.status === 202 && body.id) {
        phase.textContent = "Queued…";
        follow(body.id);
      } else {
        fail((body && body.detail) || "The upload failed (HTTP " + xhr.status + ").");
      }
    });
    xhr.addEventListener("error", () => fail("The upload failed: the server could not be reached."));
    xhr.send(new FormData(form));
  });
})();
