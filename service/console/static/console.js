// The console's keyboard loop, ratings and drafts. No build step, no framework.
(function () {
  "use strict";
  const csrf = () => document.querySelector('meta[name="csrf-token"]').content;
  const page = document.body.dataset.page;
  const typing = (el) => el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.tagName === "SELECT");
  const QUEUE_KEY = "tunedesk-queue";

  function keysDialog(event) {
    const dialog = document.getElementById("keys");
    if (event.key === "?" && dialog) { dialog.showModal(); return true; }
    return false;
  }

  // ---- the queue: j/k select, Enter opens; the order is kept for the answer pages
  function queuePage() {
    const table = document.getElementById("queue");
    const rows = Array.from(document.querySelectorAll("#queue tr.item"));
    sessionStorage.setItem(QUEUE_KEY, JSON.stringify({
      ids: rows.map((r) => r.dataset.id), back: location.pathname + location.search,
    }));
    let at = 0;
    const select = (i) => {
      if (!rows.length) return;
      rows[at].classList.remove("selected");
      at = Math.max(0, Math.min(rows.length - 1, i));
      rows[at].classList.add("selected");
      rows[at].scrollIntoView({ block: "nearest" });
    };
    document.addEventListener("keydown", (event) => {
      if (typing(document.activeElement) || event.ctrlKey || event.metaKey || keysDialog(event)) return;
      if (event.key === "j") select(at + 1);
      else if (event.key === "k") select(at - 1);
      else if ((event.key === "Enter" || event.key === "o") && rows.length) location.href = rows[at].dataset.href;
    });
    void table;
  }

  // ---- one answer: rate with the keyboard; a draft survives a session that ends mid-edit
  function neighbour(id, step) {
    const queue = JSON.parse(sessionStorage.getItem(QUEUE_KEY) || "null");
    if (!queue) return null;
    const i = queue.ids.indexOf(id);
    const next = queue.ids[i + step];
    return i >= 0 && next ? "/console/answers/" + next : null;
  }

  function answerPage() {
    const form = document.getElementById("rate");
    if (!form) return;
    const id = form.dataset.message;
    const draftKey = "tunedesk-draft:" + id;
    const status = document.getElementById("status");
    const field = (name) => form.elements.namedItem(name);
    const queue = JSON.parse(sessionStorage.getItem(QUEUE_KEY) || "null");
    if (queue) document.getElementById("back").href = queue.back;

    const state = () => ({
      label: (form.querySelector('input[name="label"]:checked') || {}).value || null,
      score: Number((form.querySelector('input[name="score"]:checked') || {}).value) || null,
      tags: field("tags").value, comment: field("comment").value,
      corrected_answer: field("corrected_answer").value,
    });
    const restore = (draft) => {
      for (const name of ["label", "score"]) {
        const box = form.querySelector(`input[name="${name}"][value="${draft[name]}"]`);
        if (box) box.checked = true;
      }
      field("tags").value = draft.tags || "";
      field("comment").value = draft.comment || "";
      if (draft.corrected_answer != null) field("corrected_answer").value = draft.corrected_answer;
    };
    const saveDraft = () => localStorage.setItem(draftKey, JSON.stringify(state()));
    const saved = localStorage.getItem(draftKey);
    if (saved) { restore(JSON.parse(saved)); status.textContent = "Draft restored"; }
    form.addEventListener("input", saveDraft);
    form.addEventListener("change", saveDraft);

    const check = (name, value) => {
      const box = form.querySelector(`input[name="${name}"][value="${value}"]`);
      if (box) { box.checked = true; saveDraft(); }
    };
    async function save() {
      const body = state();
      body.tags = body.tags.split(",").map((t) => t.trim()).filter(Boolean);
      if (!body.label && !body.score) { status.textContent = "Choose good/bad (g/b) or a score (1-5) first"; status.className = "err"; return; }
      saveDraft();
      status.textContent = "Saving…"; status.className = "";
      const response = await fetch(`/console/api/answers/${id}/ratings`, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
        body: JSON.stringify(body),
      });
      if (response.status === 401) {  // the session ended: the draft waits in localStorage
        location.href = "/console/login?next=" + encodeURIComponent(location.pathname);
        return;
      }
      const answer = await response.json();
      if (!response.ok) { status.textContent = answer.error.message; status.className = "err"; return; }
      localStorage.removeItem(draftKey);
      status.textContent = "Saved"; status.className = "ok";
      location.href = neighbour(id, 1) || location.pathname;
    }
    form.addEventListener("submit", (event) => { event.preventDefault(); save(); });

    document.addEventListener("keydown", (event) => {
      const active = document.activeElement;
      if (typing(active)) {
        if (event.key === "Escape") active.blur();
        else if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); save(); }
        return;
      }
      if (event.ctrlKey || event.metaKey || event.altKey || keysDialog(event)) return;
      const focusOn = (name) => { event.preventDefault(); field(name).focus(); };
      switch (event.key) {
        case "g": check("label", "good"); break;
        case "b": check("label", "bad"); break;
        case "1": case "2": case "3": case "4": case "5": check("score", event.key); break;
        case "t": focusOn("tags"); break;
        case "c": focusOn("comment"); break;
        case "e": focusOn("corrected_answer"); break;
        case "s": event.preventDefault(); save(); break;
        case "j": case "k": {
          const target = neighbour(id, event.key === "j" ? 1 : -1);
          if (target) location.href = target;
          break;
        }
        case "u": location.href = document.getElementById("back").href; break;
      }
    });
  }

  // ---- admin pages: buttons that POST JSON with the CSRF token
  function actions() {
    document.querySelectorAll("form[data-json]").forEach((form) => {
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        const body = Object.fromEntries(new FormData(form).entries());
        // getAttribute: a field named "action" (the versions form has one) shadows form.action
        const response = await fetch(form.getAttribute("action"), {
          method: "POST", credentials: "same-origin",
          headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
          body: JSON.stringify(body),
        });
        const answer = await response.json().catch(() => ({}));
        const out = form.querySelector(".out") || document.getElementById("out");
        if (out) out.textContent = response.ok ? (answer.invite_url || answer.message || "Done") : answer.error.message;
        if (response.ok && form.dataset.reload !== undefined) setTimeout(() => location.reload(), 400);
      });
    });
  }

  if (page === "queue") queuePage();
  if (page === "answer") answerPage();
  actions();
})();
