// Read-only views of SQL results: highlighted SQL, a sortable paginated table, and a Vega-Lite chart drawn by
// the vendored vega-embed (loaded on first use, so pages without charts never parse ~800 kB of script).

import { copyButton, fill, h } from "./dom.js";

const KEYWORDS = new Set(("select from where group by order having limit offset join left right inner outer full "
  + "cross on as and or not in is null like ilike between case when then else end distinct union all with "
  + "asc desc over partition date interval cast true false exists sum count avg min max coalesce round "
  + "date_trunc extract year month day").split(" "));
const TOKEN = /(--[^\n]*|\/\*[\s\S]*?\*\/)|('(?:[^']|'')*')|("(?:[^"]|"")*")|(\b\d+(?:\.\d+)?\b)|([A-Za-z_][A-Za-z0-9_]*)|(\s+|.)/g;

/** SQL as spans classed kw / str / num / com (the highlighting; the text itself is never parsed as HTML). */
export function highlightSql(sql) {
  const out = [];
  for (const m of sql.matchAll(TOKEN)) {
    const [text, comment, str, ident, num, word] = m;
    if (comment) out.push(h("span", { class: "com" }, text));
    else if (str) out.push(h("span", { class: "str" }, text));
    else if (ident) out.push(text);
    else if (num) out.push(h("span", { class: "num" }, text));
    else if (word && KEYWORDS.has(word.toLowerCase())) out.push(h("span", { class: "kw" }, text));
    else out.push(text);
  }
  return out;
}

/** A titled SQL block with a copy button. */
export function sqlBlock(sql, title = "Generated SQL") {
  return h("div", { class: "sql-block" },
    h("div", { class: "row between" }, h("h3", {}, title), copyButton(() => sql, "Copy the SQL")),
    h("pre", { class: "sql", tabindex: "0", "aria-label": title }, h("code", {}, highlightSql(sql))));
}

const PAGE_SIZE = 10;

/** A result table: click a column header to sort (again to reverse); Previous/Next page through rows. */
export function resultTable(columns, rows, caption = "Result") {
  const state = { sortBy: -1, desc: false, page: 0 };
  const box = h("div", { class: "result-table" });
  const draw = () => {
    const sorted = sortRows(rows, state.sortBy, state.desc);
    const pages = Math.max(1, Math.ceil(sorted.length / PAGE_SIZE));
    state.page = Math.min(state.page, pages - 1);
    const shown = sorted.slice(state.page * PAGE_SIZE, (state.page + 1) * PAGE_SIZE);
    const header = columns.map((c, i) => h("th", {
      scope: "col",
      "aria-sort": state.sortBy === i ? (state.desc ? "descending" : "ascending") : "none",
    }, h("button", { type: "button", class: "sort", onclick: () => {
      state.desc = state.sortBy === i ? !state.desc : false;
      state.sortBy = i;
      draw();
      box.querySelectorAll("th button")[i].focus();
    } }, c, h("span", { "aria-hidden": "true" }, state.sortBy === i ? (state.desc ? " ▼" : " ▲") : ""))));
    fill(box,
      h("div", { class: "table-wrap" }, h("table", {},
        h("caption", {}, `${caption}: ${rows.length} row${rows.length === 1 ? "" : "s"}`),
        h("thead", {}, h("tr", {}, header)),
        h("tbody", {}, shown.map((r) => h("tr", {}, r.map((v) => h("td", { class: typeof v === "number" ? "n" : "" }, format(v)))))))),
      pages > 1 ? h("nav", { class: "pager row", "aria-label": `${caption} pages` },
        h("button", { type: "button", class: "small secondary", disabled: state.page === 0,
          onclick: () => { state.page -= 1; draw(); } }, "Previous"),
        h("span", {}, `Page ${state.page + 1} of ${pages}`),
        h("button", { type: "button", class: "small secondary", disabled: state.page >= pages - 1,
          onclick: () => { state.page += 1; draw(); } }, "Next")) : null);
  };
  draw();
  return box;
}

function sortRows(rows, index, desc) {
  if (index < 0) return rows;
  const sign = desc ? -1 : 1;
  return [...rows].sort((a, b) => {
    const x = a[index];
    const y = b[index];
    if (x === y) return 0;
    if (x === null || x === undefined) return 1;
    if (y === null || y === undefined) return -1;
    return (typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y))) * sign;
  });
}

function format(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "number" && !Number.isInteger(value)) return value.toLocaleString(undefined, { maximumFractionDigits: 4 });
  return String(value);
}

/** Rows as lists whatever shape the server sent (lists, or objects keyed by column). */
export function rowLists(columns, rows) {
  return (rows || []).map((r) => (Array.isArray(r) ? r : columns.map((c) => r[c])));
}

/** Column names from strings or {name} objects. */
export function columnNames(columns) {
  return (columns || []).map((c) => (typeof c === "string" ? c : c.name));
}

let vegaLoading = null;

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = h("script", { src });
    script.onload = resolve;
    script.onerror = () => reject(new Error(`could not load ${src}`));
    document.head.append(script);
  });
}

/** window.vegaEmbed, loading vega, vega-lite then vega-embed (it expects the first two as globals). */
function loadVega() {
  vegaLoading ||= loadScript("/static/vendor/vega.min.js")
    .then(() => loadScript("/static/vendor/vega-lite.min.js"))
    .then(() => loadScript("/static/vendor/vega-embed.min.js"))
    .then(() => window.vegaEmbed);
  return vegaLoading;
}

/** A chart figure rendered from a Vega-Lite spec (SVG, so it scales and has a text alternative). */
export function chart(spec, title) {
  const target = h("div", { class: "chart-target" });
  const status = h("p", { class: "status", role: "status" }, "Drawing the chart…");
  const figure = h("figure", { class: "chart" }, target, h("figcaption", {}, title || spec.title || "Chart"), status);
  loadVega()
    .then((embed) => embed(target, { ...spec, width: "container", autosize: { type: "fit", contains: "padding" } },
      { renderer: "svg", actions: false }))
    .then((result) => {
      status.remove();
      const svg = target.querySelector("svg");
      if (svg) svg.setAttribute("aria-label", title || spec.description || "Chart of the result");
      figure.dataset.rendered = "true";
      return result;
    })
    .catch((err) => {
      status.className = "status error";
      status.textContent = `The chart could not be drawn (${err.message}); the table above has the same data.`;
    });
  return figure;
}
