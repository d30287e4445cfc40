/* ragtune admin console: one static page over the admin API (/v1/admin/...).
 * The admin types the key once; it stays in this tab's sessionStorage and is sent as a Bearer
 * token. Every text from the server is set with textContent; no HTML is built from data. */
(() => {
  "use strict";
  const KEY = "ragtune.adminKey";
  const POLL_MS = 500;
  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs, text) => {
    const node = document.createElement(tag);
    for (const name in attrs || {}) node.setAttribute(name, attrs[name]);
    if (text != null) node.textContent = text;
    return node;
  };
  const add = (parent, ...kids) => (kids.forEach((k) => k != null && parent.append(k)), parent);
  const when = (t) => {
    if (t == null || t === "") return "";
    const date = typeof t === "number" ? new Date(t * 1000) : new Date(t);
    return isNaN(date) ? String(t) : date.toLocaleString();
  };
  const size = (n) => (n == null ? "" : n < 1024 ? n + " B" : n < 1048576 ? (n / 1024).toFixed(1) + " KB" : (n / 1048576).toFixed(1) + " MB");
  const badge = (text) => el("span", { class: "badge " + text }, text);
  const cell = (content, cls) => {
    const td = el("td", cls ? { class: cls } : {});
    content instanceof Node ? td.append(content) : (td.textContent = content == null ? "" : String(content));
    return td;
  };

  // ---- messages ----
  const say = (text, ok) => {
    const box = $("alert");
    box.textContent = text;
    box.className = ok ? "alert ok" : "alert";
    box.hidden = !text;
  };

  // ---- the API ----
  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.detail) || "HTTP " + status);
      this.status = status;
      this.body = body || {};
    }
  }
  async function api(path, options) {
    const opts = Object.assign({ headers: {} }, options || {});
    opts.headers = Object.assign({ Authorization: "Bearer " + sessionStorage.getItem(KEY) }, opts.headers);
    if (opts.json !== undefined) {
      opts.body = JSON.stringify(opts.json);
      opts.headers["Content-Type"] = "application/json";
    }
    const res = await fetch("/v1/admin" + path, opts);
    let body = null;
    try {
      body = await res.json();
    } catch (e) {
      /* an empty or non-JSON body */
    }
    if (res.status === 401 || res.status === 403) {
      signOut((body && body.detail) || "The admin key was not accepted.");
      throw new ApiError(res.status, body);
    }
    if (!res.ok) throw new ApiError(res.status, body);
    return body;
  }
  const guard = (fn) => async (...args) => {
    try {
      await fn(...args);
    } catch (e) {
      if (!(e instanceof ApiError && (e.status === 401 || e.status === 403))) say(e.message);
    }
  };

  // ---- sign in / out ----
  function signOut(reason) {
    sessionStorage.removeItem(KEY);
    $("console").hidden = true;
    $("signout").hidden = true;
    $("signin").hidden = false;
    $("serving").textContent = "";
    say(reason || "");
    $("key").focus();
  }
  async function signIn(key) {
    sessionStorage.setItem(KEY, key);
    await api("/stats"); // checks the key
    $("signin").hidden = true;
    $("console").hidden = false;
    $("signout").hidden = false;
    say("");
    await refresh();
    $("documents-title").focus();
  }

  // ---- sections ----
  async function loadStats() {
    const s = await api("/stats");
    const list = $("stats");
    list.textContent = "";
    const rows = [
      ["Serving version", s.index_version || "none"],
      ["Documents", s.documents],
      ["Chunks", s.chunks],
      ["Files in folder", s.folder_files],
      ["Versions kept", s.versions_kept],
      ["Flagged documents", s.flagged_documents || 0],
      ["Last ingest", s.last_ingest ? when(s.last_ingest.finished_at || s.last_ingest.at) || "yes" : "never"],
    ];
    for (const [name, value] of rows) add(list, add(el("div"), el("dt", {}, name), el("dd", {}, value == null ? "" : String(value))));
    $("serving").textContent = s.index_version ? "index " + s.index_version : "no index yet";
    if (s.running_job && !following) follow({ job_id: s.running_job, kind: "ingest", status: "running", progress: { done: 0, total: 0 }, detail: "" });
  }

  async function loadDocuments() {
    const { documents } = await api("/documents");
    const body = $("documents").tBodies[0];
    body.textContent = "";
    for (const d of documents) {
      const remove = el("button", { type: "button", class: "danger", "aria-label": "Delete " + d.doc_id }, "Delete");
      remove.addEventListener("click", guard(async () => {
        if (!remove.dataset.armed) {
          remove.dataset.armed = "1"; // two steps: the first click asks, the second deletes
          remove.textContent = "Confirm delete";
          return;
        }
        remove.disabled = true;
        await startJob(() => api("/documents/" + d.doc_id.split("/").map(encodeURIComponent).join("/"), { method: "DELETE" }));
      }));
      const status = add(el("span"), badge(d.status), d.reason ? el("span", { class: "muted" }, " " + d.reason) : null);
      add(body, add(el("tr", { "data-doc": d.doc_id }), cell(d.doc_id), cell(d.title || ""), cell(status), cell(d.chunks, "num"), cell(size(d.size), "num"), cell(remove)));
    }
    if (!documents.length) add(body, add(el("tr"), add(el("td", { colspan: "6", class: "muted" }, "No documents yet: drop some files above."))));
  }

  async function loadVersions() {
    const { versions } = await api("/versions");
    const body = $("versions").tBodies[0];
    body.textContent = "";
    const current = versions.findIndex((v) => v.current);
    versions.forEach((v, i) => {
      let action = badge("current");
      if (!v.current) {
        action = el("button", { type: "button", class: "quiet" }, current >= 0 && i > current ? "Roll back to this" : "Activate");
        action.addEventListener("click", guard(async () => {
          action.disabled = true;
          await api("/versions/" + encodeURIComponent(v.version) + "/activate", { method: "POST" });
          say("Now serving index version " + v.version + ".", true);
          await refresh();
        }));
      }
      add(body, add(el("tr", { "data-version": v.version }), cell(v.version), cell(when(v.created_at)), cell(v.documents, "num"), cell(v.chunks, "num"), cell(action)));
    });
  }

  async function loadModels() {
    let m;
    try {
      m = await api("/models");
    } catch (e) {
      if (e instanceof ApiError && e.status !== 401 && e.status !== 403) {
        $("model-summary").textContent = "Models: " + e.message;
        return;
      }
      throw e;
    }
    $("model-summary").textContent = "Serving: " + (m.serving || "none") + (m.engine ? " (" + m.engine + ")" : "") + (m.current ? ", registry: " + m.current : ", registry: default model");
    const body = $("models").tBodies[0];
    body.textContent = "";
    for (const v of m.versions || []) {
      let action = badge("current");
      if (!v.current) {
        action = el("button", { type: "button", class: "quiet" }, "Deploy");
        if (!v.available) action.disabled = true;
        action.addEventListener("click", guard(() => deploy(v.version, false, action)));
      }
      add(body, add(el("tr", { "data-model": v.version }), cell(v.version), cell(v.base_model), cell(when(v.created_at)), cell(v.quality_score == null ? "–" : v.quality_score.toFixed(3), "num"), cell(action)));
    }
    if (!(m.versions || []).length) add(body, add(el("tr"), el("td", { colspan: "5", class: "muted" }, "No trained model versions; the configured default model answers.")));
  }

  async function deploy(version, force, button) {
    button.disabled = true;
    try {
      const r = await api("/models/" + encodeURIComponent(version) + "/deploy", { method: "POST", json: { force } });
      say(r.detail || "Deployed " + r.deployed + ".", true);
      await loadModels();
    } catch (e) {
      button.disabled = false;
      if (!(e instanceof ApiError) || e.status !== 409 || force) throw e;
      // The quality gate refused it: say why and offer to deploy anyway.
      say(e.message);
      const anyway = el("button", { type: "button", class: "danger" }, "Deploy anyway");
      anyway.addEventListener("click", guard(() => deploy(version, true, anyway)));
      button.replaceWith(anyway);
      anyway.focus();
    }
  }

  async function loadConversations() {
    const box = $("conversations");
    let data;
    try {
      data = await api("/conversations");
    } catch (e) {
      if (e instanceof ApiError && e.status !== 401 && e.status !== 403) {
        box.textContent = "Conversations: " + e.message;
        return;
      }
      throw e;
    }
    box.textContent = "";
    const conversations = data.conversations || [];
    for (const c of conversations) {
      const turns = c.turns || [];
      const rated = turns.filter((t) => t.feedback).length;
      const head = el("h3", {}, when(c.updated_at) + " · " + turns.length + " answer" + (turns.length === 1 ? "" : "s") + (rated ? " · " + rated + " rated" : ""));
      const list = el("ol");
      for (const t of turns) {
        const item = add(el("li", { "data-turn": String(t.turn) }), add(el("p"), el("span", { class: "role" }, "Customer: "), t.question), add(el("p"), el("span", { class: "role" }, "Answer: "), t.answer));
        if (t.feedback) add(item, add(el("p", { class: "muted" }), "Rated ", badge(t.feedback.rating), t.feedback.comment ? " “" + t.feedback.comment + "”" : ""));
        add(list, item);
      }
      add(box, add(el("article", { class: "conv", "data-session": c.session_id }), head, el("p", { class: "muted" }, "Session " + c.session_id), list));
    }
    if (!conversations.length) box.textContent = "No conversations yet.";
    else if (data.total > conversations.length) add(box, el("p", { class: "muted" }, conversations.length + " most recent of " + data.total + "."));
  }

  const refresh = guard(() => Promise.all([loadStats(), loadDocuments(), loadVersions(), loadModels(), loadConversations()]));

  // ---- jobs: start one, follow its progress until it ends ----
  let following = null;
  async function startJob(request) {
    let job;
    try {
      job = await request();
    } catch (e) {
      if (e instanceof ApiError && e.status === 409 && e.body.job_id) {
        say(e.message + " Following the running job.");
        job = await api("/jobs/" + encodeURIComponent(e.body.job_id));
      } else throw e;
    }
    await follow(job);
  }

  async function follow(job) {
    following = job.job_id;
    $("job").hidden = false;
    $("reingest").disabled = true;
    try {
      for (;;) {
        showJob(job);
        if (job.status === "succeeded" || job.status === "failed") break;
        await new Promise((r) => setTimeout(r, POLL_MS));
        job = await api("/jobs/" + encodeURIComponent(job.job_id));
      }
    } finally {
      following = null;
      $("reingest").disabled = false;
    }
    say(job.kind + " " + job.status + (job.detail ? ": " + job.detail : ""), job.status === "succeeded");
    await refresh();
  }

  function showJob(job) {
    const p = job.progress || {};
    const bar = $("job-progress");
    bar.max = Math.max(p.total || 0, 1);
    bar.value = job.status === "succeeded" ? bar.max : p.done || 0;
    const stage = p.stage ? " · " + p.stage + " " + (p.done || 0) + "/" + (p.total || 0) : "";
    $("job-text").textContent = job.kind + ": " + job.status + stage + (job.detail ? " · " + job.detail : "");
    $("job").dataset.status = job.status;
  }

  // ---- uploads: drag and drop, or choose files ----
  const upload = guard(async (files) => {
    if (!files.length) return;
    const form = new FormData();
    for (const f of files) form.append("files", f, f.name);
    say("Uploading " + files.length + " file" + (files.length > 1 ? "s" : "") + "…", true);
    await startJob(() => api("/documents", { method: "POST", body: form }));
  });

  function wire() {
    $("key-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const key = $("key").value.trim();
      $("key").value = "";
      signIn(key).catch((err) => {
        if (!(err instanceof ApiError && (err.status === 401 || err.status === 403))) signOut(err.message);
      });
    });
    $("signout").addEventListener("click", () => signOut(""));
    $("refresh").addEventListener("click", () => refresh());
    $("reingest").addEventListener("click", guard(() => startJob(() => api("/ingest", { method: "POST" }))));
    const drop = $("drop");
    const picker = $("files");
    drop.addEventListener("click", () => picker.click());
    drop.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") {
        e.preventDefault();
        picker.click();
      }
    });
    picker.addEventListener("change", () => {
      upload(Array.from(picker.files));
      picker.value = "";
    });
    drop.addEventListener("dragover", (e) => {
      e.preventDefault();
      drop.classList.add("over");
    });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (e) => {
      e.preventDefault();
      drop.classList.remove("over");
      upload(Array.from(e.dataTransfer.files));
    });
    $("documents-title").setAttribute("tabindex", "-1");
  }

  wire();
  if (sessionStorage.getItem(KEY)) signIn(sessionStorage.getItem(KEY)).catch((e) => signOut(e.message));
  else $("key").focus();
})();
