// Knowledge: ask a knowledge base and read the answer with numbered citations (a citation opens its source
// text and metadata), narrow by metadata with form controls, keep a multi-turn session, or list the
// matching records only ("retrieve only"). While the chosen knowledge base builds, a progress bar says how
// much has landed (a first build answers from that) and refreshes until the build ends.

import { api, explainGuardrail, listModels } from "./api.js";
import { field, fill, h, statusLine } from "./dom.js";

let els = null;
let kbs = [];
let sessionId = null;
let sources = []; // the references cited in the conversation, by number - 1
let pollTimer = null;
const POLL_MS = 3000;
const BUILDING = new Set(["building", "syncing"]);

export function mount(section) {
  section.dataset.title = "Knowledge";
  const kb = h("select", { name: "kb", onchange: onKbChange });
  const model = h("select", { name: "model" });
  const mode = h("fieldset", { class: "inline" }, h("legend", {}, "Mode"),
    radio("mode", "ask", "Answer with citations", true), radio("mode", "retrieve", "Retrieve only"));
  const filters = {
    yearFrom: h("input", { type: "number", name: "year_from", min: "1800", max: "2100", inputmode: "numeric" }),
    yearTo: h("input", { type: "number", name: "year_to", min: "1800", max: "2100", inputmode: "numeric" }),
    genre: h("input", { type: "text", name: "genre", list: "kb-genres", autocomplete: "off" }),
    rating: h("input", { type: "number", name: "min_rating", min: "0", max: "10", step: "0.5" }),
  };
  const genres = h("datalist", { id: "kb-genres" }, ["Action", "Adventure", "Animated", "Comedy", "Crime",
    "Documentary", "Drama", "Family", "Fantasy", "Horror", "Musical", "Mystery", "Romance", "Science Fiction",
    "Thriller", "War", "Western"].map((g) => h("option", { value: g })));
  const filterBox = h("fieldset", { class: "filters" }, h("legend", {}, "Filters"),
    h("div", { class: "grid2" }, field("Year from", filters.yearFrom), field("Year to", filters.yearTo)),
    field("Genre", filters.genre), genres, field("Minimum rating", filters.rating, "IMDb rating, 0 to 10"));
  const question = h("textarea", { rows: 2, name: "question", required: true, placeholder: "Which animated films were made in the 1990s?" });
  const status = statusLine();
  const form = h("form", { onsubmit: onAsk },
    field("Question", question), h("div", { class: "row" }, h("button", { type: "submit" }, "Ask"),
      h("button", { type: "button", class: "secondary", onclick: newSession }, "New conversation")), status.el);
  const conversation = h("div", { class: "kb-answers", "aria-live": "polite" });
  const source = h("aside", { class: "source card", id: "kb-source", tabindex: "-1", "aria-labelledby": "kb-source-title", hidden: true });
  const buildBar = h("progress", { max: "1", value: "0", "aria-label": "Build progress" });
  const buildNote = h("p", { class: "note" });
  const build = h("div", { class: "kb-build", role: "status", hidden: true }, buildBar, buildNote);

  fill(section,
    h("h1", { id: "kb-title" }, "Knowledge"),
    h("div", { class: "layout" },
      h("aside", { class: "side" }, field("Knowledge base", kb), build, field("Model", model), mode, filterBox),
      h("div", { class: "main-col" }, form, conversation, source)));
  els = { section, kb, model, filters, filterBox, question, status, conversation, source, form, build, buildBar, buildNote };
}

function radio(name, value, label, checked = false) {
  const input = h("input", { type: "radio", name, value, checked });
  input.id = `${name}-${value}`;
  return h("div", { class: "check" }, input, h("label", { for: input.id }, label));
}

export async function show() {
  try {
    const [list, models] = await Promise.all([api("/v1/knowledge-bases"), listModels()]);
    kbs = list.data || [];
    const chosenKb = els.kb.value;
    const chosenModel = els.model.value;
    fill(els.kb, kbs.map((k) => h("option", { value: k.name }, `${k.name}${syncNote(k)}`)));
    fill(els.model, models.map((m) => h("option", { value: m.id }, `${m.id}${m.random ? " — random weights" : ""}`)));
    if (kbs.some((k) => k.name === chosenKb)) els.kb.value = chosenKb;
    if (models.some((m) => m.id === chosenModel)) els.model.value = chosenModel;
    if (!kbs.length) els.status.error("There are no knowledge bases yet. Create one on the Admin page.");
    onKbChange();
  } catch (err) {
    els.status.error(err.message);
  }
}

function syncNote(kb) {
  const job = kb.last_sync;
  if (!job) return " (not synced)";
  if (kb.state === "building") return " (building)";
  if (job.status === "succeeded") return "";
  return ` (sync ${job.status})`;
}

/** The chosen knowledge base's build: a bar and what answers use meanwhile; polls while it runs. */
function showBuild() {
  clearTimeout(pollTimer);
  const kb = kbs.find((k) => k.name === els.kb.value);
  const job = kb && kb.last_sync;
  const building = Boolean(job && BUILDING.has(kb.state));
  els.build.hidden = !building && !(kb && kb.state === "failed");
  els.buildBar.hidden = !building;
  if (building) {
    const { done, total, eta_seconds: eta } = job.progress;
    els.buildBar.value = total ? done / total : 0;
    const count = `${done.toLocaleString("en-US")} of ${total ? total.toLocaleString("en-US") : "?"} embedded`;
    const uses = kb.state === "building" ? "answers use what has landed" : "answers use the previous version until it finishes";
    els.buildNote.textContent = `${count}; ${uses}${eta ? ` (about ${duration(eta)} left)` : ""}.`;
    pollTimer = setTimeout(refreshBuild, POLL_MS);
  } else if (kb && kb.state === "failed") {
    els.buildNote.textContent = `The last sync failed: ${job.error || "no reason given"}. Answers use what was committed before it.`;
  }
}

/** Re-read the knowledge bases while the page is open; keeps the conversation and the choices. */
async function refreshBuild() {
  if (els.section.hidden) return; // show() starts again when the page comes back
  try {
    kbs = (await api("/v1/knowledge-bases")).data || [];
    for (const option of els.kb.options) {
      const kb = kbs.find((k) => k.name === option.value);
      if (kb) option.textContent = `${kb.name}${syncNote(kb)}`;
    }
  } catch (err) {
    els.buildNote.textContent = `Could not refresh the build progress: ${err.message}`;
  }
  showBuild();
}

function duration(seconds) {
  if (seconds < 90) return `${Math.max(1, Math.round(seconds))} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

/** Show only the filter controls whose metadata field the knowledge base has. */
function onKbChange() {
  const kb = kbs.find((k) => k.name === els.kb.value);
  const schema = (kb && kb.config && kb.config.metadata_schema) || {};
  const show = { yearFrom: "year" in schema, yearTo: "year" in schema, genre: "genres" in schema, rating: "rating" in schema };
  for (const [key, visible] of Object.entries(show)) els.filters[key].closest(".field").hidden = !visible;
  els.filterBox.hidden = !Object.values(show).some(Boolean);
  showBuild();
  newSession();
}

/** The Bedrock RetrievalFilter for the filled-in controls, or undefined. */
function buildFilter() {
  const f = els.filters;
  const parts = [];
  const num = (input) => (input.closest(".field").hidden || input.value === "" ? null : Number(input.value));
  if (num(f.yearFrom) !== null) parts.push({ greaterThanOrEquals: { key: "year", value: num(f.yearFrom) } });
  if (num(f.yearTo) !== null) parts.push({ lessThanOrEquals: { key: "year", value: num(f.yearTo) } });
  if (!f.genre.closest(".field").hidden && f.genre.value.trim()) {
    parts.push({ listContains: { key: "genres", value: f.genre.value.trim() } });
  }
  if (num(f.rating) !== null) parts.push({ greaterThanOrEquals: { key: "rating", value: num(f.rating) } });
  if (!parts.length) return undefined;
  return parts.length === 1 ? parts[0] : { andAll: parts };
}

function newSession() {
  sessionId = null;
  sources = [];
  fill(els.conversation);
  els.source.hidden = true;
}

async function onAsk(event) {
  event.preventDefault();
  const question = els.question.value.trim();
  if (!question || !els.kb.value) return;
  const retrieveOnly = document.getElementById("mode-retrieve").checked;
  els.status.busy(retrieveOnly ? "Searching…" : "Thinking…");
  try {
    if (retrieveOnly) await retrieve(question);
    else await ask(question);
    els.question.value = "";
    els.status.clear();
  } catch (err) {
    els.status.error(err.message);
  }
}

async function retrieve(question) {
  const body = { query: question, numberOfResults: 10, filter: buildFilter() };
  const data = await api(`/v1/knowledge-bases/${encodeURIComponent(els.kb.value)}/retrieve`, { method: "POST", body });
  const results = data.results || [];
  const items = results.map((r, i) => h("li", { class: "record" },
    h("h3", {}, `${i + 1}. ${(r.metadata && r.metadata.title) || locationText(r.location) || "Record"}`),
    h("p", { class: "score" }, `Score ${Number(r.score).toFixed(3)}`),
    h("p", {}, r.content.text),
    metadataList(r.metadata)));
  els.conversation.prepend(h("section", { class: "turn card", "aria-label": `Records for: ${question}` },
    h("h2", {}, `Records for “${question}”`),
    results.length ? h("ol", { class: "records" }, items) : h("p", {}, "No records match.")));
}

async function ask(question) {
  const body = {
    input: { text: question },
    knowledgeBaseId: els.kb.value,
    model: els.model.value,
    retrievalConfiguration: { numberOfResults: 5 },
  };
  if (sessionId) body.sessionId = sessionId;
  const filter = buildFilter();
  if (filter) body.filter = filter;
  const data = await api("/v1/retrieve-and-generate", { method: "POST", body });
  sessionId = data.sessionId;
  const note = data.guardrail && data.guardrail.action === "GUARDRAIL_INTERVENED"
    ? h("p", { class: "note error" }, explainGuardrail(data.guardrail, data.output.text)) : null;
  const turn = h("section", { class: "turn card", "aria-label": `Answer to: ${question}` },
    h("h2", { class: "question" }, question),
    h("p", { class: "answer" }, withCitations(data.output.text, data.citations || [])),
    note);
  els.conversation.append(turn);
}

/** The answer text with a numbered, clickable marker after each cited span. */
function withCitations(text, citations) {
  const parts = [];
  let at = 0;
  const spans = citations
    .map((c) => ({ c, span: c.generatedResponsePart.textResponsePart.span }))
    .sort((a, b) => a.span.end - b.span.end);
  for (const { c, span } of spans) {
    const end = Math.min(Math.max(span.end, at), text.length);
    parts.push(text.slice(at, end));
    at = end;
    for (const ref of c.retrievedReferences || []) parts.push(citationButton(ref));
  }
  parts.push(text.slice(at));
  return parts;
}

function citationButton(ref) {
  let n = sources.findIndex((s) => s.content.text === ref.content.text) + 1;
  if (!n) {
    sources.push(ref);
    n = sources.length;
  }
  const title = (ref.metadata && ref.metadata.title) || "source";
  return h("button", { type: "button", class: "cite", "aria-label": `Source ${n}: ${title}`,
    "aria-controls": "kb-source", onclick: () => showSource(n) }, `[${n}]`);
}

function showSource(n) {
  const ref = sources[n - 1];
  fill(els.source,
    h("div", { class: "row between" },
      h("h2", { id: "kb-source-title" }, `Source ${n}${ref.metadata && ref.metadata.title ? `: ${ref.metadata.title}` : ""}`),
      h("button", { type: "button", class: "small secondary", onclick: () => { els.source.hidden = true; } }, "Close")),
    h("blockquote", { class: "source-text" }, ref.content.text),
    metadataList(ref.metadata),
    locationText(ref.location) ? h("p", {}, "Location: ", locationLink(ref.location)) : null);
  els.source.hidden = false;
  els.source.focus();
}

function metadataList(metadata) {
  const entries = Object.entries(metadata || {}).filter(([k]) => !k.startsWith("x-") && k !== "url");
  if (!entries.length) return null;
  return h("dl", { class: "metadata" }, entries.map(([k, v]) =>
    [h("dt", {}, k), h("dd", {}, Array.isArray(v) ? v.join(", ") : String(v))]));
}

function locationText(location) {
  if (!location) return "";
  return location.uri || location.url || (location.s3Location && location.s3Location.uri)
    || (location.webLocation && location.webLocation.url) || "";
}

function locationLink(location) {
  const text = locationText(location);
  return /^https?:\/\//.test(text) ? h("a", { href: text, rel: "noopener noreferrer", target: "_blank" }, text) : text;
}
