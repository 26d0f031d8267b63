// Fine-tuning: upload a chat JSONL file, start a LoRA job on a served base model, watch its loss curve and
// events while it runs, cancel it. A job that succeeds registers its adapter, which then appears in the
// Chat and Cost analyst model pickers (they list /v1/models each time they are shown).

import { api, listModels } from "./api.js";
import { field, fill, h, statusLine, table, when } from "./dom.js";
import { chart } from "./sqlview.js";

const ACTIVE = new Set(["validating_files", "queued", "running"]);
const POLL_MS = 2000;
let els = null;
let selected = null; // the job id shown in the detail pane
let timer = null;

export function mount(section) {
  section.dataset.title = "Fine-tuning";
  const file = h("input", { type: "file", name: "file", accept: ".jsonl,application/jsonl", required: true });
  const uploadStatus = statusLine();
  const model = h("select", { name: "model", required: true });
  const training = h("select", { name: "training_file", required: true });
  const validation = h("select", { name: "validation_file" });
  const suffix = h("input", { name: "suffix", maxlength: 40, placeholder: "my-task" });
  const epochs = h("input", { name: "n_epochs", type: "number", min: 1, max: 50, placeholder: "auto" });
  const lr = h("input", { name: "learning_rate_multiplier", type: "number", min: 0.01, max: 10, step: 0.01, placeholder: "auto" });
  const rank = h("input", { name: "r", type: "number", min: 1, max: 256, value: 8 });
  const createStatus = statusLine();
  const jobs = h("ol", { class: "history", "aria-label": "Fine-tuning jobs" });
  const detail = h("div", { class: "job-detail", "aria-live": "polite" });

  fill(section,
    h("h1", { id: "tuning-title" }, "Fine-tuning"),
    h("p", { class: "note" }, "Train a LoRA adapter on your own examples (JSONL: one {\"messages\": [...]} chat, or "
      + "{\"prompt\", \"completion\"}, per line). When the job succeeds the adapter is served at once under its "
      + "ft:… name, in every model picker."),
    h("div", { class: "layout" },
      h("aside", { class: "side" }, h("h2", {}, "Jobs"), jobs),
      h("div", { class: "main-col" },
        h("form", { class: "card", onsubmit: onUpload },
          h("h2", {}, "1. Upload training data"), field("JSONL file", file),
          h("button", { type: "submit" }, "Upload"), uploadStatus.el),
        h("form", { class: "card", onsubmit: onCreate },
          h("h2", {}, "2. Start a job"),
          field("Base model", model), field("Training file", training), field("Validation file (optional)", validation),
          field("Suffix", suffix, "Part of the new model's name."), field("Epochs", epochs), field("Learning-rate multiplier", lr),
          field("LoRA rank", rank), h("button", { type: "submit" }, "Start fine-tuning"), createStatus.el),
        detail)));
  els = { file, uploadStatus, model, training, validation, suffix, epochs, lr, rank, createStatus, jobs, detail };
}

export async function show() {
  try {
    const [models, files] = await Promise.all([listModels(), api("/v1/files?purpose=fine-tune")]);
    const chosen = [els.model.value, els.training.value, els.validation.value]; // kept across a refresh
    fill(els.model, models.filter((m) => !m.adapter).map((m) => h("option", { value: m.id }, m.id)));
    const options = files.data.map((f) => h("option", { value: f.id }, `${f.filename} (${f.id})`));
    fill(els.training, options.map((o) => o.cloneNode(true)));
    fill(els.validation, h("option", { value: "" }, "none"), options);
    [els.model, els.training, els.validation].forEach((el, i) => {
      if (chosen[i] && [...el.options].some((o) => o.value === chosen[i])) el.value = chosen[i];
    });
  } catch (err) {
    els.createStatus.error(err.message);
  }
  await refreshJobs();
}

async function onUpload(event) {
  event.preventDefault();
  const chosen = els.file.files[0];
  if (!chosen) return;
  const form = new FormData();
  form.append("purpose", "fine-tune");
  form.append("file", chosen, chosen.name);
  els.uploadStatus.busy("Uploading and checking the file…");
  try {
    const uploaded = await api("/v1/files", { method: "POST", form });
    await show(); // the new file joins the pickers before the page says it is there
    els.training.value = uploaded.id;
    els.uploadStatus.ok(`Uploaded ${uploaded.filename} as ${uploaded.id} (${uploaded.bytes} bytes).`);
  } catch (err) {
    els.uploadStatus.error(err.message);
  }
}

async function onCreate(event) {
  event.preventDefault();
  const hyper = {};
  if (els.epochs.value) hyper.n_epochs = Number(els.epochs.value);
  if (els.lr.value) hyper.learning_rate_multiplier = Number(els.lr.value);
  const body = {
    model: els.model.value,
    training_file: els.training.value,
    method: { type: "supervised", supervised: { hyperparameters: hyper } },
    lora: { r: Number(els.rank.value || 8), alpha: 2 * Number(els.rank.value || 8) },
  };
  if (els.validation.value) body.validation_file = els.validation.value;
  if (els.suffix.value.trim()) body.suffix = els.suffix.value.trim();
  els.createStatus.busy("Creating the job…");
  try {
    const job = await api("/v1/fine_tuning/jobs", { method: "POST", body });
    els.createStatus.ok(`Job ${job.id} created.`);
    selected = job.id;
    await refreshJobs();
  } catch (err) {
    els.createStatus.error(err.message);
  }
}

async function refreshJobs() {
  clearTimeout(timer);
  let list;
  try {
    list = await api("/v1/fine_tuning/jobs?limit=50");
  } catch (err) { // a failed poll (a restart, a blip) is retried while the page is open, not given up
    els.createStatus.error(err.message);
    if (document.getElementById("page-tuning").hidden === false) timer = setTimeout(refreshJobs, POLL_MS);
    return;
  }
  fill(els.jobs, list.data.length ? list.data.map((job) => h("li", {},
    h("button", { type: "button", class: "link", onclick: () => { selected = job.id; refreshJobs(); } },
      `${job.user_provided_suffix || job.id} · ${job.status}`))) : h("li", { class: "empty" }, "No jobs yet."));
  selected ||= list.data.length ? list.data[0].id : null;
  if (selected) await renderJob(selected);
  if (list.data.some((job) => ACTIVE.has(job.status)) && document.getElementById("page-tuning").hidden === false) {
    timer = setTimeout(refreshJobs, POLL_MS);
  }
}

async function renderJob(id) {
  const [job, events] = await Promise.all([
    api(`/v1/fine_tuning/jobs/${id}`), api(`/v1/fine_tuning/jobs/${id}/events?limit=1000`)]);
  const metrics = events.data.filter((e) => e.type === "metrics" && e.data && e.data.step !== undefined);
  const points = metrics.flatMap((e) => [
    e.data.train_loss !== undefined ? { step: e.data.step, loss: e.data.train_loss, split: "train" } : null,
    e.data.valid_loss !== undefined ? { step: e.data.step, loss: e.data.valid_loss, split: "validation" } : null,
  ].filter(Boolean));
  const cancel = ACTIVE.has(job.status)
    ? h("button", { type: "button", class: "secondary", onclick: () => onCancel(job.id) }, "Cancel job") : null;
  fill(els.detail, h("section", { class: "card", "aria-label": `Job ${job.id}` },
    h("h2", {}, `Job ${job.id}`),
    table(["Status", "Base model", "Fine-tuned model", "Trained tokens", "Created"],
      [[job.status, job.model, job.fine_tuned_model || "—", job.trained_tokens ?? "—", when(job.created_at)]]),
    job.error ? h("p", { class: "error" }, `Failed: ${job.error.message}`) : null,
    cancel,
    points.length ? chart(lossSpec(points), "Loss by step") : h("p", { class: "note" }, "No loss reported yet."),
    h("h3", {}, "Events"),
    h("ol", { class: "events" }, events.data.slice(0, 50).map((e) =>
      h("li", { class: e.level === "error" ? "error" : null }, `${when(e.created_at)} — ${e.message}`)))));
}

async function onCancel(id) {
  try {
    await api(`/v1/fine_tuning/jobs/${id}/cancel`, { method: "POST" });
  } catch (err) {
    els.createStatus.error(err.message);
  }
  await refreshJobs();
}

function lossSpec(values) {
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    description: "Training and validation loss by step",
    data: { values },
    mark: { type: "line", point: true },
    encoding: {
      x: { field: "step", type: "quantitative", title: "Step" },
      y: { field: "loss", type: "quantitative", title: "Loss", scale: { zero: false } },
      color: { field: "split", type: "nominal", title: null },
    },
  };
}
