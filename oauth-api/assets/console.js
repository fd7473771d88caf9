// pagesync console: shared helpers. Every request goes to the same JSON API that
// API users call (docs/inbox.md); the console adds no rule of its own.
"use strict";
const pagesync = (() => {
  // JSON in and out. Content-Type application/json is also the CSRF rule: a
  // cross-site form cannot send it (docs/console.md, "CSRF").
  async function api(method, path, body, extraHeaders) {
    const headers = Object.assign({ "Accept": "application/json" }, extraHeaders || {});
    const init = { method, headers, credentials: "same-origin" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const res = await fetch(path, init);
    if (res.status === 401) {
      window.location.assign("/login");
      throw new Error("signed out");
    }
    const text = await res.text();
    const data = text ? JSON.parse(text) : null;
    if (!res.ok) {
      const err = new Error((data && data.message) || ("HTTP " + res.status));
      err.status = res.status;
      err.body = data;
      throw err;
    }
    return data;
  }

  // Builds an element; children are nodes or text (always text, never HTML).
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "dataset") Object.assign(node.dataset, v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function when(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  }

  function duration(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    if (d > 0) return d + " d " + h + " h";
    if (h > 0) return h + " h " + m + " min";
    return m + " min " + (s % 60) + " s";
  }

  document.addEventListener("click", (ev) => {
    const btn = ev.target.closest("[data-copy]");
    if (!btn) return;
    const text = document.getElementById(btn.dataset.copy).textContent;
    const done = () => { btn.textContent = "Copied"; setTimeout(() => { btn.textContent = "Copy"; }, 1500); };
    if (navigator.clipboard) navigator.clipboard.writeText(text).then(done, () => { btn.textContent = "Select and copy"; });
    else btn.textContent = "Select and copy";
  });

  return { api, el, when, duration };
})();
