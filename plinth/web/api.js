// Talking to the Plinth server: the session's API key, JSON calls, chat streaming (SSE over fetch) and
// turning every failure -- HTTP errors, network errors, guardrail interventions -- into plain words.

const KEY = "plinth.apiKey"; // sessionStorage: the key lives as long as this tab, never longer

export const session = {
  get key() { return sessionStorage.getItem(KEY) || ""; },
  set key(value) {
    if (value) sessionStorage.setItem(KEY, value);
    else sessionStorage.removeItem(KEY);
  },
  me: null, // {tenant, is_admin, auth} from GET /v1/me
};

/** An error the user can read: `message` is plain words, `detail` the server's error object. */
export class ApiError extends Error {
  constructor(message, status = 0, detail = {}) {
    super(message);
    this.status = status;
    this.code = detail.code || null;
    this.param = detail.param || null;
    this.detail = detail;
  }
}

function headers(json) {
  const out = {};
  if (json) out["Content-Type"] = "application/json";
  if (session.key) out.Authorization = `Bearer ${session.key}`;
  return out;
}

/** Call the API: api("/v1/models"), api("/v1/x", {method: "POST", body: {...}}). Throws ApiError. */
export async function api(path, { method = "GET", body, form, signal } = {}) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: headers(body !== undefined),
      body: form || (body !== undefined ? JSON.stringify(body) : undefined),
      signal,
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError("Could not reach the Plinth server. Check that it is running, then try again.");
  }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!response.ok) throw errorFrom(response.status, data);
  return data;
}

/** Plain words for an OpenAI-style error body ({"error": {message, type, param, code}}). */
export function errorFrom(status, data) {
  const detail = (data && data.error) || {};
  const said = detail.message || (typeof data === "string" && data) || "";
  const prefix = {
    401: "Your API key was not accepted.",
    403: "Your key is not allowed to do this.",
    404: "Not found.",
    409: "That conflicts with something that already exists or is running.",
    413: "That upload is too large for this server.",
    429: "The server is busy; wait a moment and try again.",
  }[status];
  if (status === 500 || (status > 500 && !said)) { // an unexpected failure: its details are in the server log
    return new ApiError("The server had a problem handling this request. Try again; if it keeps happening, "
      + "ask the operator to check the server log.", status, detail);
  }
  const message = prefix && said ? `${prefix} ${said}` : (said || prefix || `Request failed (${status}).`);
  return new ApiError(message, status, detail);
}

/**
 * Stream a chat completion. Calls onDelta(text) per token and returns
 * {text, finishReason, guardrail}. Aborting `signal` stops the request (the server then aborts it too).
 */
export async function streamChat(body, { signal, onDelta }) {
  let response;
  try {
    response = await fetch("/v1/chat/completions", {
      method: "POST", headers: headers(true), body: JSON.stringify({ ...body, stream: true }), signal,
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError("Could not reach the Plinth server. Check that it is running, then try again.");
  }
  if (!response.ok) {
    const text = await response.text();
    let data = null;
    try { data = JSON.parse(text); } catch { data = text; }
    throw errorFrom(response.status, data);
  }
  const result = { text: "", finishReason: null, guardrail: null };
  for await (const event of sseEvents(response.body)) {
    if (event.error) throw errorFrom(errorStatus(event.error), event);
    if (event.guardrail) result.guardrail = event.guardrail;
    for (const choice of event.choices || []) {
      const piece = choice.delta && choice.delta.content;
      if (piece) {
        result.text += piece;
        onDelta(piece, result.text);
      }
      if (choice.finish_reason) result.finishReason = choice.finish_reason;
    }
  }
  return result;
}

/**
 * Invoke an agent, streamed: calls onStep(step) as each trace step completes and returns the final run
 * object ({status, output, citations, required_action, trace, ...}).
 */
export async function streamAgent(agentId, body, { signal, onStep }) {
  let response;
  try {
    response = await fetch(`/v1/agents/${encodeURIComponent(agentId)}/invoke`, {
      method: "POST", headers: headers(true), body: JSON.stringify({ ...body, stream: true }), signal,
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError("Could not reach the Plinth server. Check that it is running, then try again.");
  }
  if (!response.ok) {
    const text = await response.text();
    let data = null;
    try { data = JSON.parse(text); } catch { data = text; }
    throw errorFrom(response.status, data);
  }
  let run = null;
  for await (const event of sseEvents(response.body)) {
    if (event.error) throw errorFrom(errorStatus(event.error), event);
    if (event.type === "step") onStep(event.step);
    if (event.type === "run") run = event.run;
  }
  if (!run) throw new ApiError("The agent's run ended without a result. Try again.");
  return run;
}

function errorStatus(error) {
  return { authentication_error: 401, permission_error: 403, server_error: 500 }[error.type] || 400;
}

/** The JSON objects of an SSE body, up to `data: [DONE]`. */
async function* sseEvents(stream) {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("");
      if (!data) continue;
      if (data === "[DONE]") return;
      yield JSON.parse(data);
    }
  }
}

/**
 * What a guardrail did, in plain words: ["Prompt attack detected (high confidence)", "Social security
 * number found: blocked"]. Accepts Bedrock-shaped assessments (one object per policy).
 */
export function describeAssessments(assessments) {
  const out = [];
  for (const a of assessments || []) {
    for (const f of (a.contentPolicy && a.contentPolicy.filters) || []) {
      out.push(`${words(f.type)} detected${f.confidence ? ` (${f.confidence.toLowerCase()} confidence)` : ""}`
        + actionText(f.action));
    }
    for (const t of (a.topicPolicy && a.topicPolicy.topics) || []) {
      out.push(`Denied topic "${t.name}"${actionText(t.action)}`);
    }
    const wp = a.wordPolicy || {};
    for (const w of [...(wp.customWords || []), ...(wp.managedWordLists || [])]) {
      out.push(`Blocked word "${w.match}"${actionText(w.action)}`);
    }
    const sp = a.sensitiveInformationPolicy || {};
    for (const p of sp.piiEntities || []) out.push(`${words(p.type)} found${actionText(p.action)}`);
    for (const r of sp.regexes || []) out.push(`Pattern "${r.name}" matched${actionText(r.action)}`);
    for (const g of (a.contextualGroundingPolicy && a.contextualGroundingPolicy.filters) || []) {
      out.push(`${words(g.type)} score ${Number(g.score).toFixed(2)} is below ${g.threshold}${actionText(g.action)}`);
    }
  }
  return out;
}

function actionText(action) {
  const a = (action || "").toUpperCase();
  if (a === "BLOCKED" || a === "BLOCK") return ": blocked";
  if (a === "ANONYMIZED" || a === "ANONYMIZE") return ": masked";
  return "";
}

/** PROMPT_ATTACK -> "Prompt attack", US_SOCIAL_SECURITY_NUMBER -> "US social security number". */
export function words(type) {
  const text = String(type || "").toLowerCase().replace(/_/g, " ");
  return text.replace(/\b(us|uk|ip|aws|pin|id|url)\b/g, (w) => w.toUpperCase()).replace(/^./, (c) => c.toUpperCase());
}

/** A sentence for a guardrail intervention on a completion, retrieve-and-generate or SQL answer. */
export function explainGuardrail(guardrail, blockedText) {
  const stage = ((guardrail && guardrail.stage) || "input").toLowerCase();
  const what = stage.startsWith("out") ? "The model's answer was blocked"
    : stage === "data" ? "Content from the data (a retrieved passage or a query result) was blocked"
    : "Your message was blocked";
  const reasons = describeAssessments(guardrail && guardrail.assessments);
  const why = reasons.length ? ` because: ${reasons.join("; ")}.` : ".";
  return `${what} by a guardrail${why}${blockedText ? ` The guardrail's message: "${blockedText}"` : ""}`;
}

/** Base models (with their random-weights flag from /health) and the tenant's adapters. */
export async function listModels() {
  const [models, health] = await Promise.all([api("/v1/models"), api("/health")]);
  const random = new Map((health.models || []).map((m) => [m.id, Boolean(m.random_weights)]));
  return (models.data || []).map((m) => {
    const plinth = m.plinth || {};
    const isAdapter = Boolean(plinth.adapter);
    const base = isAdapter ? m.parent : m.id;
    return {
      id: m.id,
      adapter: isAdapter,
      parent: m.parent,
      owner: m.owned_by,
      random: random.has(base) ? random.get(base) : Boolean(plinth.random_weights),
    };
  });
}
