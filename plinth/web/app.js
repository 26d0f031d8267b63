// The shell: sign-in, hash routing (#/chat, #/knowledge, #/cost, #/tuning, #/agents, #/evals, #/admin) and the page-wide notice.
// Each page module exports mount(section) (build once) and show() (refresh when it comes into view).

import { api, ApiError, session } from "./api.js";
import * as chat from "./chat.js";
import * as knowledge from "./knowledge.js";
import * as cost from "./cost.js";
import * as tuning from "./tuning.js";
import * as agents from "./agents.js";
import * as evals from "./evals.js";
import * as admin from "./admin.js";

const PAGES = { chat, knowledge, cost, tuning, agents, evals, admin };
const mounted = new Set();
const $ = (id) => document.getElementById(id);

/** Show a page-wide message (errors nobody else caught), in plain words. */
export function notify(message) {
  const el = $("notice");
  el.textContent = message;
  el.hidden = !message;
}

window.addEventListener("unhandledrejection", (event) => {
  const err = event.reason;
  if (err && err.name === "AbortError") return event.preventDefault();
  notify(err instanceof ApiError ? err.message : "Something went wrong in the page. Reload it and try again.");
  if (err instanceof ApiError) event.preventDefault(); // shown in plain words; not a page bug
});

async function start() {
  $("signin-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOut);
  window.addEventListener("hashchange", route);
  // The server says in the page whether it runs --no-auth; otherwise only a stored key is worth checking.
  const noAuth = document.documentElement.dataset.auth === "none";
  if (noAuth || session.key) {
    try {
      session.me = await api("/v1/me");
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 401) return notify(err.message);
      session.key = ""; // a stored key that no longer works: ask again
    }
  }
  enter();
}

async function signIn(event) {
  event.preventDefault();
  const input = $("signin-key");
  const error = $("signin-error");
  error.hidden = true;
  session.key = input.value.trim();
  try {
    session.me = await api("/v1/me");
  } catch (err) {
    session.key = "";
    error.textContent = err.status === 401
      ? "That API key was not accepted. Check that you copied all of it, or ask your operator for a new one."
      : err.message;
    error.hidden = false;
    input.focus();
    return;
  }
  input.value = "";
  enter();
}

function signOut() {
  session.key = "";
  session.me = null;
  location.hash = "";
  location.reload();
}

/** After sign-in (or on a --no-auth server): show who we are and the current page. */
function enter() {
  const me = session.me;
  $("nav").hidden = !me;
  $("sign-out").hidden = !me || me.auth === "none";
  $("who").textContent = me ? `${me.tenant}${me.is_admin ? " (admin)" : ""}${me.auth === "none" ? " · local mode" : ""}` : "";
  route();
}

function route() {
  const me = session.me;
  const name = me ? (location.hash.replace(/^#\/?/, "").split("/")[0] || "chat") : "signin";
  const page = PAGES[name] ? name : me ? "chat" : "signin";
  for (const section of document.querySelectorAll(".page")) section.hidden = section.id !== `page-${page}`;
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.page === page) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = page === "signin" ? "Sign in · Plinth" : `${$(`page-${page}`).dataset.title || page} · Plinth`;
  if (page === "signin") return $("signin-key").focus();
  const module = PAGES[page];
  const section = $(`page-${page}`);
  if (!mounted.has(page)) {
    module.mount(section);
    mounted.add(page);
  }
  notify("");
  module.show();
}

start();
