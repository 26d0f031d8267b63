// Evaluations: upload an evaluation dataset (JSONL: input, reference?, contexts?, human_score?), start an
// evaluation from a JSON spec (targets, metrics, judge), watch its progress, read its metrics table and
// open its self-contained HTML report (fetched with the session's key, shown in a frame sandboxed without
// scripts: the report has none, and the server escapes every string in it).

import { api } from "./api.js";
import { field, fill, h, statusLine, table, when } from "./dom.js";

const ACTIVE = new Set(["validating_files", "queued", "running"]);
const POLL_MS = 3000;
const EXAMPLE = {
  name: "my evaluation",
  targets: [{ type: "model", model: "smollm2-135m-instruct", max_tokens: 128 }],
  metrics: ["exact_match", "contains", "token_f1", "rouge_l", "bleu"],
  judge: { model: "smollm2-135m-instruct", criteria: ["correctness", "relevance"], sampling_rate: 1.0 },
};
let els = null;
let selected = null;
let timer = null;

export function mount(section) {
  section.dataset.title = "Evaluations";
  const file = h("input", { type: "file", name: "file", accept: ".jsonl,application/jsonl", required: true });
  const dataset = h("select", { name: "dataset", required: true });
  const spec = h("textarea", { name: "spec", rows: 12, spellcheck: "false" }, JSON.stringify(EXAMPLE, null, 2));
  const uploadStatus = statusLine();
  const createStatus = statusLine();
  const list = h("ol", { class: "history", "aria-label": "Evaluations" });
  const detail = h("div", { class: "job-detail", "aria-live": "polite" });
  fill(section,
    h("h1", { id: "evals-title" }, "Evaluations"),
    h("p", { class: "note" }, "Run a dataset against a model, an adapter, a knowledge base's retrieve-and-generate "
      + "or a SQL dataset's ask loop; score it with text metrics and an LLM judge; compare two targets."),
    h("div", { class: "layout" },
      h("aside", { class: "side" }, h("h2", {}, "Evaluations"), list),
      h("div", { class: "main-col" },
        h("form", { class: "card", onsubmit: onUpload },
          h("h2", {}, "1. Upload a dataset"), field("JSONL file", file),
          h("button", { type: "submit" }, "Upload"), uploadStatus.el),
        h("form", { class: "card", onsubmit: onCreate },
          h("h2", {}, "2. Start an evaluation"), field("Dataset", dataset),
          field("Spec (JSON)", spec, "targets, metrics, judge; the dataset above is filled in."),
          h("button", { type: "submit" }, "Start evaluation"), createStatus.el),
        detail)));
  els = { file, dataset, spec, uploadStatus, createStatus, list, detail };
}

export async function show() {
  try {
    const files = await api("/v1/files?purpose=evals");
    fill(els.dataset, files.data.map((f) => h("option", { value: f.id }, `${f.filename} (${f.id})`)));
  } catch (err) {
    els.createStatus.error(err.message);
  }
  await refresh();
}

async function onUpload(event) {
  event.preventDefault();
  const chosen = els.file.files[0];
  if (!chosen) return;
  const form = new FormData();
  form.append("purpose", "evals");
  form.append("file", chosen, chosen.name);
  els.uploadStatus.busy("Uploading and checking the file…");
  try {
    const uploaded = await api("/v1/files", { method: "POST", form });
    await show(); // the new file joins the picker before the page says it is there
    els.dataset.value = uploaded.id;
    els.uploadStatus.ok(`Uploaded ${uploaded.filename} as ${uploaded.id}.`);
  } catch (err) {
    els.uploadStatus.error(err.message);
  }
}

async function onCreate(event) {
  event.preventDefault();
  let body;
  try {
    body = { ...JSON.parse(els.spec.value), dataset: els.dataset.value };
  } catch (err) {
    return els.createStatus.error(`The spec is not valid JSON: ${err.message}`);
  }
  els.createStatus.busy("Creating the evaluation…");
  try {
    const created = await api("/v1/evaluations", { method: "POST", body });
    els.createStatus.ok(`Evaluation ${created.id} created.`);
    selected = created.id;
    await refresh();
  } catch (err) {
    els.createStatus.error(err.message);
  }
}

async function refresh() {
  clearTimeout(timer);
  let list;
  try {
    list = await api("/v1/evaluations?limit=50");
  } catch (err) { // a failed poll (a restart, a blip) is retried while the page is open, not given up
    els.createStatus.error(err.message);
    if (document.getElementById("page-evals").hidden === false) timer = setTimeout(refresh, POLL_MS);
    return;
  }
  fill(els.list, list.data.length ? list.data.map((ev) => h("li", {},
    h("button", { type: "button", class: "link", onclick: () => { selected = ev.id; refresh(); } },
      `${ev.name || ev.id} · ${ev.status}`))) : h("li", { class: "empty" }, "No evaluations yet."));
  selected ||= list.data.length ? list.data[0].id : null;
  if (selected) render(list.data.find((ev) => ev.id === selected) || await api(`/v1/evaluations/${selected}`));
  if (list.data.some((ev) => ACTIVE.has(ev.status)) && document.getElementById("page-evals").hidden === false) {
    timer = setTimeout(refresh, POLL_MS);
  }
}

function render(ev) {
  const progress = ev.progress.total ? `${ev.progress.done} / ${ev.progress.total}` : `${ev.progress.done}`;
  const cancel = ACTIVE.has(ev.status)
    ? h("button", { type: "button", class: "secondary", onclick: () => onCancel(ev.id) }, "Cancel") : null;
  const report = h("div", { class: "report" });
  fill(els.detail, h("section", { class: "card", "aria-label": `Evaluation ${ev.id}` },
    h("h2", {}, ev.name || `Evaluation ${ev.id}`),
    table(["Status", "Targets", "Results", "Created"], [[ev.status, ev.targets.join(" vs "), progress, when(ev.created_at)]]),
    ev.error ? h("p", { class: "error" }, `Failed: ${ev.error.message}`) : null,
    cancel,
    ev.summary ? metricsTable(ev.summary) : null,
    ev.comparison ? comparisonTable(ev.comparison) : null,
    h("button", { type: "button", onclick: () => openReport(ev.id, report) }, "Open the HTML report"),
    report));
}

function metricsTable(summary) {
  const targets = Object.keys(summary);
  const names = [...new Set(targets.flatMap((t) => Object.keys(summary[t])))].sort();
  return table(["Metric", ...targets], names.map((n) => [n, ...targets.map((t) => fmt(summary[t][n]))]), "Metrics (means)");
}

function comparisonTable(rows) {
  return table(["Metric", "A", "B", "B − A", "95% CI"],
    rows.map((r) => [r.metric, fmt(r.a), fmt(r.b), fmt(r.diff), `[${fmt(r.ci_low)}, ${fmt(r.ci_high)}]`]),
    "Comparison (paired bootstrap)");
}

async function openReport(id, where) {
  try {
    const html = await api(`/v1/evaluations/${id}/report`);
    fill(where, h("iframe", { sandbox: "allow-same-origin", srcdoc: html, title: "Evaluation report", class: "report-frame" }));
  } catch (err) {
    fill(where, h("p", { class: "error" }, err.message));
  }
}

async function onCancel(id) {
  try {
    await api(`/v1/evaluations/${id}/cancel`, { method: "POST" });
  } catch (err) {
    els.createStatus.error(err.message);
  }
  await refresh();
}

function fmt(value) {
  return typeof value === "number" ? (Number.isInteger(value) ? String(value) : value.toFixed(3)) : (value ?? "—");
}
