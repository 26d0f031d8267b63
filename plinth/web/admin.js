// Admin: adapters (register from a server path, an uploaded .tar.gz or a hub id; list; delete), knowledge
// bases (create, add a source, sync with a live progress bar and the report), datasets, guardrails (see
// guardrails.js) and, for admin keys, API keys.

import { api, listModels, session } from "./api.js";
import { copyButton, field, fill, h, select, statusLine, table, when } from "./dom.js";
import * as guardrails from "./guardrails.js";

let els = null;

export function mount(section) {
  section.dataset.title = "Admin";
  const parts = [
    ["adapters", "Adapters", adaptersCard()],
    ["kbs", "Knowledge bases", kbCard()],
    ["datasets", "Datasets", datasetsCard()],
    ["guardrails", "Guardrails", guardrails.card()],
  ];
  if (session.me && session.me.is_admin) parts.push(["keys", "API keys", keysCard()]);
  fill(section,
    h("h1", { id: "admin-title" }, "Admin"),
    h("nav", { class: "subnav", "aria-label": "Admin sections" },
      parts.map(([id, label]) => h("a", { href: `#/admin/${id}`, onclick: (e) => jump(e, id) }, label))),
    parts.map(([id, label, body]) => h("section", { class: "card", id: `admin-${id}`, tabindex: "-1", "aria-label": label }, body)));
}

function jump(event, id) {
  event.preventDefault();
  const target = document.getElementById(`admin-${id}`);
  target.scrollIntoView({ block: "start" });
  target.focus();
}

export function show() {
  refreshAdapters();
  refreshKbs();
  refreshDatasets();
  guardrails.refresh();
  if (session.me && session.me.is_admin) refreshKeys();
}

// --- adapters --------------------------------------------------------------------------------------------

function adaptersCard() {
  const source = h("input", { type: "text", name: "source", autocomplete: "off", placeholder: "/srv/adapters/sql-lora or org/sql-lora" });
  const file = h("input", { type: "file", name: "file", accept: ".tar.gz,.tgz,application/gzip" });
  const name = h("input", { type: "text", name: "name", autocomplete: "off", pattern: "[A-Za-z0-9._\\-]{1,64}" });
  const base = h("select", { name: "base_model" }, h("option", { value: "" }, "Any that fits"));
  const isPublic = h("input", { type: "checkbox", name: "public", id: "adapter-public" });
  const status = statusLine();
  const list = h("div", { "aria-live": "polite" });
  const admin = session.me && session.me.is_admin;
  const form = h("form", { onsubmit: (e) => registerAdapter(e) },
    field("Source: a server path, a Hugging Face hub id, or a URL (s3://…, file://…)", source,
      admin ? "Paths are read on the server's machine and must be absolute." : "Give a hub id, or upload an archive below."),
    field("Or upload a .tar.gz", file),
    h("div", { class: "grid2" }, field("Name (optional)", name), field("Base model", base)),
    admin ? h("div", { class: "check" }, isPublic, h("label", { for: "adapter-public" }, "Public (every tenant can use it)")) : null,
    h("button", { type: "submit" }, "Register adapter"), status.el);
  els = { ...els, adapter: { source, file, name, base, isPublic, status, list } };
  return [h("h2", {}, "Adapters"), form, h("h3", {}, "Registered adapters"), list];
}

async function refreshAdapters() {
  const a = els.adapter;
  try {
    const [data, models] = await Promise.all([api("/v1/adapters"), listModels()]);
    const chosen = a.base.value;
    fill(a.base, h("option", { value: "" }, "Any that fits"),
      models.filter((m) => !m.adapter).map((m) => h("option", { value: m.id }, m.id)));
    a.base.value = chosen;
    const rows = (data.data || []).map((ad) => [ad.name, ad.base_model, ad.owned_by, String(ad.rank ?? ""),
      stateText(ad.status), h("button", { type: "button", class: "small danger", "aria-label": `Delete adapter ${ad.name}`,
        onclick: () => deleteAdapter(ad.name) }, "Delete")]);
    fill(a.list, rows.length ? table(["Name", "Base model", "Owner", "Rank", "State", ""], rows, "Adapters")
      : h("p", {}, "No adapters yet."));
  } catch (err) {
    a.status.error(err.message);
  }
}

function stateText(status) {
  return { resident: "resident (in a compute slot)", cached: "cached (in host memory)", disk: "on disk" }[status] || status || "";
}

async function registerAdapter(event) {
  event.preventDefault();
  const a = els.adapter;
  const upload = a.file.files && a.file.files[0];
  if (!upload && !a.source.value.trim()) return a.status.error("Give a source path or hub id, or choose a .tar.gz to upload.");
  a.status.busy("Registering…");
  try {
    let data;
    if (upload) {
      const form = new FormData();
      form.append("file", upload);
      if (a.name.value.trim()) form.append("name", a.name.value.trim());
      if (a.base.value) form.append("base_model", a.base.value);
      if (a.isPublic.checked) form.append("public", "true");
      data = await api("/v1/adapters", { method: "POST", form });
    } else {
      const body = { source: a.source.value.trim(), public: a.isPublic.checked };
      if (a.name.value.trim()) body.name = a.name.value.trim();
      if (a.base.value) body.base_model = a.base.value;
      data = await api("/v1/adapters", { method: "POST", body });
    }
    const names = (data.data || []).map((ad) => ad.name).join(", ");
    a.status.ok(`Registered: ${names}.`);
    a.source.value = "";
    a.name.value = "";
    a.file.value = "";
    refreshAdapters();
  } catch (err) {
    a.status.error(err.message);
  }
}

async function deleteAdapter(name) {
  const a = els.adapter;
  if (!window.confirm(`Delete the adapter "${name}"? Requests already running finish; new ones are refused.`)) return;
  try {
    await api(`/v1/adapters/${encodeURIComponent(name)}`, { method: "DELETE" });
    a.status.ok(`Deleted ${name}.`);
    refreshAdapters();
  } catch (err) {
    a.status.error(err.message);
  }
}

// --- knowledge bases -------------------------------------------------------------------------------------

function kbCard() {
  const name = h("input", { type: "text", name: "kb_name", required: true, autocomplete: "off" });
  const chunking = select([["fixed", "Fixed size"], ["none", "None (one chunk per document)"],
    ["hierarchical", "Hierarchical"], ["semantic", "Semantic"]], { name: "chunking" });
  const status = statusLine();
  const list = h("div", { "aria-live": "polite" });
  const kb = h("select", { name: "source_kb" });
  const type = select([["files", "Files (a folder, file or glob)"], ["records", "Records (JSONL, CSV or JSON)"]], { name: "source_type" });
  const path = h("input", { type: "text", name: "source_path", required: true, autocomplete: "off", placeholder: "/srv/handbook" });
  const textFields = h("input", { type: "text", name: "text_fields", placeholder: "question, answer" });
  const metaFields = h("input", { type: "text", name: "metadata_fields", placeholder: "product, lang" });
  const idField = h("input", { type: "text", name: "id_field", placeholder: "id" });
  const sourceStatus = statusLine();
  const sync = h("div", { class: "sync", "aria-live": "polite" });
  els = { ...els, kb: { name, chunking, status, list, kb, type, path, textFields, metaFields, idField, sourceStatus, sync } };
  return [
    h("h2", {}, "Knowledge bases"),
    h("form", { onsubmit: createKb, class: "row wrap end" },
      field("New knowledge base name", name), field("Chunking", chunking), h("button", { type: "submit" }, "Create")),
    status.el,
    list,
    h("h3", {}, "Add a source"),
    h("form", { onsubmit: addSource },
      h("div", { class: "grid2" }, field("Knowledge base", kb), field("Source type", type)),
      field("Path on the server", path, "Absolute; read on the server's machine (admin keys only)."),
      h("div", { class: "grid2" }, field("Text fields (records)", textFields), field("Metadata fields (records)", metaFields)),
      field("Id field (records)", idField),
      h("button", { type: "submit" }, "Add source"), sourceStatus.el),
    sync,
  ];
}

async function refreshKbs() {
  const k = els.kb;
  try {
    const data = await api("/v1/knowledge-bases");
    const kbs = data.data || [];
    const chosen = k.kb.value;
    fill(k.kb, kbs.map((x) => h("option", { value: x.name }, x.name)));
    if (kbs.some((x) => x.name === chosen)) k.kb.value = chosen;
    const rows = kbs.map((x) => [x.name, (x.config.sources || []).length, syncText(x.last_sync),
      h("div", { class: "row" },
        h("button", { type: "button", class: "small", "aria-label": `Sync ${x.name}`, onclick: () => startSync(x.name) }, "Sync"),
        h("button", { type: "button", class: "small danger", "aria-label": `Delete knowledge base ${x.name}`,
          onclick: () => deleteKb(x.name) }, "Delete"))]);
    fill(k.list, rows.length ? table(["Name", "Sources", "Last sync", ""], rows, "Knowledge bases") : h("p", {}, "No knowledge bases yet."));
  } catch (err) {
    k.status.error(err.message);
  }
}

function syncText(job) {
  if (!job) return "never";
  const r = job.report;
  if (job.status === "succeeded" && r) return `succeeded ${when(job.finished)}: ${r.added} added, ${r.changed} changed, ${r.deleted} deleted`;
  if (job.status === "failed") return `failed: ${job.error || (r && r.error) || "unknown error"}`;
  return `${job.status} (${job.progress.done}/${job.progress.total || "?"})`;
}

async function createKb(event) {
  event.preventDefault();
  const k = els.kb;
  k.status.busy("Creating…");
  try {
    await api("/v1/knowledge-bases", { method: "POST", body: { name: k.name.value.trim(), chunking: { strategy: k.chunking.value } } });
    const created = k.name.value.trim();
    k.name.value = "";
    await refreshKbs(); // the new base is picked in the source form before the page says it exists
    k.kb.value = created;
    k.status.ok(`Created ${created}. Add a source, then sync it.`);
  } catch (err) {
    k.status.error(err.message);
  }
}

async function addSource(event) {
  event.preventDefault();
  const k = els.kb;
  const list = (input) => input.value.split(",").map((s) => s.trim()).filter(Boolean);
  const body = { type: k.type.value, path: k.path.value.trim() };
  if (k.type.value === "records") {
    if (list(k.textFields).length) body.text_fields = list(k.textFields);
    if (list(k.metaFields).length) body.metadata_fields = list(k.metaFields);
    if (k.idField.value.trim()) body.id_field = k.idField.value.trim();
  }
  k.sourceStatus.busy("Adding…");
  try {
    await api(`/v1/knowledge-bases/${encodeURIComponent(k.kb.value)}/sources`, { method: "POST", body });
    k.sourceStatus.ok(`Added to ${k.kb.value}. Sync it to make the documents searchable.`);
    refreshKbs();
  } catch (err) {
    k.sourceStatus.error(err.message);
  }
}

async function startSync(name) {
  const k = els.kb;
  const bar = h("progress", { max: "1", value: "0", "aria-label": `Sync progress of ${name}` });
  const line = h("p", {}, "Starting…");
  const report = h("div");
  fill(k.sync, h("h3", {}, `Sync of ${name}`), bar, line, report);
  try {
    let job = await api(`/v1/knowledge-bases/${encodeURIComponent(name)}/sync`, { method: "POST" });
    while (job.status === "queued" || job.status === "running") {
      const { done, total } = job.progress;
      if (total) { bar.max = total; bar.value = done; }
      line.textContent = `${job.status === "queued" ? "Waiting to start" : "Syncing"}: ${done} of ${total || "?"} documents`;
      await new Promise((r) => { setTimeout(r, 400); });
      job = await api(`/v1/knowledge-bases/${encodeURIComponent(name)}/jobs/${encodeURIComponent(job.id)}`);
    }
    bar.max = 1;
    bar.value = 1;
    line.textContent = job.status === "succeeded" ? "Sync finished." : `Sync failed: ${job.error || "unknown error"}`;
    line.className = job.status === "succeeded" ? "status ok" : "status error";
    fill(report, reportView(job.report));
  } catch (err) {
    line.textContent = err.message;
    line.className = "status error";
  }
  refreshKbs();
}

function reportView(r) {
  if (!r) return null;
  const counts = table(["Added", "Changed", "Deleted", "Unchanged", "Chunks written"],
    [[r.added, r.changed, r.deleted, r.unchanged, r.chunks]].map((row) => row.map((v) => String(v ?? 0))), "Sync report");
  const skipped = (r.skipped || []);
  return [counts, skipped.length ? [h("h4", {}, `Skipped (${skipped.length})`),
    h("ul", { class: "skipped" }, skipped.slice(0, 100).map((s) => h("li", {}, `${s.path}: ${s.reason}`)))] : null];
}

async function deleteKb(name) {
  const k = els.kb;
  if (!window.confirm(`Delete the knowledge base "${name}" and its index?`)) return;
  try {
    await api(`/v1/knowledge-bases/${encodeURIComponent(name)}`, { method: "DELETE" });
    k.status.ok(`Deleted ${name}.`);
    refreshKbs();
  } catch (err) {
    k.status.error(err.message);
  }
}

// --- datasets --------------------------------------------------------------------------------------------

function datasetsCard() {
  const name = h("input", { type: "text", name: "dataset_name", required: true, autocomplete: "off" });
  const path = h("input", { type: "text", name: "dataset_path", required: true, autocomplete: "off", placeholder: "/srv/cur/*.parquet" });
  const kind = select([["cur", "AWS CUR (legacy)"], ["cur2", "AWS CUR 2.0"], ["focus", "FOCUS"], ["custom", "Custom"]], { name: "dataset_kind" });
  const status = statusLine();
  const list = h("div", { "aria-live": "polite" });
  els = { ...els, ds: { name, path, kind, status, list } };
  return [h("h2", {}, "Datasets"),
    h("form", { onsubmit: registerDataset },
      h("div", { class: "grid2" }, field("Name", name), field("Kind", kind)),
      field("Path on the server (Parquet or CSV)", path), h("button", { type: "submit" }, "Register dataset"), status.el),
    list];
}

async function refreshDatasets() {
  const d = els.ds;
  try {
    const data = await api("/v1/sql/datasets");
    const rows = (data.data || data.datasets || []).map((x) => [x.name, x.kind || "", tablesText(x.tables),
      h("button", { type: "button", class: "small danger", "aria-label": `Delete dataset ${x.name}`, onclick: () => deleteDataset(x.name) }, "Delete")]);
    fill(d.list, rows.length ? table(["Name", "Kind", "Tables", ""], rows, "Datasets") : h("p", {}, "No datasets yet."));
  } catch (err) {
    d.status.error(err.message);
  }
}

function tablesText(tables) {
  if (!tables) return "";
  return Array.isArray(tables) ? tables.map((t) => (typeof t === "string" ? t : t.name)).join(", ") : Object.keys(tables).join(", ");
}

async function registerDataset(event) {
  event.preventDefault();
  const d = els.ds;
  d.status.busy("Registering…");
  try {
    await api("/v1/sql/datasets", { method: "POST", body: { name: d.name.value.trim(), path: d.path.value.trim(), kind: d.kind.value } });
    d.status.ok(`Registered ${d.name.value.trim()}.`);
    d.name.value = "";
    d.path.value = "";
    refreshDatasets();
  } catch (err) {
    d.status.error(err.message);
  }
}

async function deleteDataset(name) {
  const d = els.ds;
  if (!window.confirm(`Remove the dataset "${name}"? Its files are not deleted.`)) return;
  try {
    await api(`/v1/sql/datasets/${encodeURIComponent(name)}`, { method: "DELETE" });
    d.status.ok(`Removed ${name}.`);
    refreshDatasets();
  } catch (err) {
    d.status.error(err.message);
  }
}

// --- API keys (admin keys only) --------------------------------------------------------------------------

function keysCard() {
  const tenant = h("input", { type: "text", name: "key_tenant", required: true, autocomplete: "off", pattern: "[a-z0-9_\\-]{1,64}" });
  const admin = h("input", { type: "checkbox", name: "key_admin", id: "key-admin" });
  const status = statusLine();
  const created = h("div", { "aria-live": "polite" });
  const list = h("div");
  els = { ...els, keys: { tenant, admin, status, created, list } };
  return [h("h2", {}, "API keys"),
    h("form", { onsubmit: createKey, class: "row wrap end" },
      field("Tenant", tenant, "Lowercase letters, digits, - and _; created if new."),
      h("div", { class: "check" }, admin, h("label", { for: "key-admin" }, "Admin key")),
      h("button", { type: "submit" }, "Create key")),
    status.el, created, list];
}

async function refreshKeys() {
  const k = els.keys;
  try {
    const data = await api("/v1/admin/keys");
    const rows = (data.data || []).map((x) => [x.prefix, x.tenant, x.admin ? "yes" : "no", when(x.created),
      x.active ? "active" : `revoked ${when(x.revoked)}`,
      x.active ? h("button", { type: "button", class: "small danger", "aria-label": `Revoke key ${x.prefix}`,
        onclick: () => revokeKey(x.prefix) }, "Revoke") : ""]);
    fill(k.list, table(["Prefix", "Tenant", "Admin", "Created", "State", ""], rows, "API keys"));
  } catch (err) {
    k.status.error(err.message);
  }
}

async function createKey(event) {
  event.preventDefault();
  const k = els.keys;
  try {
    const data = await api("/v1/admin/keys", { method: "POST", body: { tenant: k.tenant.value.trim(), admin: k.admin.checked } });
    k.status.ok(`Created a key for ${data.tenant}. Copy it now: it is not shown again.`);
    fill(k.created, h("div", { class: "row" }, h("code", { class: "secret" }, data.key), copyButton(() => data.key, "Copy the new key")));
    k.tenant.value = "";
    refreshKeys();
  } catch (err) {
    k.status.error(err.message);
  }
}

async function revokeKey(prefix) {
  const k = els.keys;
  if (!window.confirm(`Revoke the key ${prefix}…? Clients using it stop working at once.`)) return;
  try {
    await api(`/v1/admin/keys/${encodeURIComponent(prefix)}`, { method: "DELETE" });
    k.status.ok(`Revoked ${prefix}.`);
    refreshKeys();
  } catch (err) {
    k.status.error(err.message);
  }
}
