// Settings → Integrations: connect by hand, activate/deactivate, remove.
"use strict";
(() => {
  const { api } = pagesync;
  const form = document.getElementById("connect-form");
  const formError = document.getElementById("connect-error");
  const listError = document.getElementById("list-error");

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    formError.textContent = "";
    const pageId = form.page_id.value.trim();
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(pageId)) {
      formError.textContent = "A page id is 1 to 64 letters, digits, _ or -.";
      form.page_id.focus();
      return;
    }
    if (!form.access_token.value.trim()) {
      formError.textContent = "Paste the page's access token.";
      form.access_token.focus();
      return;
    }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    button.textContent = "Checking the token with Facebook…";
    try {
      await api("PUT", "/api/integrations/facebook/" + encodeURIComponent(pageId),
        { access_token: form.access_token.value.trim(), active: form.active.checked });
      // The server renders the list and the confirmation.
      window.location.assign("/settings/integrations?saved=" + encodeURIComponent(pageId));
    } catch (err) {
      formError.textContent = "Not saved: " + err.message;
      button.disabled = false;
      button.textContent = "Save Integration";
    }
  });

  document.addEventListener("click", async (ev) => {
    const btn = ev.target.closest("[data-action]");
    if (!btn) return;
    const item = btn.closest("[data-page-id]");
    const path = "/api/integrations/facebook/" + encodeURIComponent(item.dataset.pageId);
    listError.textContent = "";
    try {
      if (btn.dataset.action === "toggle") {
        await api("PATCH", path, { active: btn.dataset.active !== "true" });
      } else if (btn.dataset.action === "remove") {
        if (!window.confirm("Remove page " + item.dataset.pageId + "? Its token is deleted; conversations stay.")) return;
        await api("DELETE", path);
      }
      window.location.assign("/settings/integrations");
    } catch (err) {
      listError.textContent = err.message;
    }
  });
})();
