/* ragtune support widget. One tag on any page:
 *   <script src="https://HOST/widget.js" data-key="WIDGET_KEY" defer></script>
 * adds a chat launcher and panel inside a shadow DOM (host CSS cannot reach in, ours cannot leak
 * out). Answers stream from POST /v1/chat (server-sent events read with fetch, since EventSource
 * cannot POST) to the API origin of this script's own src. Every text that comes from the server
 * or the page is set with textContent, never parsed as HTML.
 * Options (data-*): key, title, lang, strings (JSON), contact (URL or e-mail), accent, accent-text,
 * position (right|left), api (API origin), open ("true": start open). */
(() => {
  "use strict";
  const me = document.currentScript || document.querySelector('script[src*="widget.js"]');
  if (!me || document.querySelector("ragtune-widget")) return;
  const opt = (name, fallback) => me.getAttribute("data-" + name) || fallback;
  const api = (opt("api") || new URL(me.src, location.href).origin).replace(/\/$/, "");
  const key = opt("key", "");

  const STRINGS = {
    en: {
      launcher: "Chat with us", title: "Support", close: "Close chat", newChat: "New conversation",
      greeting: "Hi! Ask me anything about our products and services.", input: "Your question", send: "Send",
      sources: "Sources", handoff: "I'll connect you with a person.", contact: "Contact our support team",
      retry: "Try again", network: "We could not reach the server. Check your connection and try again.",
      failed: "Something went wrong on our side. Please try again.", writing: "Writing an answer…", you: "You", bot: "Assistant",
      unavailable: "Sorry, the chat is not available here right now.",
      busy: "Many questions at once: please wait a moment and try again.",
      rejected: "Your question could not be sent. Please shorten it.",
      rate: "Was this answer helpful?", up: "Helpful", down: "Not helpful", thanks: "Thanks for your feedback.",
      rateFailed: "Your feedback could not be sent.",
    },
    de: {
      launcher: "Chat mit uns", title: "Support", close: "Chat schließen", newChat: "Neues Gespräch",
      greeting: "Hallo! Fragen Sie mich alles zu unseren Produkten und Diensten.", input: "Ihre Frage", send: "Senden",
      sources: "Quellen", handoff: "Ich verbinde Sie mit einem Menschen.", contact: "Unser Support-Team kontaktieren",
      retry: "Erneut versuchen", network: "Der Server ist nicht erreichbar. Prüfen Sie Ihre Verbindung.",
      failed: "Etwas ist schiefgegangen. Bitte erneut versuchen.", writing: "Antwort wird geschrieben…", you: "Sie", bot: "Assistent",
      unavailable: "Der Chat ist hier gerade nicht verfügbar.",
      busy: "Viele Fragen gleichzeitig: bitte gleich erneut versuchen.",
      rejected: "Die Frage konnte nicht gesendet werden. Bitte kürzen.",
      rate: "War diese Antwort hilfreich?", up: "Hilfreich", down: "Nicht hilfreich", thanks: "Danke für Ihr Feedback.",
      rateFailed: "Ihr Feedback konnte nicht gesendet werden.",
    },
    fr: {
      launcher: "Discuter avec nous", title: "Assistance", close: "Fermer", newChat: "Nouvelle conversation",
      greeting: "Bonjour ! Posez-moi vos questions sur nos produits et services.", input: "Votre question", send: "Envoyer",
      sources: "Sources", handoff: "Je vous mets en relation avec une personne.", contact: "Contacter notre équipe",
      retry: "Réessayer", network: "Le serveur est injoignable. Vérifiez votre connexion.",
      failed: "Une erreur est survenue. Réessayez.", writing: "Rédaction de la réponse…", you: "Vous", bot: "Assistant",
      unavailable: "Le chat n'est pas disponible ici pour le moment.",
      busy: "Trop de questions à la fois : réessayez dans un instant.",
      rejected: "La question n'a pas pu être envoyée. Raccourcissez-la.",
      rate: "Cette réponse vous a-t-elle aidé ?", up: "Utile", down: "Pas utile", thanks: "Merci pour votre avis.",
      rateFailed: "Votre avis n'a pas pu être envoyé.",
    },
  };
  const lang = (opt("lang") || document.documentElement.lang || navigator.language || "en").slice(0, 2).toLowerCase();
  const S = Object.assign({}, STRINGS.en, STRINGS[lang] || {});
  try {
    const custom = JSON.parse(opt("strings", "{}"));
    for (const k in custom) if (k in S && typeof custom[k] === "string") S[k] = custom[k];
  } catch (e) {
    console.warn("ragtune widget: data-strings is not valid JSON", e);
  }
  if (opt("title")) S.title = opt("title");

  // Links only ever point to http(s) (and mailto/tel for the contact): never javascript: or data:.
  const safeUrl = (value, schemes) => {
    try {
      const url = new URL(value, location.href);
      return schemes.includes(url.protocol) ? url.href : null;
    } catch (e) {
      return null;
    }
  };
  const rawContact = opt("contact", "");
  const contact = /^[^\s:@/]+@[^\s@/]+$/.test(rawContact)
    ? "mailto:" + rawContact
    : rawContact && safeUrl(rawContact, ["http:", "https:", "mailto:", "tel:"]);

  // Text colour for a custom accent: black or white, whichever reads better (#rgb / #rrggbb).
  const readableOn = (hex) => {
    const m = /^#?([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(hex || "");
    if (!m) return null;
    const h = m[1].length === 3 ? m[1].replace(/./g, "$&$&") : m[1];
    const lin = (i) => {
      const c = parseInt(h.slice(i, i + 2), 16) / 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    };
    const lum = 0.2126 * lin(0) + 0.7152 * lin(2) + 0.0722 * lin(4);
    return (lum + 0.05) / 0.05 > 1.05 / (lum + 0.05) ? "#000" : "#fff";
  };

  const CSS = `
:host{all:initial!important;display:block!important;position:fixed!important;z-index:2147483000!important;
 bottom:0!important;right:0!important;width:0!important;height:0!important;visibility:visible!important;opacity:1!important;
 transform:none!important;filter:none!important;pointer-events:auto!important}
*{box-sizing:border-box;font:inherit;margin:0}
.w{--a:var(--rt-accent,#1d4ed8);--at:var(--rt-accent-text,#fff);font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2933;letter-spacing:normal;text-align:left}
button,textarea{font:inherit;color:inherit}
:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}
.launch{position:fixed;bottom:20px;right:20px;border:0;border-radius:24px;padding:12px 20px;background:var(--a);color:var(--at);
 font-weight:600;cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.25)}
.panel{position:fixed;bottom:20px;right:20px;width:min(380px,calc(100vw - 24px));height:min(580px,calc(100vh - 40px));
 display:flex;flex-direction:column;background:#fff;border-radius:12px;box-shadow:0 8px 32px rgba(0,0,0,.3);overflow:hidden;
 animation:rt-in .18s ease-out}
.left .launch,.left .panel{right:auto;left:20px}
[hidden]{display:none!important}
@keyframes rt-in{from{opacity:0;transform:translateY(12px)}}
header{display:flex;align-items:center;gap:8px;padding:10px 12px;background:var(--a);color:var(--at)}
h2{flex:1;font-size:16px;font-weight:700}
header button{background:transparent;border:1px solid currentColor;border-radius:6px;padding:3px 8px;cursor:pointer;color:var(--at);font-size:13px}
header .x{font-size:18px;line-height:1;border:0}
.log{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:10px;background:#f8fafc}
.m{max-width:88%;padding:8px 11px;border-radius:10px;white-space:pre-wrap;overflow-wrap:anywhere}
.u{align-self:flex-end;background:var(--a);color:var(--at)}
.b{align-self:flex-start;background:#fff;border:1px solid #cbd2d9}
.b[aria-busy=true] .t:empty::after{content:"…";animation:rt-dot 1s infinite}
@keyframes rt-dot{50%{opacity:.2}}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
.src{margin-top:8px;font-size:13px;color:#3e4c59}
.src h3{font-size:12px;font-weight:700;text-transform:uppercase;letter-spacing:.04em}
.src ul{padding-left:18px}
.src li{position:relative}
.src a{color:#1d4ed8}
.q{display:none;margin-top:2px;padding:4px 6px;background:#fffbea;border-left:3px solid #d69e2e;color:#1f2933;font-style:italic}
.src li:hover .q,.src li:focus-within .q{display:block}
.ho{margin-top:8px;padding:8px;border-radius:8px;background:#fff4e5;color:#5c3c00}
.ho a{color:#7a4100;font-weight:600}
.err{color:#a61b1b}
.err button,.fb button{margin-top:6px;border:1px solid #9aa5b1;background:#fff;border-radius:6px;padding:3px 10px;cursor:pointer}
.fb{display:flex;align-items:center;gap:6px;margin-top:6px;font-size:13px;color:#3e4c59}
.fb button{margin:0;padding:2px 8px}
.fb button[aria-pressed=true]{background:var(--a);color:var(--at);border-color:var(--a)}
form{display:flex;gap:8px;padding:10px;border-top:1px solid #e4e7eb;background:#fff}
textarea{flex:1;resize:none;border:1px solid #7b8794;border-radius:8px;padding:8px;min-height:40px;max-height:120px;background:#fff}
form button{border:0;border-radius:8px;padding:0 16px;background:var(--a);color:var(--at);font-weight:600;cursor:pointer}
form button:disabled{opacity:.6;cursor:default}
@media (max-width:480px){.panel{inset:0;width:auto;height:auto;border-radius:0}}
@media (prefers-reduced-motion:reduce){*{animation:none!important;transition:none!important}}`;

  // ---- DOM helpers: attributes via setAttribute, text via textContent, nothing else ----
  const el = (tag, attrs, text) => {
    const node = document.createElement(tag);
    for (const name in attrs || {}) node.setAttribute(name, attrs[name]);
    if (text != null) node.textContent = text;
    return node;
  };
  const add = (parent, ...kids) => (kids.forEach((k) => k && parent.appendChild(k)), parent);

  const host = document.createElement("ragtune-widget");
  const root = host.attachShadow({ mode: "open" });
  if (root.adoptedStyleSheets !== undefined && typeof CSSStyleSheet.prototype.replaceSync === "function") {
    const sheet = new CSSStyleSheet(); // constructed sheets work under a page CSP without 'unsafe-inline'
    sheet.replaceSync(CSS);
    root.adoptedStyleSheets = [sheet];
  } else {
    add(root, el("style", {}, CSS));
  }
  const wrap = el("div", { class: "w" + (opt("position") === "left" ? " left" : "") });
  if (opt("accent")) {
    wrap.style.setProperty("--rt-accent", opt("accent"));
    wrap.style.setProperty("--rt-accent-text", opt("accent-text") || readableOn(opt("accent")) || "#fff");
  } else if (opt("accent-text")) wrap.style.setProperty("--rt-accent-text", opt("accent-text"));

  const launch = el("button", { class: "launch", type: "button", "aria-haspopup": "dialog", "aria-expanded": "false", "aria-controls": "rt-panel" }, S.launcher);
  const panel = el("section", { class: "panel", id: "rt-panel", role: "dialog", "aria-modal": "false", "aria-labelledby": "rt-title", hidden: "" });
  const newBtn = el("button", { type: "button", class: "new" }, S.newChat);
  const closeBtn = el("button", { type: "button", class: "x", "aria-label": S.close, title: S.close }, "×");
  const log = el("div", { class: "log", role: "log", "aria-live": "polite", "aria-relevant": "additions text", "aria-label": S.title, tabindex: "0" });
  const form = el("form", { class: "ask" });
  const input = el("textarea", { id: "rt-input", rows: "2", maxlength: "4000", placeholder: S.input, "aria-label": S.input });
  const sendBtn = el("button", { type: "submit" }, S.send);
  add(panel, add(el("header"), el("h2", { id: "rt-title" }, S.title), newBtn, closeBtn), log, add(form, input, sendBtn));
  add(root, add(wrap, launch, panel));

  // ---- state kept across page loads: the session id and the transcript ----
  const STORE = "ragtune.widget:" + api;
  const newId = () => Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
  let state = { sid: newId(), msgs: [], open: false };
  try {
    const saved = JSON.parse(localStorage.getItem(STORE) || "null");
    if (saved && typeof saved.sid === "string" && Array.isArray(saved.msgs)) state = saved;
  } catch (e) {
    /* storage disabled or corrupt: start fresh */
  }
  const save = () => {
    state.msgs = state.msgs.slice(-40);
    try {
      localStorage.setItem(STORE, JSON.stringify(state));
    } catch (e) {
      /* private mode, quota: the conversation just does not survive a reload */
    }
  };

  // ---- rendering ----
  const scroll = () => (log.scrollTop = log.scrollHeight);
  const userBubble = (text) => add(log, add(el("div", { class: "m u" }), el("span", { class: "sr" }, S.you + ": "), el("span", { class: "t" }, text)));
  const botBubble = (text) => {
    const node = add(el("div", { class: "m b" }), el("span", { class: "sr" }, S.bot + ": "), el("span", { class: "t" }, text));
    log.appendChild(node);
    return node;
  };

  const renderSources = (node, sources) => {
    if (!sources || !sources.length) return;
    const list = el("ul");
    sources.forEach((s, i) => {
      const label = s.section && s.section !== s.title ? s.title + " — " + s.section : s.title;
      const href = s.url && safeUrl(s.url, ["http:", "https:"]);
      const qid = "q" + Math.random().toString(36).slice(2) + i;
      const item = href
        ? el("a", { href, target: "_blank", rel: "noopener noreferrer" }, label)
        : el("span", { tabindex: "0", class: "st" }, label);
      if (s.quote) item.setAttribute("aria-describedby", qid);
      add(list, add(el("li"), item, s.quote && el("span", { class: "q", id: qid, role: "tooltip" }, "“" + s.quote + "”")));
    });
    add(node, add(el("div", { class: "src" }), el("h3", {}, S.sources), list));
  };

  const renderFeedback = (node, msg) => {
    if (typeof msg.turn !== "number") return; // answers carry their turn in the session
    const note = el("span", { role: "status" });
    const box = el("div", { class: "fb", role: "group", "aria-label": S.rate });
    const buttons = ["up", "down"].map((rating) => {
      const b = el("button", { type: "button", "aria-pressed": String(msg.fb === rating), "aria-label": S[rating], title: S[rating], "data-rating": rating }, rating === "up" ? "▲ " + S.up : "▼ " + S.down);
      b.addEventListener("click", async () => {
        buttons.forEach((x) => x.setAttribute("aria-pressed", String(x === b)));
        try {
          const res = await fetch(api + "/v1/feedback", { method: "POST", headers: headers(), body: JSON.stringify({ session_id: state.sid, turn: msg.turn, rating }) });
          if (!res.ok) throw new Error(String(res.status));
          msg.fb = rating;
          save();
          note.textContent = S.thanks;
        } catch (e) {
          buttons.forEach((x) => x.setAttribute("aria-pressed", String(msg.fb === x.dataset.rating)));
          note.textContent = S.rateFailed;
        }
      });
      return b;
    });
    add(node, add(box, el("span", { class: "sr" }, S.rate), ...buttons, note));
  };

  const renderHandoff = (node) => {
    const box = add(el("div", { class: "ho", role: "note" }), el("strong", {}, S.handoff));
    if (contact) add(box, document.createTextNode(" "), el("a", { href: contact, target: "_blank", rel: "noopener noreferrer" }, S.contact));
    node.appendChild(box);
  };

  const renderAnswer = (node, msg) => {
    node.querySelector(".t").textContent = msg.t;
    if (msg.handoff) renderHandoff(node);
    renderSources(node, msg.sources);
    renderFeedback(node, msg);
  };

  const showGreeting = () => add(log, add(el("div", { class: "m b greet" }), el("span", { class: "t" }, S.greeting)));
  const renderAll = () => {
    log.textContent = "";
    showGreeting();
    for (const msg of state.msgs) msg.r === "u" ? userBubble(msg.t) : renderAnswer(botBubble(""), msg);
    scroll();
  };

  // ---- talking to the API ----
  const headers = () => {
    const h = { "Content-Type": "application/json" };
    if (key) h.Authorization = "Bearer " + key;
    return h;
  };
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  async function readEvents(body, onEvent) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let event = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) event = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        if (data.length) onEvent(event, JSON.parse(data.join("\n")));
      }
    }
  }

  let busy = false;
  const setBusy = (on) => {
    busy = on;
    sendBtn.disabled = on;
    log.setAttribute("aria-busy", String(on));
  };

  const fail = (node, text, question, canRetry = true) => {
    node.classList.add("err");
    node.querySelector(".t").textContent = text;
    if (!canRetry) {
      if (contact) add(node, el("br"), el("a", { href: contact, target: "_blank", rel: "noopener noreferrer" }, S.contact));
      return;
    }
    const retry = el("button", { type: "button", class: "retry" }, S.retry);
    retry.addEventListener("click", () => {
      node.remove();
      ask(question, true);
      input.focus();
    });
    add(node, el("br"), retry);
  };

  // An API error: a friendly line in the bubble, the reason (a missing key, say) in the console.
  const refused = (node, question, status, body) => {
    const kind = (body && body.error) || "HTTP " + status;
    const detail = (body && body.detail) || "";
    console.error("ragtune widget: " + api + "/v1/chat answered " + status + " " + kind + (detail ? ": " + detail : ""));
    if (status === 401 || status === 403) return fail(node, S.unavailable, question, false);
    if (status === 429) return fail(node, S.busy, question);
    if (status >= 400 && status < 500) return fail(node, S.rejected, question);
    return fail(node, S.failed, question);
  };

  async function ask(question, isRetry) {
    if (busy) return;
    setBusy(true);
    if (!isRetry) {
      state.msgs.push({ r: "u", t: question });
      save();
      userBubble(question);
    }
    const node = botBubble("");
    node.setAttribute("aria-busy", "true");
    const text = node.querySelector(".t");
    scroll();
    try {
      let res;
      for (let attempt = 0; ; attempt++) {
        try {
          res = await fetch(api + "/v1/chat", { method: "POST", headers: headers(), body: JSON.stringify({ message: question, session_id: state.sid, stream: true }) });
          break;
        } catch (e) {
          if (attempt >= 2) return fail(node, S.network, question); // no response at all: retried twice
          await sleep(700 * 2 ** attempt);
        }
      }
      if (!res.ok) {
        let body = null;
        try {
          body = await res.json();
        } catch (e) {
          /* not our JSON error body (a proxy's page, say) */
        }
        return refused(node, question, res.status, body);
      }
      let answered = false;
      try {
        await readEvents(res.body, (event, data) => {
          if (event === "delta") {
            text.textContent += data.text;
            scroll();
          } else if (event === "answer") {
            answered = true;
            node.setAttribute("aria-busy", "false");
            if (typeof data.session_id === "string") state.sid = data.session_id;
            const quotes = {};
            (data.citations || []).forEach((c) => (quotes[c.id] = c.quote));
            const msg = {
              r: "b",
              t: data.answer,
              handoff: !!data.handoff,
              turn: data.turn,
              sources: (data.sources || []).filter((s) => s.cited).map((s) => ({ title: s.title, section: s.section, url: s.url, quote: quotes[s.id] })),
            };
            state.msgs.push(msg);
            save();
            renderAnswer(node, msg);
          } else if (event === "error") {
            answered = true;
            refused(node, question, data.status || 500, data);
          }
        });
      } catch (e) {
        if (!answered) return fail(node, S.network, question); // the stream broke off
      }
      if (!answered) fail(node, S.network, question);
    } finally {
      node.setAttribute("aria-busy", "false");
      setBusy(false);
      scroll();
    }
  }

  // ---- behaviour ----
  const setOpen = (open, focus) => {
    panel.hidden = !open;
    launch.hidden = open;
    launch.setAttribute("aria-expanded", String(open));
    state.open = open;
    save();
    if (open) {
      scroll();
      if (focus) input.focus();
    } else if (focus) launch.focus();
  };
  launch.addEventListener("click", () => setOpen(true, true));
  closeBtn.addEventListener("click", () => setOpen(false, true));
  panel.addEventListener("keydown", (e) => {
    if (e.key === "Escape") setOpen(false, true);
  });
  newBtn.addEventListener("click", () => {
    state = { sid: newId(), msgs: [], open: true };
    save();
    renderAll();
    input.focus();
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const question = input.value.trim();
    if (!question || busy) return;
    input.value = "";
    ask(question, false);
  });

  const mount = () => {
    document.body.appendChild(host);
    renderAll();
    setOpen(state.open || opt("open") === "true", false);
  };
  document.body ? mount() : document.addEventListener("DOMContentLoaded", mount);
})();
