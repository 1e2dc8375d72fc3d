// wheelwright: progressive enhancement only. Every page works without this
// script; with it, uploads report errors in place, logs stream live with
// foldable steps, times show in the reader's locale, and tokens are remembered.
"use strict";

const TOKEN_KEY = "wheelwright-token";

function localTimes() {
  for (const el of document.querySelectorAll("time[datetime]")) {
    const when = new Date(el.getAttribute("datetime"));
    if (!isNaN(when)) el.textContent = when.toLocaleString();
  }
}

function rememberTokens() {
  const saved = localStorage.getItem(TOKEN_KEY) || "";
  for (const input of document.querySelectorAll("input#token")) {
    if (!input.value) input.value = saved;
    input.addEventListener("change", () => localStorage.setItem(TOKEN_KEY, input.value));
  }
  for (const form of document.querySelectorAll("form")) {
    form.addEventListener("submit", () => {
      const token = document.querySelector("input#token");
      for (const copy of form.querySelectorAll(".token-copy")) copy.value = token ? token.value : saved;
    });
  }
}

function copyButtons() {
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.addEventListener("click", async () => {
      const input = document.getElementById(button.dataset.copy);
      input.select();
      try { await navigator.clipboard.writeText(input.value); } catch (_) { document.execCommand("copy"); }
      button.textContent = "Copied";
      setTimeout(() => { button.textContent = "Copy"; }, 1500);
    });
  }
}

// Files picked one by one have no folders: tests go to tests/.
function pickedPath(file) {
  return /^test_.*\.py$/.test(file.name) ? "tests/" + file.name : file.name;
}

// A picked folder's files are "folder/…": drop the folder.
function folderPath(file) {
  const parts = (file.webkitRelativePath || file.name).split("/");
  return parts.length > 1 ? parts.slice(1).join("/") : parts[0];
}

function uploadForm() {
  const form = document.getElementById("upload");
  if (!form) return;
  const error = document.getElementById("form-error");
  const progress = document.getElementById("progress");
  const show = (message) => { error.textContent = message; error.hidden = false; error.focus && error.focus(); };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const files = [...document.getElementById("files").files];
    const folder = [...document.getElementById("folder").files];
    const archive = document.getElementById("archive").files[0];
    const chosen = (files.length ? 1 : 0) + (folder.length ? 1 : 0) + (archive ? 1 : 0);
    if (chosen === 0) return show("Choose files, a folder or an archive to build.");
    if (chosen > 1) return show("Choose only one of: files, a folder, an archive.");
    const entries = files.length ? files.map((f) => [pickedPath(f), f]) : folder.map((f) => [folderPath(f), f]);
    if (!archive && !entries.some(([path]) => /\.n?asm$/i.test(path))) {
      return show("There is no .asm file: a project needs at least one assembly source.");
    }
    const size = archive ? archive.size : entries.reduce((n, [, f]) => n + f.size, 0);
    const max = Number(form.dataset.maxUpload);
    if (size > max) return show(`The upload is ${size} bytes; this server accepts at most ${max}.`);

    const data = new FormData();
    if (archive) data.append("archive", archive, archive.name);
    for (const [path, file] of entries) data.append("files", file, path);
    const targets = [...form.querySelectorAll("input[name=targets]:checked")].map((c) => c.value);
    if (targets.length === 0) return show("Choose at least one target.");
    data.append("targets", targets.join(","));
    if (form.querySelector("input[name=debug]").checked) data.append("debug", "true");
    for (const name of ["name", "version"]) {
      const value = form.querySelector(`input[name=${name}]`).value.trim();
      if (value) data.append(name, value);
    }
    // The token travels in the header, ahead of the body: the API checks it
    // before it reads a byte of the upload.
    const headers = {};
    const token = document.getElementById("token");
    if (token && token.value) {
      headers.Authorization = "Bearer " + token.value;
      localStorage.setItem(TOKEN_KEY, token.value);
    }
    progress.textContent = "Uploading…";
    document.getElementById("submit").disabled = true;
    try {
      const response = await fetch("/api/v1/builds", { method: "POST", body: data, headers });
      const body = await response.json().catch(() => null);
      if (response.ok && body) {
        window.location.href = "/builds/" + body.id;
        return;
      }
      show(body && body.error ? body.error.message : `The server answered ${response.status}.`);
    } catch (e) {
      show("The upload failed: " + e);
    } finally {
      progress.textContent = "";
      document.getElementById("submit").disabled = false;
    }
  });
}

// Groups log lines under their step headers: "[target] ==> step" opens a
// group, "[target] <== step status (ms)" closes it.
function LogView(container) {
  const open = new Map();
  let loose = null;
  const append = (pre, line) => { pre.textContent += line + "\n"; };
  this.line = (line) => {
    const m = line.match(/^\[([^\]]+)\] (==>|<==) (\S+)(.*)$/);
    const target = (line.match(/^\[([^\]]+)\] /) || [])[1];
    if (m && m[2] === "==>") {
      const details = document.createElement("details");
      details.open = true;
      const summary = document.createElement("summary");
      summary.textContent = `${m[1]} · ${m[3]}`;
      const pre = document.createElement("pre");
      details.append(summary, pre);
      container.append(details);
      open.set(m[1], { details, summary, pre });
      loose = null;
      return;
    }
    if (m && m[2] === "<==" && open.has(m[1])) {
      const group = open.get(m[1]);
      const status = (m[4].trim().split(" ")[0]) || "";
      group.summary.textContent = `${m[1]} · ${m[3]} ${m[4].trim()}`;
      group.summary.className = status;
      if (status === "succeeded") group.details.open = false;
      return;
    }
    if (target && open.has(target)) return append(open.get(target).pre, line);
    if (!loose) { loose = document.createElement("pre"); loose.className = "log"; container.append(loose); }
    append(loose, line);
  };
}

function buildPage() {
  const build = document.getElementById("build");
  if (!build) return;
  const raw = document.getElementById("log");
  const view = new LogView(document.getElementById("log-view"));
  raw.hidden = true;
  if (build.dataset.final === "true") {
    for (const line of raw.textContent.split("\n")) if (line) view.line(line);
    return;
  }
  if (!window.EventSource) { setTimeout(() => location.reload(), 3000); return; }
  const source = new EventSource(`/api/v1/builds/${build.dataset.id}/log`);
  source.addEventListener("log", (event) => view.line(event.data));
  source.addEventListener("end", (event) => {
    source.close();
    const status = document.getElementById("status");
    status.textContent = event.data;
    status.className = "badge " + event.data;
    const live = document.getElementById("live");
    if (live) live.textContent = "(finished)";
    setTimeout(() => location.reload(), 400);
  });
  source.onerror = () => { source.close(); setTimeout(() => location.reload(), 3000); };
}

document.addEventListener("DOMContentLoaded", () => {
  localTimes();
  rememberTokens();
  copyButtons();
  uploadForm();
  buildPage();
});
