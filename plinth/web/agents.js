// Agents: define one (a model, instructions, tools as JSON), run it, and watch its trace stream in step
// by step -- the model's decision, the tool it called, what came back. A run that needs the user (a
// function tool returning control, or a call that needs confirmation) asks here and goes on when answered.

import { api, listModels, streamAgent } from "./api.js";
import { field, fill, h, statusLine } from "./dom.js";

const EXAMPLE_TOOLS = JSON.stringify([
  { type: "calculator" },
  {
    type: "function",
    function: {
      name: "book_table",
      description: "Book a restaurant table",
      parameters: { type: "object", properties: { people: { type: "integer" }, time: { type: "string" } },
        required: ["people", "time"] },
    },
    requireConfirmation: true,
  },
], null, 2);

let els = null;
let agentsById = new Map();
let selected = null; // the agent id shown
let sessionId = null; // the conversation with it
let controller = null;

export function mount(section) {
  section.dataset.title = "Agents";
  const name = h("input", { name: "name", required: true, maxlength: 64, placeholder: "helper" });
  const model = h("select", { name: "model", required: true });
  const instructions = h("textarea", { name: "instructions", rows: 3, required: true },
    "You are a helpful assistant. Use a tool when it helps.");
  const tools = h("textarea", { name: "tools", rows: 12, spellcheck: false, class: "code" }, EXAMPLE_TOOLS);
  const maxSteps = h("input", { name: "max_steps", type: "number", min: 1, max: 50, value: 6 });
  const createStatus = statusLine();
  const list = h("ol", { class: "history", "aria-label": "Agents" });
  const input = h("textarea", { name: "input", rows: 2, required: true, placeholder: "What is 17 * 23?" });
  const runStatus = statusLine();
  const trace = h("ol", { class: "trace", "aria-label": "Trace", "aria-live": "polite" });
  const answer = h("div", { class: "answer", "aria-live": "polite" });
  const action = h("div", { class: "required-action" });
  const title = h("h2", {}, "Run an agent");
  const stop = h("button", { type: "button", class: "secondary", hidden: true, onclick: () => controller?.abort() }, "Stop");

  fill(section,
    h("h1", { id: "agents-title" }, "Agents"),
    h("p", { class: "note" }, "An agent plans over tools: each step the model picks a tool (or answers), the tool "
      + "runs, and what it returned is the next step's input. Tools: knowledge_base, sql, calculator, function "
      + "(returns control to you, optionally after your confirmation) and agent (another agent)."),
    h("div", { class: "layout" },
      h("aside", { class: "side" }, h("h2", {}, "Your agents"), list),
      h("div", { class: "main-col" },
        h("form", { class: "card", onsubmit: onRun, "aria-labelledby": "agents-run-title" },
          title, field("Input", input),
          h("div", { class: "row" }, h("button", { type: "submit" }, "Run"), stop,
            h("button", { type: "button", class: "secondary", onclick: newSession }, "New conversation")),
          runStatus.el, trace, answer, action),
        h("form", { class: "card", onsubmit: onCreate },
          h("h2", {}, "Create an agent"), field("Name", name), field("Model", model),
          field("Instructions", instructions), field("Tools (JSON)", tools, "A list of tool definitions."),
          field("Most steps per run", maxSteps), h("button", { type: "submit" }, "Create agent"), createStatus.el))));
  title.id = "agents-run-title";
  els = { name, model, instructions, tools, maxSteps, createStatus, list, input, runStatus, trace, answer, action, title, stop };
}

export async function show() {
  try {
    const models = await listModels();
    const chosen = els.model.value; // kept across a refresh
    fill(els.model, models.map((m) => h("option", { value: m.id }, m.id)));
    if (models.some((m) => m.id === chosen)) els.model.value = chosen;
  } catch (err) {
    els.createStatus.error(err.message);
  }
  await refreshAgents();
}

async function refreshAgents() {
  let page;
  try {
    page = await api("/v1/agents");
  } catch (err) {
    return els.createStatus.error(err.message);
  }
  agentsById = new Map(page.data.map((a) => [a.id, a]));
  if (!agentsById.has(selected)) selected = page.data.length ? page.data[0].id : null;
  fill(els.list, page.data.length ? page.data.map((agent) => h("li", {},
    h("button", { type: "button", class: "link", "aria-current": agent.id === selected ? "true" : null,
      onclick: () => choose(agent.id) }, `${agent.name} · ${agent.model}`),
    h("button", { type: "button", class: "small secondary", "aria-label": `Delete ${agent.name}`,
      onclick: () => onDelete(agent) }, "Delete"))) : h("li", { class: "empty" }, "No agents yet."));
  renderTitle();
}

function choose(id) {
  selected = id;
  newSession();
  refreshAgents();
}

function newSession() {
  sessionId = null;
  fill(els.trace);
  fill(els.answer);
  fill(els.action);
  els.runStatus.clear();
}

function renderTitle() {
  const agent = agentsById.get(selected);
  els.title.textContent = agent ? `Run ${agent.name}` : "Run an agent (create one first)";
}

async function onCreate(event) {
  event.preventDefault();
  let tools;
  try {
    tools = JSON.parse(els.tools.value || "[]");
  } catch (err) {
    return els.createStatus.error(`The tools are not valid JSON: ${err.message}`);
  }
  const body = { name: els.name.value.trim(), model: els.model.value, instructions: els.instructions.value,
    tools, max_steps: Number(els.maxSteps.value || 6) };
  els.createStatus.busy("Creating the agent…");
  try {
    const agent = await api("/v1/agents", { method: "POST", body });
    selected = agent.id;
    newSession();
    await refreshAgents();
    els.createStatus.ok(`Agent ${agent.name} created (${agent.id}).`);
  } catch (err) {
    els.createStatus.error(err.message);
  }
}

async function onDelete(agent) {
  try {
    await api(`/v1/agents/${agent.id}`, { method: "DELETE" });
  } catch (err) {
    return els.createStatus.error(err.message);
  }
  if (selected === agent.id) newSession();
  await refreshAgents();
}

async function onRun(event) {
  event.preventDefault();
  const text = els.input.value.trim();
  if (!text || !selected) return;
  await invoke({ input: text });
}

/** Run (or continue) the selected agent, streaming its trace into the page. */
async function invoke(body) {
  controller = new AbortController();
  fill(els.action);
  fill(els.answer);
  els.stop.hidden = false;
  els.runStatus.busy("The agent is working…");
  try {
    const run = await streamAgent(selected, { ...body, session_id: sessionId || undefined },
      { signal: controller.signal, onStep: (step) => els.trace.append(stepView(step)) });
    sessionId = run.session_id;
    renderRun(run);
  } catch (err) {
    if (err.name === "AbortError") els.runStatus.error("Stopped.");
    else els.runStatus.error(err.message);
  } finally {
    els.stop.hidden = true;
    controller = null;
  }
}

const STATUS_WORDS = {
  completed: "Done.",
  requires_action: "The agent needs you before it can go on.",
  max_steps_reached: "The agent used all its steps without an answer. Ask again more simply, or allow more steps.",
  blocked: "A guardrail blocked this run.",
  failed: "The run failed.",
};

function renderRun(run) {
  const words = STATUS_WORDS[run.status] || run.status;
  if (run.status === "completed") els.runStatus.ok(words);
  else els.runStatus.error(words);
  fill(els.answer,
    run.output ? h("p", { class: "reply" }, run.output) : null,
    run.citations && run.citations.length ? h("div", { class: "citations" }, h("h3", {}, "Sources"),
      h("ol", {}, run.citations.map((c) => h("li", {}, citationText(c))))) : null,
    run.usage ? h("p", { class: "note" }, usageText(run.usage)) : null);
  if (run.required_action) renderAction(run.required_action);
}

function renderAction(required) {
  const calls = required.calls || [];
  if (required.type === "confirmation") {
    fill(els.action, h("div", { class: "card" }, h("h3", {}, "Confirm these calls"),
      calls.map((call) => h("div", { class: "call" }, h("pre", {}, `${call.name}(${argumentsText(call.arguments)})`))),
      h("div", { class: "row" },
        h("button", { type: "button", onclick: () => invoke({ confirmations: calls.map((c) => ({ call_id: c.call_id, approved: true })) }) }, "Approve"),
        h("button", { type: "button", class: "secondary", onclick: () => invoke({ confirmations: calls.map((c) => ({ call_id: c.call_id, approved: false })) }) }, "Decline"))));
    return;
  }
  const outputs = calls.map((call) => ({ call, box: h("textarea", { rows: 2, required: true }) }));
  fill(els.action, h("form", { class: "card", onsubmit: (event) => {
    event.preventDefault();
    invoke({ return_control_results: outputs.map(({ call, box }) => ({ call_id: call.call_id, output: box.value })) });
  } }, h("h3", {}, "The agent asks you to run these functions"),
  outputs.map(({ call, box }) => field(`${call.name}(${argumentsText(call.arguments)}) returned`, box)),
  h("button", { type: "submit" }, "Send the results")));
}

function stepView(step) {
  const head = step.type === "tool" ? `Tool ${step.tool}` : step.type === "guardrail" ? "Guardrail" : "Model";
  const timing = [step.duration_ms !== undefined ? `${Math.round(step.duration_ms)} ms` : null,
    step.tokens ? `${tokenCount(step.tokens)} tokens` : null].filter(Boolean).join(" · ");
  return h("li", { class: `step step-${step.type}${step.error ? " error" : ""}` },
    h("div", { class: "step-head" }, h("strong", {}, `${(step.index ?? 0) + 1}. ${head}`), timing ? ` — ${timing}` : ""),
    step.model_output ? h("pre", {}, step.model_output) : null,
    step.arguments !== undefined && step.arguments !== null ? h("pre", {}, `arguments: ${argumentsText(step.arguments)}`) : null,
    step.observation ? h("pre", {}, `returned: ${String(step.observation).slice(0, 2000)}`) : null,
    step.error ? h("p", { class: "error" }, `error: ${step.error}`) : null);
}

function argumentsText(value) {
  return typeof value === "string" ? value : JSON.stringify(value);
}

function tokenCount(tokens) {
  return typeof tokens === "number" ? tokens : (tokens.prompt || 0) + (tokens.completion || 0);
}

function usageText(usage) {
  const parts = Object.entries(usage).filter(([, v]) => typeof v === "number").map(([k, v]) => `${k.replaceAll("_", " ")}: ${v}`);
  return parts.join(" · ");
}

function citationText(c) {
  return c.title || c.source || c.uri || c.text || JSON.stringify(c).slice(0, 120);
}
