/* tunedesk chat widget. Embed with one tag:
 *   <script src="https://SUPPORT-HOST/widget.js" data-key="td_pk_..." async></script>
 * (optional: data-product="product-id"). A custom element in a Shadow DOM, no framework, no
 * build step. Everything the model or a document wrote is put in the page as text nodes:
 * nothing it says is ever parsed as HTML. Docs: docs/widget.md in the tunedesk repository. */
(() => {
  "use strict";
  const script =
    document.currentScript || document.querySelector('script[src*="widget.js"][data-key]');
  if (!script) return;
  const KEY = script.dataset.key || "";
  const PRODUCT = script.dataset.product || null;
  if (!script.src) return;
  const API = new URL(script.src, location.href).origin;
  const TAG = "tunedesk-chat";
  const SAVED = "tunedesk:" + KEY.slice(0, 20) + ":conversation";
  const OPEN = "tunedesk:open";
  const CANNED = new Set(["handoff", "out_of_scope", "low_confidence"]); // the brand's fixed texts
  const CUT_SHORT = new Set(["length", "error", "cancelled"]);
  const HEX = /^#(?:[0-9a-f]{3}|[0-9a-f]{6})$/i;
  const DISCLOSURE =
    "You are chatting with an AI assistant. It can make mistakes: check important details.";
  const complain = (...parts) => console.error("[tunedesk widget]", ...parts);
  let uid = 0;

  // ---- DOM, built from nodes: strings always become text nodes ----------------------------
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value == null || value === false) continue;
      if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
      else if (name === "class") el.className = value;
      else el.setAttribute(name, value === true ? "" : String(value));
    }
    el.append(...children.flat().filter((c) => c != null));
    return el;
  }
  function icon(path) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    const p = document.createElementNS(ns, "path");
    p.setAttribute("d", path);
    svg.append(p);
    return svg;
  }
  const CHAT_ICON = "M4 4h16v12H8l-4 4z";
  const CLOSE_ICON = "M6 6l12 12M18 6L6 18";
  const UP_ICON = "M7 10v10H4V10zm2 10V10l4-7c1.5 0 2.5 1 2 3l-1 4h6l-2 10z";
  const DOWN_ICON = "M7 14V4H4v10zm2-10v10l4 7c1.5 0 2.5-1 2-3l-1-4h6L18 4z";

  // ---- Markdown subset: paragraphs, lists, headings, code, **bold**, *em*, `code`, [n] -------
  const INLINE =
    /(\*\*[^*\n]+\*\*|`[^`\n]+`|\[\d+(?:\s*,\s*\d+)*\]|https?:\/\/[^\s<>()"']*[^\s<>()"'.,;:!?]|\*[^*\s][^*\n]*\*)/g;
  function inline(text, cite) {
    const out = [];
    let last = 0;
    for (const m of text.matchAll(INLINE)) {
      const t = m[0];
      out.push(text.slice(last, m.index));
      last = m.index + t.length;
      if (t.startsWith("**")) out.push(h("strong", null, t.slice(2, -2)));
      else if (t.startsWith("`")) out.push(h("code", null, t.slice(1, -1)));
      else if (t.startsWith("*")) out.push(h("em", null, t.slice(1, -1)));
      else if (t.startsWith("[")) {
        for (const n of t.slice(1, -1).split(",")) out.push(cite(Number(n)) || `[${n.trim()}]`);
      } else out.push(h("a", { href: t, target: "_blank", rel: "noopener noreferrer nofollow" }, t));
    }
    out.push(text.slice(last));
    return out.filter((part) => part !== "");
  }
  function markdown(text, cite) {
    const root = document.createDocumentFragment();
    let para = [];
    let list = null;
    let code = null;
    const flush = () => {
      if (para.length) root.append(h("p", null, inline(para.join(" "), cite)));
      para = [];
      list = null;
    };
    const closeCode = () => {
      root.append(h("pre", null, h("code", null, code.join("\n"))));
      code = null;
    };
    for (const line of text.replace(/\r\n?/g, "\n").split("\n")) {
      const item = line.match(/^\s*(?:([-*•])|(\d+)[.)])\s+(.*)$/);
      const heading = line.match(/^#{1,6}\s+(.*)$/);
      if (code !== null) {
        if (line.startsWith("```")) closeCode();
        else code.push(line);
      } else if (line.startsWith("```")) {
        flush();
        code = [];
      } else if (item) {
        const tag = item[1] ? "ul" : "ol";
        if (!list || list.localName !== tag) {
          flush();
          root.append((list = h(tag, { start: item[2] })));
        }
        list.append(h("li", null, inline(item[3], cite)));
      } else if (heading) {
        flush();
        root.append(h("p", null, h("strong", null, inline(heading[1], cite))));
      } else if (list && /^\s{2,}\S/.test(line)) {
        list.lastChild.append(" ", ...inline(line.trim(), cite));
      } else if (!line.trim()) {
        flush();
      } else {
        list = null;
        para.push(line.trim());
      }
    }
    if (code !== null) closeCode();
    flush();
    return root;
  }

  // ---- API ---------------------------------------------------------------------------------
  function api(path, init = {}) {
    const headers = Object.assign({ Authorization: "Bearer " + KEY }, init.headers);
    return fetch(API + path, Object.assign({}, init, { headers }));
  }
  async function errorText(response) {
    const body = await response.json().catch(() => null);
    return (body && body.error && body.error.message) || `${response.status} ${response.statusText}`;
  }
  const sleep = (ms) => new Promise((done) => setTimeout(done, ms));
  async function* sse(response) {
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n/g, "\n");
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const raw = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const event = (raw.match(/^event: ?(.*)$/m) || [])[1] || "message";
        const data = raw.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).replace(/^ /, ""));
        if (data.length) yield { event, data: JSON.parse(data.join("\n")) };
      }
    }
  }
  async function loadConfig() {
    if (!KEY.startsWith("td_pk_")) {
      complain('no publishable key: add data-key="td_pk_..." to the widget\'s script tag. No chat is shown.');
      return null;
    }
    let response;
    try {
      response = await api("/v1/widget/config");
    } catch (err) {
      const reachable = await fetch(API + "/widget.js", { mode: "no-cors", cache: "no-store" }).then(() => true, () => false);
      complain(
        reachable
          ? `${API} does not allow this page's origin ${location.origin} (CORS): add it to the allowed_origins of the publishable key ${KEY.slice(0, 12)}…. No chat is shown.`
          : `cannot reach ${API} (${err}). No chat is shown.`,
      );
      return null;
    }
    if (!response.ok) {
      complain(`${API} refused the widget key: ${await errorText(response)} No chat is shown.`);
      return null;
    }
    return response.json();
  }

  const CSS = `
:host{all:initial;position:fixed;z-index:2147483000;bottom:20px;right:20px;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--text)}
:host(.left){right:auto;left:20px}
*{box-sizing:border-box}
button,textarea{font:inherit;color:inherit}
button{cursor:pointer}
:focus-visible{outline:3px solid var(--accent);outline-offset:2px}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
.launcher{width:60px;height:60px;border-radius:50%;border:0;background:var(--accent);color:var(--on-accent);box-shadow:0 6px 20px #0003;display:grid;place-items:center;margin-left:auto}
:host(.left) .launcher{margin-left:0}
svg{width:26px;height:26px;fill:none;stroke:currentColor;stroke-width:2;stroke-linejoin:round;stroke-linecap:round}
.panel{position:absolute;bottom:76px;right:0;width:380px;max-width:calc(100vw - 24px);height:min(620px,calc(100vh - 110px));display:flex;flex-direction:column;background:var(--bg);border-radius:16px;box-shadow:0 12px 40px #0004;overflow:hidden}
:host(.left) .panel{right:auto;left:0}
.panel[hidden]{display:none}
header{display:flex;align-items:center;gap:8px;padding:12px 12px 12px 16px;background:var(--accent);color:var(--on-accent)}
header h2{flex:1;min-width:0;margin:0;font-size:15.5px;font-weight:600;line-height:1.25}
header button{flex:none;background:transparent;border:1px solid currentColor;border-radius:999px;padding:4px 10px;font-size:13px;color:inherit}
header button[aria-disabled=true]{opacity:.6;cursor:default}
header .close{border:0;padding:4px;display:grid}
header .close svg{width:20px;height:20px}
.disclosure{margin:0;padding:6px 16px;font-size:12px;background:#f2f4f7;color:#344054;border-bottom:1px solid #e4e7ec}
.log{flex:1;overflow-y:auto;padding:14px;display:flex;flex-direction:column;gap:10px}
.msg{max-width:88%;padding:9px 12px;border-radius:14px;overflow-wrap:anywhere}
.msg p{margin:0 0 6px}.msg p:last-child{margin:0}
.msg ul,.msg ol{margin:4px 0;padding-left:20px}
.msg pre{white-space:pre-wrap;background:#0000000d;padding:6px;border-radius:6px;margin:4px 0}
.msg code{font:13px ui-monospace,monospace}
.user{align-self:flex-end;background:var(--accent);color:var(--on-accent);white-space:pre-wrap}
.bot,.agent{align-self:flex-start;background:#f2f4f7;color:#101828}
.agent{border-left:3px solid var(--accent)}
.who{display:block;font-size:12px;font-weight:600;margin-bottom:2px}
.cite{font-size:12px;font-weight:600;color:var(--accent);text-decoration:none;padding:0 1px}
.cite:hover{text-decoration:underline}
.msg .sources{margin:8px 0 0;padding:6px 0 0 0;border-top:1px solid #d0d5dd;font-size:12.5px;list-style:none}
.sources li{margin:3px 0;color:#475467}.sources li:not(.cited){opacity:.7}
.sources li:focus{outline:2px solid var(--accent);border-radius:4px}
.sources b{color:var(--accent)}
.sources .path{display:block;font-size:11.5px;color:#667085}
.notice{margin-top:6px;font-size:13px;color:#b42318}
.notice button,.rate button,.chips button,form.comment button{border:1px solid #d0d5dd;background:#fff;border-radius:999px;padding:3px 10px;font-size:13px;color:#101828}
.rate{display:flex;align-items:center;gap:6px;margin-top:6px;font-size:12.5px;color:#475467}
.rate button{display:grid;place-items:center;padding:3px 8px}
.rate svg{width:16px;height:16px}
.rate button[aria-pressed=true]{background:var(--accent);color:var(--on-accent);border-color:var(--accent)}
form.comment{display:flex;flex-wrap:wrap;justify-content:flex-end;gap:6px;margin-top:6px}
form.comment textarea{flex:1 1 100%;min-width:0;height:52px;border:1px solid #d0d5dd;border-radius:8px;padding:6px;resize:none;font-size:13px;background:#fff;color:#101828}
.handoff{align-self:stretch;margin:0;padding:8px 12px;border-radius:10px;background:#fef0c7;color:#4e3303;font-size:13.5px}
.chips{display:flex;flex-wrap:wrap;gap:6px}
.chips button{text-align:left;border-color:var(--accent);color:var(--accent)}
.typing{font-size:12px;color:#667085}
form.ask{display:flex;gap:8px;padding:10px;border-top:1px solid #e4e7ec;background:var(--bg)}
form.ask textarea{flex:1;min-width:0;resize:none;height:42px;max-height:120px;padding:9px 10px;border:1px solid #d0d5dd;border-radius:10px;background:#fff;color:#101828}
form.ask button{flex:none;border:0;border-radius:10px;padding:0 16px;background:var(--accent);color:var(--on-accent);font-weight:600}
form.ask button:disabled{opacity:.6;cursor:default}
@media (max-width:480px){:host{bottom:12px;right:12px}:host(.left){left:12px}
.panel{position:fixed;inset:0;width:100%;max-width:none;height:100%;border-radius:0}}
`;

  class TunedeskChat extends HTMLElement {
    connectedCallback() {
      if (this.shadowRoot) return;
      this.root = this.attachShadow({ mode: "open" });
      this.conversationId = localStorage.getItem(SAVED);
      this.busy = false;
      this.handedOff = false;
      loadConfig().then((config) => config && this.build(config));
    }

    build(config) {
      this.config = config;
      const s = (this.s = config.strings || {});
      const colours = config.colours || {};
      const colour = (value, fallback) => (HEX.test(value || "") ? value : fallback);
      this.style.setProperty("--accent", colour(colours.accent, "#2457d6"));
      this.style.setProperty("--on-accent", colour(colours.accent_text, "#ffffff"));
      this.style.setProperty("--bg", colour(colours.background, "#ffffff"));
      this.style.setProperty("--text", colour(colours.text, "#101828"));
      if (config.position === "bottom-left") this.classList.add("left");
      const id = (name) => `td-${name}-${++uid}`;
      const [panelId, titleId, noteId, inputId] = ["panel", "title", "note", "input"].map(id);
      const disclosure = (s.disclosure || "").trim().length >= 10 ? s.disclosure : DISCLOSURE;
      this.status = h("div", { class: "sr", role: "status", "aria-live": "polite" });
      // the log is not live: a streaming answer would be read out piece by piece; `status` announces it once
      this.log = h("div", { class: "log", role: "log", "aria-live": "off", "aria-label": config.title, tabindex: "0" });
      this.humanButton = h("button", { type: "button", class: "human", onclick: () => this.askForHuman() }, s.human);
      this.input = h("textarea", { id: inputId, rows: 1, maxlength: 4000, placeholder: s.placeholder, onkeydown: (e) => this.onKey(e) });
      this.sendButton = h("button", { type: "submit" }, s.send);
      this.panel = h(
        "section",
        { class: "panel", id: panelId, role: "dialog", "aria-labelledby": titleId, "aria-describedby": noteId, hidden: true, lang: config.language, onkeydown: (e) => e.key === "Escape" && this.toggle(false) },
        h("header", null, h("h2", { id: titleId }, config.title), this.humanButton,
          h("button", { type: "button", class: "close", "aria-label": s.close, onclick: () => this.toggle(false) }, icon(CLOSE_ICON))),
        h("p", { class: "disclosure", id: noteId }, disclosure),
        this.log,
        h("form", { class: "ask", onsubmit: (e) => (e.preventDefault(), this.submit()) },
          h("label", { class: "sr", for: inputId }, s.placeholder), this.input, this.sendButton),
      );
      this.launcher = h("button", { type: "button", class: "launcher", "aria-expanded": "false", "aria-controls": panelId, "aria-label": s.launcher, onclick: () => this.toggle() }, icon(CHAT_ICON));
      this.root.append(h("style", null, CSS), this.panel, this.launcher, this.status);
      this.loaded = this.restore();
      if (sessionStorage.getItem(OPEN) === "1") this.toggle(true);
      addEventListener("pagehide", () => this.flushRating(true));
    }

    toggle(open = this.panel.hidden) {
      this.panel.hidden = !open;
      this.launcher.setAttribute("aria-expanded", String(open));
      sessionStorage.setItem(OPEN, open ? "1" : "0");
      if (open) this.input.focus();
      else (this.flushRating(), this.launcher.focus());
    }

    onKey(event) {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) (event.preventDefault(), this.submit());
    }

    async restore() {
      if (this.conversationId) {
        const response = await api(`/v1/conversations/${encodeURIComponent(this.conversationId)}`).catch(() => null);
        if (response && response.ok) return this.showHistory(await response.json());
        if (response && response.status === 404) localStorage.removeItem(SAVED);
        if (!response || response.status !== 404) return complain("could not load the conversation's history");
        this.conversationId = null;
      }
      this.greet();
    }

    greet() {
      if (this.config.greeting) this.log.append(h("div", { class: "msg bot" }, this.config.greeting));
      const questions = this.config.suggested_questions || [];
      if (!questions.length) return;
      const chips = h("div", { class: "chips" }, questions.map((q) => h("button", { type: "button", onclick: () => (chips.remove(), this.submit(q)) }, q)));
      this.log.append(chips);
    }

    showHistory(conversation) {
      this.log.replaceChildren();
      if (!conversation.messages.length) this.greet();
      for (const m of conversation.messages) {
        if (m.role === "user") this.userBubble(m.content);
        else {
          const bubble = this.botBubble(m.role === "assistant" ? "bot" : "agent");
          this.finish(bubble, {
            message_id: m.id, answer: m.content, sources: m.sources, citations: m.citations, finish_reason: m.finish_reason,
            rateable: m.role === "assistant" && m.model != null && !CANNED.has(m.finish_reason), rated: m.ratings && m.ratings.length > 0,
          });
        }
      }
      if (conversation.status === "handoff") this.markHandedOff(false);
      this.scroll();
    }

    userBubble(text) {
      const bubble = h("div", { class: "msg user" }, h("span", { class: "sr" }, "You: "), text);
      this.log.append(bubble);
      this.scroll();
      return bubble;
    }

    botBubble(kind = "bot") {
      const who = kind === "agent" ? h("span", { class: "who" }, "Support team") : h("span", { class: "sr" }, `${this.config.title}: `);
      const bubble = h("div", { class: `msg ${kind}` }, who);
      bubble.body = h("div", { class: "body" });
      bubble.append(bubble.body);
      this.log.append(bubble);
      return bubble;
    }

    scroll() {
      this.log.scrollTop = this.log.scrollHeight;
    }

    // ---- sending, streaming, retrying ------------------------------------------------------
    async submit(text = this.input.value.trim()) {
      if (!text || this.busy) return;
      await this.loaded;
      this.flushRating();
      this.input.value = "";
      for (const chips of this.log.querySelectorAll(".chips")) chips.remove();
      const body = { message: text, conversation_id: this.conversationId, product: PRODUCT || this.config.product || null };
      const pending = { body: JSON.stringify(body), key: crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2) + Date.now() };
      this.userBubble(text);
      await this.deliver(pending, this.botBubble());
    }

    async deliver(pending, bubble) {
      this.setBusy(true);
      bubble.setAttribute("aria-busy", "true");
      bubble.body.replaceChildren(h("span", { class: "typing" }, this.s.answering));
      this.status.textContent = this.s.answering;
      try {
        const response = await this.post(pending);
        if (!response.ok) return this.refused(bubble, pending, response);
        await this.stream(bubble, pending, response);
      } catch (err) {
        this.dropped(bubble, pending, this.s.network_error);
      } finally {
        bubble.removeAttribute("aria-busy");
        this.setBusy(false);
        this.scroll();
      }
    }

    async post(pending) {
      const init = { method: "POST", body: pending.body, headers: { "Content-Type": "application/json", Accept: "text/event-stream", "Idempotency-Key": pending.key } };
      for (let attempt = 0; ; attempt++) {
        const response = await api("/v1/chat", init);
        if (response.status !== 409 || attempt >= 5) return response; // 409: the first try still runs
        await sleep(1500);
      }
    }

    async refused(bubble, pending, response) {
      const message = await errorText(response);
      const retry = response.status >= 500 || response.status === 429 || response.status === 409;
      if (retry) return this.dropped(bubble, pending, message);
      bubble.body.replaceChildren(h("p", { class: "notice" }, message));
      this.status.textContent = message;
    }

    async stream(bubble, pending, response) {
      let text = "";
      let tokens = 0;
      let final = null;
      let failure = null;
      for await (const { event, data } of sse(response)) {
        if (event === "token") {
          text += data.text;
          bubble.dataset.tokens = String(++tokens);
          this.render(bubble, text);
        } else if (event === "error") failure = data.error.message;
        else if (event === "final") final = data;
      }
      if (!final) return this.dropped(bubble, pending, this.s.truncated, text);
      this.conversationId = final.conversation_id;
      localStorage.setItem(SAVED, final.conversation_id);
      final.rateable = !CANNED.has(final.finish_reason) && !final.handoff;
      final.failure = failure;
      this.finish(bubble, final);
      this.status.textContent = final.answer;
      if (final.handoff) this.markHandedOff(true);
    }

    render(bubble, text) {
      if (bubble.frame) return;
      bubble.frame = requestAnimationFrame(() => {
        bubble.frame = 0;
        bubble.body.replaceChildren(markdown(text, () => null));
        this.scroll();
      });
    }

    dropped(bubble, pending, message, partial = "") {
      if (bubble.frame) cancelAnimationFrame(bubble.frame), (bubble.frame = 0);
      const retry = h("button", { type: "button", onclick: () => this.deliver(pending, bubble) }, this.s.retry);
      bubble.body.replaceChildren(markdown(partial, () => null), h("div", { class: "notice", role: "alert" }, message, " ", retry));
      retry.focus();
    }

    setBusy(busy) {
      this.busy = busy;
      this.sendButton.disabled = busy;
    }

    // ---- a finished answer: citations, sources, notices, rating ----------------------------
    finish(bubble, answer) {
      if (bubble.frame) cancelAnimationFrame(bubble.frame), (bubble.frame = 0);
      const sources = answer.sources || [];
      const list = h("ol", { class: "sources", "aria-label": this.s.sources });
      const items = new Map(); // source number -> its list item (one item per document section)
      for (const source of sources) {
        const group = `${source.source}#${source.heading}`;
        let li = [...items.values()].find((item) => item.dataset.group === group);
        if (!li) {
          const heading = (source.heading || "").startsWith(source.title) ? source.heading : [source.title, source.heading].filter(Boolean).join(" > ");
          li = h("li", { tabindex: "-1", "data-group": group }, h("span", { class: "nums" }), ` ${heading}`, h("span", { class: "path" }, " ", source.source));
          list.append(li);
        }
        li.firstChild.append(h("b", null, `[${source.number}]`)); // the answer's own numbers, never renumbered
        li.id = li.id || `td-src-${++uid}`;
        items.set(source.number, li);
      }
      for (const n of answer.citations || []) if (items.has(n)) items.get(n).classList.add("cited");
      const cite = (n) => {
        const li = items.get(n);
        if (!li) return null;
        const label = `Source ${n}: ${li.childNodes[1].textContent.trim()}`;
        return h("a", { class: "cite", href: `#${li.id}`, "aria-label": label, title: label, onclick: (e) => (e.preventDefault(), li.scrollIntoView({ block: "nearest" }), li.focus()) }, `[${n}]`);
      };
      bubble.body.replaceChildren(markdown(answer.answer || "", cite));
      if (sources.length) bubble.body.append(list);
      if (answer.failure || CUT_SHORT.has(answer.finish_reason)) {
        bubble.body.append(h("p", { class: "notice", role: "note" }, this.s.truncated, answer.failure ? ` (${answer.failure})` : ""));
      }
      if (answer.rateable) bubble.body.append(this.rating(answer.message_id, answer.rated));
    }

    rating(messageId, rated) {
      const row = h("div", { class: "rate", role: "group", "aria-label": `${this.s.helpful}?` });
      if (rated) return (row.append(this.s.thanks), row);
      const choose = (label) => {
        for (const b of row.querySelectorAll("button[aria-pressed]")) b.setAttribute("aria-pressed", String(b.dataset.rating === label));
        this.pendingRating = { messageId, label, row };
        if (!row.nextSibling) row.after(this.commentForm(row));
        row.nextSibling.querySelector("textarea").focus({ preventScroll: true });
        row.nextSibling.scrollIntoView({ block: "nearest" });
      };
      for (const [label, text, path] of [["good", this.s.helpful, UP_ICON], ["bad", this.s.not_helpful, DOWN_ICON]]) {
        row.append(h("button", { type: "button", "aria-pressed": "false", "aria-label": text, title: text, "data-rating": label, onclick: () => choose(label) }, icon(path)));
      }
      return row;
    }

    commentForm(row) {
      const inputId = `td-comment-${++uid}`;
      const comment = h("textarea", { id: inputId, maxlength: 2000, placeholder: this.s.comment_placeholder });
      return h("form", { class: "comment", onsubmit: (e) => (e.preventDefault(), this.flushRating(false, comment.value.trim())) },
        h("label", { class: "sr", for: inputId }, this.s.comment_placeholder), comment, h("button", { type: "submit" }, this.s.comment_send));
    }

    flushRating(leaving = false, comment = "") {
      const pending = this.pendingRating;
      if (!pending) return;
      this.pendingRating = null;
      const body = JSON.stringify({ rating: pending.label, by: "customer", comment: comment || null });
      const init = { method: "POST", body, keepalive: leaving, headers: { "Content-Type": "application/json" } };
      const done = (ok) => {
        const form = pending.row.nextSibling;
        if (form && form.localName === "form") form.remove();
        pending.row.replaceChildren(ok ? this.s.thanks : "The rating could not be saved.");
        this.status.textContent = pending.row.textContent;
      };
      api(`/v1/messages/${pending.messageId}/rating`, init).then((r) => done(r.ok), () => done(false));
    }

    // ---- a human --------------------------------------------------------------------------
    async askForHuman() {
      if (this.handedOff || this.busy) return;
      await this.loaded;
      const json = { "Content-Type": "application/json" };
      if (!this.conversationId) {
        const body = JSON.stringify({ product: PRODUCT || this.config.product || null });
        const response = await api("/v1/conversations", { method: "POST", body, headers: json }).catch(() => null);
        if (!response || !response.ok) return (this.status.textContent = this.s.network_error);
        this.conversationId = (await response.json()).id;
        localStorage.setItem(SAVED, this.conversationId);
      }
      const path = `/v1/conversations/${encodeURIComponent(this.conversationId)}/handoff`;
      const response = await api(path, { method: "POST", body: '{"reason":"requested"}', headers: json }).catch(() => null);
      if (!response || !response.ok) return (this.status.textContent = this.s.network_error);
      this.markHandedOff(true);
    }

    markHandedOff(announce) {
      if (this.handedOff) return;
      this.handedOff = true;
      this.humanButton.setAttribute("aria-disabled", "true");
      this.log.append(h("p", { class: "handoff", role: "status" }, this.s.human_requested));
      if (announce) this.status.textContent = this.s.human_requested;
      this.scroll();
    }
  }

  if (!customElements.get(TAG)) customElements.define(TAG, TunedeskChat);
  const mount = () => document.querySelector(TAG) || document.body.append(document.createElement(TAG));
  if (document.body) mount();
  else addEventListener("DOMContentLoaded", mount);
})();
