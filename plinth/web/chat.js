// Chat: pick a base model or one of this tenant's adapters, set the LLM settings, stream the reply token by
// token (Stop aborts it), copy any message, and come back to earlier conversations (kept for this tab).

import { api, explainGuardrail, listModels, streamChat } from "./api.js";
import { copyButton, field, fill, h, select, statusLine } from "./dom.js";

const STORE = "plinth.chats";
let els = null;
let models = [];
let conversations = loadConversations();
let current = null; // the conversation shown: {id, title, messages: [{role, content, note?}]}
let controller = null; // AbortController of the reply being streamed

export function mount(section) {
  section.dataset.title = "Chat";
  const model = h("select", { name: "model", onchange: showBadge });
  const badge = h("span", { class: "badge warn", hidden: true }, "random weights");
  const guardrail = h("select", { name: "guardrail" }, h("option", { value: "" }, "Tenant default"));
  const settings = {
    temperature: h("input", { type: "number", min: "0", max: "2", step: "0.1", value: "0.7", name: "temperature" }),
    top_p: h("input", { type: "number", min: "0.01", max: "1", step: "0.05", value: "1", name: "top_p" }),
    max_tokens: h("input", { type: "number", min: "1", max: "32768", step: "1", value: "256", name: "max_tokens" }),
    frequency_penalty: h("input", { type: "number", min: "-2", max: "2", step: "0.1", value: "0", name: "frequency_penalty" }),
    presence_penalty: h("input", { type: "number", min: "-2", max: "2", step: "0.1", value: "0", name: "presence_penalty" }),
  };
  const system = h("textarea", { rows: 3, name: "system", placeholder: "You are a helpful assistant." });
  const log = h("ol", { class: "messages", role: "log", "aria-live": "polite", "aria-label": "Conversation" });
  const input = h("textarea", { rows: 3, name: "message", required: true, placeholder: "Ask anything…",
    onkeydown: (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); } } });
  const send = h("button", { type: "submit" }, "Send");
  const stop = h("button", { type: "button", class: "secondary", disabled: true, onclick: () => controller && controller.abort() }, "Stop");
  const status = statusLine();
  const history = h("ul", { class: "history", "aria-label": "Earlier conversations" });
  const form = h("form", { class: "composer", onsubmit: onSend },
    field("Message", input, "Enter sends, Shift+Enter starts a new line."), h("div", { class: "row" }, send, stop), status.el);

  fill(section,
    h("h1", { id: "chat-title" }, "Chat"),
    h("div", { class: "layout" },
      h("aside", { class: "side" },
        h("div", { class: "row" }, field("Model", model), badge),
        h("details", { class: "settings" }, h("summary", {}, "Settings"),
          field("Temperature", settings.temperature),
          field("Top p", settings.top_p),
          field("Max tokens", settings.max_tokens),
          field("Frequency penalty", settings.frequency_penalty),
          field("Presence penalty", settings.presence_penalty),
          field("System prompt", system),
          field("Guardrail", guardrail)),
        h("h2", {}, "Conversations"),
        h("button", { type: "button", class: "secondary", onclick: () => openConversation(null) }, "New chat"),
        history),
      h("div", { class: "main-col" }, log, form)));
  els = { model, badge, guardrail, settings, system, log, input, send, stop, status, history };
  openConversation(conversations[0] ? conversations[0].id : null, false);
}

export async function show() {
  try {
    models = await listModels();
  } catch (err) {
    els.status.error(err.message);
    return;
  }
  const chosen = els.model.value;
  fill(els.model,
    group("Base models", models.filter((m) => !m.adapter)),
    group("Adapters", models.filter((m) => m.adapter)));
  if (models.some((m) => m.id === chosen)) els.model.value = chosen;
  showBadge();
  loadGuardrails();
}

function group(label, items) {
  if (!items.length) return null;
  return h("optgroup", { label }, items.map((m) =>
    h("option", { value: m.id }, `${m.id}${m.adapter ? ` (on ${m.parent})` : ""}${m.random ? " — random weights" : ""}`)));
}

function showBadge() {
  const m = models.find((x) => x.id === els.model.value);
  els.badge.hidden = !(m && m.random);
  els.badge.title = "This model has random weights: its replies are gibberish, useful only to try the platform.";
}

async function loadGuardrails() {
  try {
    const list = await api("/v1/guardrails");
    const chosen = els.guardrail.value;
    fill(els.guardrail, h("option", { value: "" }, "Tenant default"),
      (list.guardrails || list.data || []).map((g) => h("option", { value: g.id || g.guardrailId }, g.name)));
    els.guardrail.value = chosen;
  } catch {
    // no guardrails API (or not allowed): the tenant default still applies on the server
  }
}

async function onSend(event) {
  event.preventDefault();
  const text = els.input.value.trim();
  if (!text || controller) return;
  if (!els.model.value) return els.status.error("There is no model to talk to yet. Ask the operator to start one.");
  if (!current) current = newConversation(text);
  current.messages.push({ role: "user", content: text });
  els.input.value = "";
  const reply = { role: "assistant", content: "" };
  current.messages.push(reply);
  render();
  const bubble = els.log.lastElementChild.querySelector(".content");
  controller = new AbortController();
  streaming(true);
  try {
    const result = await streamChat(requestBody(), {
      signal: controller.signal,
      onDelta: (_, all) => { bubble.textContent = all; },
    });
    reply.content = result.text;
    if (result.finishReason === "content_filter") {
      reply.blocked = true;
      reply.note = explainGuardrail(result.guardrail, result.text);
    } else if (result.finishReason === "length") {
      reply.note = "The reply stopped at the max tokens limit.";
    }
    els.status.clear();
  } catch (err) {
    if (err.name === "AbortError") {
      reply.content = bubble.textContent;
      reply.note = "Stopped.";
      els.status.ok("Stopped.");
    } else {
      reply.content = bubble.textContent;
      reply.note = err.message;
      reply.failed = true;
      els.status.error(err.message);
    }
  } finally {
    controller = null;
    streaming(false);
    save();
    render();
  }
}

function requestBody() {
  const s = els.settings;
  const messages = [];
  if (els.system.value.trim()) messages.push({ role: "system", content: els.system.value.trim() });
  for (const m of current.messages) {
    if (m.role === "assistant" && (m.blocked || m.failed || !m.content)) continue;
    messages.push({ role: m.role, content: m.content });
  }
  if (messages[messages.length - 1].role === "assistant") messages.pop(); // the empty reply being written
  const body = {
    model: els.model.value,
    messages,
    temperature: Number(s.temperature.value),
    top_p: Number(s.top_p.value),
    max_tokens: Number(s.max_tokens.value),
    frequency_penalty: Number(s.frequency_penalty.value),
    presence_penalty: Number(s.presence_penalty.value),
  };
  if (els.guardrail.value) body.guardrailConfig = { guardrailIdentifier: els.guardrail.value };
  return body;
}

function streaming(on) {
  els.send.disabled = on;
  els.stop.disabled = !on;
  els.log.setAttribute("aria-busy", on ? "true" : "false");
  if (on) els.status.busy("Writing…");
  if (on) els.stop.focus();
  else els.input.focus();
}

function render() {
  fill(els.log, (current ? current.messages : []).map((m) => {
    const content = h("div", { class: "content" }, m.content);
    return h("li", { class: `message ${m.role}${m.blocked ? " blocked" : ""}` },
      h("div", { class: "meta" }, h("span", { class: "role" }, m.role === "user" ? "You" : "Assistant"),
        m.content ? copyButton(() => m.content, `Copy ${m.role === "user" ? "your message" : "the reply"}`) : null),
      content,
      m.note ? h("p", { class: m.blocked || m.failed ? "note error" : "note" }, m.note) : null);
  }));
  if (!current || !current.messages.length) {
    els.log.append(h("li", { class: "empty" }, "Start a conversation: type a message below."));
  }
  renderHistory();
}

function renderHistory() {
  fill(els.history, conversations.map((c) => h("li", {},
    h("button", { type: "button", class: "link", "aria-current": current && c.id === current.id ? "true" : null,
      onclick: () => openConversation(c.id) }, c.title))));
}

function openConversation(id, focus = true) {
  if (controller) controller.abort();
  current = conversations.find((c) => c.id === id) || null;
  render();
  if (focus) els.input.focus(); // not on page load: keyboard users start at "Skip to content"
}

function newConversation(firstMessage) {
  const c = { id: String(Date.now()), title: firstMessage.slice(0, 40), messages: [] };
  conversations.unshift(c);
  return c;
}

function loadConversations() {
  try { return JSON.parse(sessionStorage.getItem(STORE)) || []; } catch { return []; }
}

function save() {
  sessionStorage.setItem(STORE, JSON.stringify(conversations.slice(0, 30)));
}
