// Barge console: live updates (server-sent events -> the page's fragment swapped in), pod logs,
// and the submit form's checks before submitting. Plain JavaScript, no dependencies.
"use strict";

(function () {
  const main = document.getElementById("live");
  const dot = document.getElementById("live-status");

  // --- live updates ---------------------------------------------------------------------------
  function fragmentUrl() {
    const url = new URL(window.location.href);
    url.searchParams.set("fragment", "1");
    return url.toString();
  }

  let timer = null;
  let inFlight = false;
  function refresh() {
    timer = null;
    const active = document.activeElement;
    if (active && main.contains(active) && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName)) {
      timer = setTimeout(refresh, 1000); // do not replace what the user is typing in
      return;
    }
    if (inFlight) { timer = setTimeout(refresh, 300); return; }
    inFlight = true;
    fetch(fragmentUrl(), { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then((r) => (r.ok || r.status === 400 ? r.text() : Promise.reject(r.status)))
      .then((html) => { main.innerHTML = html; main.dispatchEvent(new Event("barge:updated")); })
      .catch(() => {})
      .finally(() => { inFlight = false; });
  }

  if (main && main.dataset.live && window.location.pathname !== "/submit" && window.EventSource) {
    const source = new EventSource("/events");
    source.addEventListener("open", () => { if (dot) dot.className = "live-status on"; });
    source.addEventListener("error", () => { if (dot) dot.className = "live-status off"; });
    source.addEventListener("change", () => { if (!timer) timer = setTimeout(refresh, 400); });
  }

  // --- logs -----------------------------------------------------------------------------------
  document.addEventListener("click", (event) => {
    const link = event.target.closest && event.target.closest("a.log-link");
    if (!link) return;
    event.preventDefault();
    const pane = document.getElementById("log");
    const title = document.getElementById("log-title");
    if (!pane) { window.location.href = link.href; return; }
    title.textContent = "Log of " + link.textContent;
    pane.textContent = "loading…";
    fetch(link.href, { credentials: "same-origin" })
      .then((r) => r.text())
      .then((text) => { pane.textContent = text || "(empty log)"; });
  });

  // --- the submit form ------------------------------------------------------------------------
  const RESERVED = "AWS_BATCH";
  function envProblem(text) {
    const lines = text.split("\n");
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      if (!line.trim()) continue;
      const eq = line.indexOf("=");
      if (eq <= 0) return "line " + (i + 1) + ": expected NAME=VALUE, got '" + line.trim() + "' (environment variables)";
      const name = line.slice(0, eq).trim();
      if (name.toUpperCase().startsWith(RESERVED)) {
        return "'" + name + "': names starting with " + RESERVED + " are reserved for Barge (AWS Batch refuses them too)";
      }
    }
    return "";
  }

  function show(field, message) {
    const input = document.getElementById(field);
    const box = document.getElementById(field + "-error");
    if (!box) return;
    box.textContent = message;
    box.hidden = !message;
    if (input) input.setAttribute("aria-invalid", message ? "true" : "false");
  }

  const form = document.getElementById("submit-form");
  if (form) {
    const env = document.getElementById("environment");
    env.addEventListener("input", () => show("environment", envProblem(env.value)));
    form.addEventListener("submit", (event) => {
      const problems = {
        "environment": envProblem(env.value),
        "job-name": document.getElementById("job-name").value.trim() ? "" : "a name is required",
        "job-definition": document.getElementById("job-definition").value.trim() ? "" : "choose a job definition",
        "job-queue": document.getElementById("job-queue").value ? "" : "choose a job queue",
      };
      const sequential = document.getElementById("sequential").checked;
      const size = document.getElementById("array-size").value.trim();
      problems["sequential"] = sequential && !size ? "running children sequentially needs an array size of 2 or more" : "";
      let first = null;
      for (const [field, message] of Object.entries(problems)) {
        show(field, message);
        if (message && !first) first = field;
      }
      if (first) {
        event.preventDefault();
        document.getElementById(first).focus();
      }
    });
  }
})();
