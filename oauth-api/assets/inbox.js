// Inbox: the conversation list, a thread, the reply box and live updates, all on
// the JSON API (GET/PATCH /api/conversations…, POST …/messages, GET /api/events).
"use strict";
(() => {
  const { api, el, when, duration } = pagesync;
  const $ = (id) => document.getElementById(id);
  const appId = document.querySelector(".inbox").dataset.appId || "";
  const state = { items: new Map(), order: [], cursor: null, open: null, replyKey: null };
  const key = (c) => c.page_id + "/" + c.psid;
  const convPath = (c) => "/api/conversations/" + encodeURIComponent(c.page_id) + "/" + encodeURIComponent(c.psid);

  function filters() {
    const f = $("filters");
    const p = new URLSearchParams();
    if (f.status.value) p.set("status", f.status.value);
    if (f.page_id.value) p.set("page_id", f.page_id.value);
    if (f.unread.checked) p.set("unread", "true");
    if (f.q.value.trim()) p.set("q", f.q.value.trim());
    return p;
  }

  // Whether a live update still belongs in the list as filtered (q is the server's
  // to judge: with a search, the list is fetched again instead).
  function matches(c) {
    const f = $("filters");
    if (f.status.value && c.status !== f.status.value) return false;
    if (f.page_id.value && c.page_id !== f.page_id.value) return false;
    if (f.unread.checked && !(c.unread > 0)) return false;
    return true;
  }

  async function loadList(append) {
    $("list-error").textContent = "";
    const p = filters();
    p.set("limit", "50");
    if (append && state.cursor) p.set("cursor", state.cursor);
    try {
      const page = await api("GET", "/api/conversations?" + p.toString());
      if (!append) { state.items.clear(); state.order = []; }
      for (const c of page.data) {
        if (!state.items.has(key(c))) state.order.push(key(c));
        state.items.set(key(c), c);
      }
      state.cursor = page.next_cursor;
      renderList();
    } catch (err) {
      $("list-error").textContent = "Could not load conversations: " + err.message;
    }
  }

  function renderList() {
    const ul = $("conversations");
    ul.replaceChildren(...state.order.map((k) => {
      const c = state.items.get(k);
      const name = c.customer_name || c.psid;
      const btn = el("button", {
        type: "button", class: "conversation", "aria-current": state.open === k ? "true" : false,
        dataset: { key: k },
      },
      el("span", { class: "who" }, el("span", {}, name),
        c.unread > 0 ? el("span", { class: "unread", "aria-label": c.unread + " unread" }, String(c.unread)) : null),
      el("span", { class: "last" }, c.last_message_text || "(no text)"),
      el("span", { class: "hint" }, [c.platform, c.status, when(c.last_message_at)].filter(Boolean).join(" · ")));
      return el("li", {}, btn);
    }));
    $("list-empty").hidden = state.order.length > 0;
    $("more").hidden = !state.cursor;
  }

  function upsert(c) {
    const k = key(c);
    state.order = state.order.filter((x) => x !== k);
    if (matches(c)) { state.order.unshift(k); state.items.set(k, c); } else { state.items.delete(k); }
    renderList();
  }

  // ---- the thread ----

  async function openThread(k) {
    const c = state.items.get(k);
    if (!c) return;
    state.open = k;
    state.replyKey = null;
    $("thread").hidden = false;
    document.querySelector(".inbox").classList.add("showing-thread");
    renderList();
    renderHead(c);
    await loadMessages(c);
    $("reply-text").focus();
  }

  function renderHead(c) {
    $("thread-title").textContent = c.customer_name || c.psid;
    $("thread-meta").textContent = [c.platform, "customer " + c.psid, "page " + c.page_id].join(" · ");
    const badge = $("thread-status");
    badge.textContent = c.status === "open" ? "Open" : "Closed";
    badge.className = "badge " + c.status;
    $("toggle-status").textContent = c.status === "open" ? "Close conversation" : "Reopen conversation";
    renderWindow(c);
  }

  async function loadMessages(c) {
    const all = [];
    let cursor = null;
    // The messages route pages forward in time: walk it to the newest.
    for (let i = 0; i < 50; i++) {
      const p = new URLSearchParams({ limit: "100" });
      if (cursor) p.set("cursor", cursor);
      const page = await api("GET", convPath(c) + "/messages?" + p.toString());
      all.push(...page.data);
      cursor = page.next_cursor;
      if (!cursor) break;
    }
    if (state.open !== key(c)) return;
    const ol = $("messages");
    ol.replaceChildren(...all.map(renderMessage));
    ol.scrollTop = ol.scrollHeight;
  }

  function sender(m) {
    if (m.direction === "in") return "Customer";
    if (m.source === "send" || (appId && String(m.app_id) === appId)) return "Sent from pagesync";
    if (m.app_id) return "Sent by app " + m.app_id;
    return "Sent from the Page";
  }

  function attachment(a) {
    const url = a && a.payload && a.payload.url;
    if (!url) return el("span", { class: "hint" }, "[" + ((a && a.type) || "attachment") + "]");
    if (a.type === "image") return el("a", { href: url, target: "_blank", rel: "noopener" }, el("img", { src: url, alt: "image sent in the conversation", loading: "lazy" }));
    return el("a", { href: url, target: "_blank", rel: "noopener" }, (a.type || "file") + " attachment");
  }

  function renderMessage(m) {
    const marks = [];
    if (m.edited > 0) marks.push("edited");
    if (m.direction === "out") marks.push(m.read ? "read" : m.delivered ? "delivered" : "sent");
    const ts = typeof m.timestamp === "number" ? new Date(m.timestamp).toISOString() : m.timestamp;
    return el("li", { class: "message " + m.direction, dataset: { mid: m.mid, direction: m.direction } },
      m.text ? el("span", { class: "text" }, m.text) : null,
      (m.attachments || []).map(attachment),
      (m.reactions && m.reactions.length)
        ? el("span", { class: "reactions", "aria-label": "reactions" }, m.reactions.map((r) => (r.emoji || r.reaction) + (r.by === "page" ? " (page)" : "")).join(" "))
        : null,
      el("span", { class: "meta" }, [sender(m), when(ts), ...marks].join(" · ")));
  }

  // The reply box follows reply_window (the same rule the reply route applies).
  let countdown = null;
  function renderWindow(c) {
    clearInterval(countdown);
    const w = c.reply_window || { kind: "closed", closes_at: null };
    const p = $("window");
    const text = $("reply-text");
    const send = $("send");
    const closed = w.kind === "closed";
    p.className = "window " + w.kind;
    text.disabled = closed;
    send.disabled = closed;
    if (closed) {
      p.textContent = "Replies are closed: Facebook allows a reply only within 24 hours of the customer's last message"
        + " (7 days for a human agent, when enabled). The reply box opens again when the customer writes.";
      return;
    }
    const label = w.kind === "response" ? "Reply window" : "Human agent window";
    const tick = () => {
      const left = new Date(w.closes_at).getTime() - Date.now();
      if (left <= 0) { clearInterval(countdown); refreshOpen(); return; }
      p.textContent = label + ": closes in " + duration(left) + ".";
    };
    tick();
    countdown = setInterval(tick, 1000);
  }

  async function refreshOpen() {
    if (!state.open) return;
    const c = state.items.get(state.open);
    if (!c) return;
    const fresh = await api("GET", convPath(c));
    state.items.set(key(fresh), fresh);
    renderHead(fresh);
    await loadMessages(fresh);
  }

  $("reply").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const c = state.items.get(state.open);
    const text = $("reply-text").value.trim();
    $("reply-error").textContent = "";
    if (!c || !text) return;
    // One key per reply: a retry after a lost answer is not sent twice.
    state.replyKey = state.replyKey || crypto.randomUUID();
    $("send").disabled = true;
    try {
      await api("POST", convPath(c) + "/messages", { text }, { "Idempotency-Key": state.replyKey });
      state.replyKey = null;
      $("reply-text").value = "";
      await refreshOpen();
    } catch (err) {
      if (err.status && err.status < 500) state.replyKey = null;
      $("reply-error").textContent = "Not sent: " + err.message;
    } finally {
      $("send").disabled = $("reply-text").disabled;
    }
  });

  $("toggle-status").addEventListener("click", async () => {
    const c = state.items.get(state.open);
    if (!c) return;
    try {
      await api("PATCH", convPath(c), { status: c.status === "open" ? "closed" : "open" });
      c.status = c.status === "open" ? "closed" : "open";
      renderHead(c);
    } catch (err) {
      $("reply-error").textContent = err.message;
    }
  });

  $("conversations").addEventListener("click", (ev) => {
    const btn = ev.target.closest("[data-key]");
    if (btn) openThread(btn.dataset.key);
  });
  $("back").addEventListener("click", () => {
    document.querySelector(".inbox").classList.remove("showing-thread");
    $("thread").hidden = true;
    state.open = null;
    renderList();
  });
  $("more").addEventListener("click", () => loadList(true));
  let searchTimer = null;
  $("filters").addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(() => loadList(false), 250); });
  $("filters").addEventListener("submit", (ev) => { ev.preventDefault(); loadList(false); });

  // ---- live updates ----
  function live() {
    const es = new EventSource("/api/events");
    es.addEventListener("open", () => {
      $("live-state").textContent = "Live";
      // After a reconnect (a server restart, say), catch up with what changed.
      loadList(false);
      refreshOpen().catch((err) => { $("reply-error").textContent = err.message; });
    });
    es.addEventListener("error", () => { $("live-state").textContent = "Reconnecting…"; });
    es.addEventListener("conversation", (ev) => {
      const c = JSON.parse(ev.data);
      if ($("filters").q.value.trim()) loadList(false); else upsert(c);
      if (state.open === key(c)) {
        state.items.set(key(c), c);
        renderHead(c);
        loadMessages(c).catch((err) => { $("reply-error").textContent = err.message; });
      }
    });
  }

  loadList(false);
  live();
})();
