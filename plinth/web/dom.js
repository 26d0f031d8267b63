// Small DOM helpers shared by the pages: building elements without innerHTML (so server text is never
// parsed as markup), labelled form fields, tables, copy buttons.

/** h("button", {type: "button", onclick: f}, "Text", child) -> element. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let ids = 0;
/** A unique id for label/for pairs. */
export function uid(prefix = "f") {
  ids += 1;
  return `${prefix}-${ids}`;
}

/** A labelled control: field("Temperature", h("input", {...})) -> div with label + control. */
export function field(label, control, hint) {
  control.id ||= uid();
  const hintEl = hint ? h("small", { id: `${control.id}-hint`, class: "hint" }, hint) : null;
  if (hintEl) control.setAttribute("aria-describedby", hintEl.id);
  return h("div", { class: "field" }, h("label", { for: control.id }, label), control, hintEl);
}

/** A <select> from [value, text] pairs (or plain strings). */
export function select(options, attrs = {}) {
  return h("select", attrs, options.map((o) => {
    const [value, text] = Array.isArray(o) ? o : [o, o];
    return h("option", { value }, text);
  }));
}

/** A button that copies text() to the clipboard and says so (for screen readers too). */
export function copyButton(text, label = "Copy") {
  const button = h("button", { type: "button", class: "small secondary", "aria-label": label }, "Copy");
  button.addEventListener("click", async () => {
    try {
      await copyText(text());
      button.textContent = "Copied";
    } catch {
      button.textContent = "Copy failed";
    }
    setTimeout(() => { button.textContent = "Copy"; }, 1500);
  });
  return button;
}

async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
  const area = h("textarea", { class: "offscreen", "aria-hidden": "true" });
  area.value = text;
  document.body.append(area);
  area.select();
  const ok = document.execCommand("copy");
  area.remove();
  if (!ok) throw new Error("copy refused");
}

/** A plain table: table(["a", "b"], [[1, 2]]). */
export function table(columns, rows, caption) {
  return h("div", { class: "table-wrap" }, h("table", {},
    caption ? h("caption", {}, caption) : null,
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((v) => h("td", {}, v))))),
  ));
}

/** A status line under a form: busy, ok or error, announced politely. */
export function statusLine() {
  const el = h("p", { class: "status", role: "status", "aria-live": "polite" });
  return {
    el,
    busy(text) { el.className = "status busy"; el.textContent = text; },
    ok(text) { el.className = "status ok"; el.textContent = text; },
    error(text) { el.className = "status error"; el.textContent = text; },
    clear() { el.className = "status"; el.textContent = ""; },
  };
}

/** Seconds since the epoch -> a short local date and time. */
export function when(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleString() : "";
}
