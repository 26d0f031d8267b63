// Cost analyst: a question in plain words -> the generated SQL (highlighted, copyable) -> the result table
// (sortable, paginated) -> a chart from the server's Vega-Lite spec -> the one-line answer. Earlier
// questions stay in a history for this tab; the SQL editor runs vetted SQL directly.

import { api, explainGuardrail, listModels } from "./api.js";
import { field, fill, h, select, statusLine } from "./dom.js";
import { chart, columnNames, resultTable, rowLists, sqlBlock } from "./sqlview.js";

const STORE = "plinth.costHistory";
let els = null;
let history = load();

export function mount(section) {
  section.dataset.title = "Cost analyst";
  const dataset = h("select", { name: "dataset" });
  const model = h("select", { name: "model" });
  const question = h("textarea", { rows: 2, name: "question", required: true,
    placeholder: "Which five services cost the most last month?" });
  const askStatus = statusLine();
  const result = h("div", { class: "cost-result", "aria-live": "polite" });
  const historyList = h("ol", { class: "history", "aria-label": "Earlier questions" });
  const sql = h("textarea", { rows: 6, name: "sql", class: "mono", spellcheck: "false",
    placeholder: "SELECT service, SUM(cost) AS cost FROM cur GROUP BY service ORDER BY cost DESC" });
  const dialect = select([["duckdb", "DuckDB"], ["athena", "Athena / Trino"], ["spark", "Spark SQL"]], { name: "dialect" });
  const runStatus = statusLine();
  const runResult = h("div", { class: "cost-result", "aria-live": "polite" });

  fill(section,
    h("h1", { id: "cost-title" }, "Cost analyst"),
    h("p", { class: "note", id: "cost-model-note" },
      "Plain words: the built-in model, SmolLM2-135M-Instruct, is small and writes wrong or unrunnable SQL " +
      "for nearly every question on its own. The cost-sql adapter, fine-tuned for AWS CUR questions, is chosen " +
      "by default and answers most of them; it still gets some wrong, so check the SQL. Queries you write yourself, below, always run."),
    h("div", { class: "layout" },
      h("aside", { class: "side" }, field("Dataset", dataset), field("Model", model),
        h("h2", {}, "History"), historyList),
      h("div", { class: "main-col" },
        h("form", { onsubmit: onAsk },
          field("Question", question), h("button", { type: "submit" }, "Ask"), askStatus.el),
        result,
        h("details", { class: "card editor" }, h("summary", {}, "SQL editor"),
          h("form", { onsubmit: onRun },
            h("p", {}, "Runs one read-only query on the chosen dataset, after the same safety checks as generated SQL."),
            field("SQL", sql), field("Dialect", dialect), h("button", { type: "submit" }, "Run"), runStatus.el),
          runResult))));
  els = { dataset, model, question, askStatus, result, historyList, sql, dialect, runStatus, runResult };
  renderHistory();
}

export async function show() {
  try {
    const [datasets, models] = await Promise.all([api("/v1/sql/datasets"), listModels()]);
    const names = (datasets.data || datasets.datasets || []).map((d) => (typeof d === "string" ? d : d.name));
    const chosen = [els.dataset.value, els.model.value];
    fill(els.dataset, names.map((n) => h("option", { value: n }, n)));
    fill(els.model, models.map((m) => h("option", { value: m.id }, `${m.id}${m.random ? " — random weights" : ""}`)));
    if (names.includes(chosen[0])) els.dataset.value = chosen[0];
    if (models.some((m) => m.id === chosen[1])) els.model.value = chosen[1];
    else if (models.some((m) => m.id === "cost-sql")) els.model.value = "cost-sql"; // the SQL-tuned adapter
    if (!names.length) els.askStatus.error("There are no datasets yet. Register one on the Admin page.");
  } catch (err) {
    els.askStatus.error(err.message);
  }
}

async function onAsk(event) {
  event.preventDefault();
  const question = els.question.value.trim();
  if (!question) return;
  const body = { question, dataset: els.dataset.value, model: els.model.value };
  els.askStatus.busy("Writing and running the SQL…");
  fill(els.result);
  try {
    const data = await api("/v1/sql/ask", { method: "POST", body });
    els.askStatus.clear();
    const entry = { question, dataset: body.dataset, data };
    history = [entry, ...history.filter((e) => e.question !== question)].slice(0, 20);
    save();
    renderHistory();
    renderAnswer(entry);
  } catch (err) {
    els.askStatus.error(err.message);
    if (err.detail.attempts) fill(els.result, attemptsList(err.detail.attempts));
  }
}

/** Why no query worked: each SQL the model tried and what was wrong with it. */
function attemptsList(attempts) {
  return h("section", { class: "card" }, h("h2", {}, "What was tried"),
    h("ol", {}, attempts.map((a) => h("li", {},
      a.sql ? sqlBlock(a.sql, "Tried SQL") : null,
      h("p", { class: "note error" }, `${a.error || "failed"}${a.rule ? ` (rule: ${a.rule})` : ""}`)))));
}

function renderAnswer({ question, data }) {
  const columns = columnNames(data.columns);
  const rows = rowLists(columns, data.rows);
  // A guardrail that blocked the question or the result answers 200 with no columns and its message as
  // the answer; one that only masked a value or withheld an error message leaves a normal answer.
  const guarded = data.guardrail && data.guardrail.action === "GUARDRAIL_INTERVENED";
  const withheld = guarded && !columns.length;
  fill(els.result, h("section", { class: "card", "aria-label": `Answer to: ${question}` },
    h("h2", {}, question),
    data.answer && !withheld ? h("p", { class: "answer" }, data.answer) : null,
    guarded ? h("p", { class: "note error" }, explainGuardrail(data.guardrail, withheld ? data.answer : "")) : null,
    data.sql ? sqlBlock(data.sql) : null,
    data.sql ? h("div", { class: "row" }, h("button", { type: "button", class: "small secondary",
      onclick: () => openInEditor(data.sql) }, "Edit in the SQL editor")) : null,
    columns.length ? resultTable(columns, rows) : null,
    data.chart ? chart(data.chart, `Chart: ${question}`) : null,
    attemptsNote(data.attempts)));
}

function attemptsNote(attempts) {
  const n = Array.isArray(attempts) ? attempts.length : Number(attempts || 0);
  return n > 1 ? h("p", { class: "hint" }, `The SQL was repaired ${n - 1} time${n > 2 ? "s" : ""} before it ran.`) : null;
}

function openInEditor(sql) {
  els.sql.value = sql;
  const details = els.sql.closest("details");
  details.open = true;
  els.sql.focus();
}

async function onRun(event) {
  event.preventDefault();
  const sql = els.sql.value.trim();
  if (!sql) return;
  els.runStatus.busy("Running…");
  fill(els.runResult);
  try {
    const data = await api("/v1/sql/query", { method: "POST", body: { sql, dialect: els.dialect.value, dataset: els.dataset.value } });
    const columns = columnNames(data.columns);
    els.runStatus.ok(data.truncated ? "Done: the result was cut at the row limit." : "Done.");
    fill(els.runResult, data.sql && data.sql !== sql ? sqlBlock(data.sql, "SQL as run") : null,
      resultTable(columns, rowLists(columns, data.rows), "Query result"));
  } catch (err) {
    els.runStatus.error(err.code && err.status === 400 ? `${err.message} (rule: ${err.code})` : err.message);
  }
}

function renderHistory() {
  fill(els.historyList, history.length ? history.map((e) => h("li", {},
    h("button", { type: "button", class: "link", onclick: () => {
      els.question.value = e.question;
      renderAnswer(e);
    } }, e.question))) : h("li", { class: "empty" }, "No questions yet."));
}

function load() {
  try { return JSON.parse(sessionStorage.getItem(STORE)) || []; } catch { return []; }
}

function save() {
  try { sessionStorage.setItem(STORE, JSON.stringify(history)); } catch { /* full: keep it in memory only */ }
}
