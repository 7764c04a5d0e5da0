// The local dashboard: plain JS, no build step. It polls the API (as the admin) and the local-only
// routes, and renders with textContent only, so job data can never inject markup.

const STATES = ["queued", "running", "succeeded", "failed", "cancelled"];
const COLORS = { queued: "#6ea8fe", running: "#f0b429", succeeded: "#3ecf8e", failed: "#f25f5c", cancelled: "#a0a7b0" };
const POLL_MS = 1000;
const $ = (sel) => document.querySelector(sel);

// The token arrives once in the URL fragment (never sent to the server) and is kept in localStorage.
function takeToken() {
  const m = /(?:^|[#&])token=([^&]+)/.exec(location.hash);
  if (m) {
    localStorage.setItem("warden.adminToken", decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  return localStorage.getItem("warden.adminToken");
}
let token = takeToken();

class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code;
  }
}

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let data;
  try { data = text ? JSON.parse(text) : {}; } catch { data = { error: { message: text } }; }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "dataset") Object.assign(e.dataset, v);
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "style") e.setAttribute("style", v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) if (c !== undefined && c !== null) e.append(c instanceof Node ? c : String(c));
  return e;
}

function toast(msg) {
  const t = $("#toast");
  t.textContent = msg;
  t.classList.add("show");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => t.classList.remove("show"), 3500);
}

const ago = (iso) => {
  if (!iso) return "";
  const s = Math.max(0, Math.round((Date.now() - (typeof iso === "number" ? iso : Date.parse(iso))) / 1000));
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m${s % 60 ? ` ${s % 60}s` : ""}` : `${Math.floor(s / 3600)}h`;
};

// ─── rendering ──────────────────────────────────────────────────────────────────────────────

function percentOf(job) {
  const p = job.progress;
  if (job.status === "succeeded") return 100;
  if (!p) return 0;
  if (typeof p.percent === "number") return p.percent;
  return p.total ? (100 * p.done) / p.total : 0;
}

async function act(button, method, path, body, done) {
  button.disabled = true;
  try {
    const out = await api(method, path, body);
    toast(done(out));
    await refresh();
  } catch (e) {
    toast(`${path}: ${e.message}`);
  } finally {
    button.disabled = false;
  }
}

function jobRow(job) {
  const pct = Math.max(0, Math.min(100, percentOf(job)));
  const live = job.status === "queued" || job.status === "running";
  const last = job.history?.[job.history.length - 1];
  const progressText = job.progress ? `${pct.toFixed(0)}%${job.progress.message ? ` · ${job.progress.message}` : ""}` : job.status === "succeeded" ? "100%" : "";
  return el("tr", { dataset: { jobId: job.id, status: job.status } },
    el("td", { class: "mono", title: job.id }, job.id.slice(-10)),
    el("td", {}, job.type),
    el("td", {}, job.queue),
    el("td", {},
      el("span", { class: `badge status ${job.status}` }, job.status),
      job.stale ? el("span", { class: "flag stale", title: "heartbeat older than its lease: the sweeper will act" }, "stale") : null,
      job.cancelRequested && live ? el("span", { class: "flag cancelling" }, "cancelling") : null,
      job.error && !live ? el("div", { class: "hint", title: job.error.message }, job.error.code) : null,
      job.error && live ? el("div", { class: "hint", title: job.error.message }, `last: ${job.error.code}`) : null,
    ),
    el("td", {},
      el("div", { class: "bar", role: "progressbar", "aria-valuenow": pct.toFixed(1), "aria-valuemin": 0, "aria-valuemax": 100, dataset: { percent: pct.toFixed(1) } },
        el("div", { class: "fill", style: `width:${pct}%` }),
        el("span", { class: "label" }, progressText),
      ),
    ),
    el("td", { class: "attempts" }, `${job.attempts}/${job.maxAttempts}`),
    el("td", { class: "mono", title: (job.history ?? []).map((h) => `#${h.attempt} ${h.worker} ${h.outcome ?? "…"}`).join("\n") }, last?.worker ?? ""),
    el("td", { class: "age", dataset: { created: job.createdAt } }, ago(job.createdAt)),
    el("td", {},
      live
        ? el("button", { class: "danger", dataset: { action: "cancel" }, disabled: job.cancelRequested ? true : undefined, onclick: (ev) => act(ev.currentTarget, "POST", `/local/jobs/${job.id}/cancel`, {}, (o) => `cancel: ${o.job.status}${o.job.cancelRequested ? " (cancel requested)" : ""}`) }, "Cancel")
        : null,
      job.status === "failed" || job.status === "cancelled"
        ? el("button", { dataset: { action: "retry" }, onclick: (ev) => act(ev.currentTarget, "POST", `/local/jobs/${job.id}/retry`, {}, (o) => `retry: ${o.job.status}`) }, "Retry")
        : null,
    ),
  );
}

// Rows are rebuilt only when their job changed, so a button is never swapped out under the
// pointer between a press and its release.
const rows = new Map();
function renderJobs(jobs) {
  const next = new Map();
  const trs = jobs.map((job) => {
    const sig = JSON.stringify(job);
    const kept = rows.get(job.id);
    const tr = kept && kept.sig === sig ? kept.tr : jobRow(job);
    next.set(job.id, { sig, tr });
    return tr;
  });
  rows.clear();
  for (const [k, v] of next) rows.set(k, v);
  const body = $("#jobs tbody");
  trs.forEach((tr, i) => {
    if (body.children[i] !== tr) body.insertBefore(tr, body.children[i] ?? null);
  });
  while (body.children.length > trs.length) body.lastElementChild.remove();
  for (const td of body.querySelectorAll("td.age")) td.textContent = ago(td.dataset.created);
  $("#job-count").textContent = `(${jobs.length} newest)`;
}

// A worker's presence entry is refreshed every few seconds; running jobs name their worker at
// once, so the two together show what each worker holds now.
function renderWorkers(workers, jobs) {
  const holding = new Map();
  for (const j of jobs) {
    const w = j.status === "running" ? j.history?.[j.history.length - 1]?.worker : undefined;
    if (w) holding.set(w, [...(holding.get(w) ?? []), j.id]);
  }
  const rows = workers.map((w) => ({ ...w, jobs: [...new Set([...(holding.get(w.id) ?? []), ...w.jobs.filter((id) => jobs.some((j) => j.id === id && j.status === "running") || !jobs.some((j) => j.id === id))])] })).map((w) =>
    el("tr", { dataset: { workerId: w.id } },
      el("td", { class: "mono" }, w.id),
      el("td", {}, w.kind),
      el("td", { class: "mono" }, w.pid ?? ""),
      el("td", { class: "mono" }, w.state === "dead"
        ? el("span", { class: "dead", title: w.deathReason ?? "" }, `dead since ${ago(w.diedAt)}: its jobs were taken back`)
        : w.jobs.length ? w.jobs.map((j) => j.slice(-10)).join(", ") : el("span", { class: "hint" }, "idle")),
      el("td", {}, ago(w.lastSeenAt)),
    ),
  );
  $("#workers tbody").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 5, class: "hint" }, "no workers seen recently"))]));
}

function renderQueues(queues) {
  $("#queues tbody").replaceChildren(
    ...queues.map((q) =>
      el("tr", { dataset: { queue: q.queue } },
        el("td", {}, q.queue),
        el("td", {}, q.visible),
        el("td", {}, q.inFlight),
        el("td", {}, q.delayed),
        el("td", {}, q.oldestAgeSeconds ? `${q.oldestAgeSeconds}s` : "–"),
        el("td", { class: q.dlq.visible ? "error" : "", dataset: { dlq: q.dlq.visible } }, q.dlq.visible + q.dlq.inFlight),
        el("td", {},
          el("button", { dataset: { action: "redrive" }, disabled: q.dlq.visible + q.dlq.inFlight ? undefined : true, onclick: (ev) => act(ev.currentTarget, "POST", "/admin/dead-letters/redrive", { queue: q.queue }, (o) => `redrive ${q.queue}: moved ${o.moved}`) }, "Redrive"),
        ),
      ),
    ),
  );
}

function renderAlarms(out) {
  $("#alarm-scale").textContent = out.timeScale;
  const order = { ALARM: 0, INSUFFICIENT_DATA: 1, OK: 2 };
  const alarms = [...out.alarms].sort((a, b) => order[a.state] - order[b.state] || a.id.localeCompare(b.id));
  $("#alarms tbody").replaceChildren(
    ...alarms.map((a) => {
      const last = a.periods[a.periods.length - 1];
      const cmp = a.comparison === "GreaterThanThreshold" ? ">" : "<";
      return el("tr", { class: `alarm-row ${a.state}`, dataset: { alarm: a.id, state: a.state }, title: a.description },
        el("td", {}, a.id),
        el("td", {}, el("span", { class: `badge ${a.state}` }, a.state === "INSUFFICIENT_DATA" ? "no data" : a.state), a.state === "ALARM" ? el("span", { class: "hint" }, ` ${ago(a.since)}`) : null),
        el("td", { class: "hint" }, `${a.source} ${cmp} ${a.threshold} · ${a.evaluationPeriods}×${(a.periodMs / 1000).toFixed(0)}s · now ${last?.value ?? "–"}`),
      );
    }),
  );
}

function renderChart(points) {
  const svg = $("#chart");
  const W = 800, H = 180, pad = 6;
  const ns = "http://www.w3.org/2000/svg";
  const node = (tag, attrs) => {
    const n = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
    return n;
  };
  const children = [];
  const max = Math.max(1, ...points.flatMap((p) => STATES.map((s) => p.value[s] ?? 0)));
  const t0 = points[0]?.at ?? Date.now();
  const t1 = Math.max(t0 + 1, points[points.length - 1]?.at ?? Date.now());
  const x = (t) => pad + ((t - t0) / (t1 - t0)) * (W - 2 * pad);
  const y = (v) => H - pad - (v / max) * (H - 2 * pad);
  for (let i = 1; i <= 3; i++) children.push(node("line", { x1: 0, x2: W, y1: y((max * i) / 4), y2: y((max * i) / 4), stroke: "#1f2833", "stroke-width": 1 }));
  for (const s of STATES) {
    if (points.length < 2) break;
    const d = points.map((p, i) => `${i ? "L" : "M"}${x(p.at).toFixed(1)},${y(p.value[s] ?? 0).toFixed(1)}`).join(" ");
    children.push(node("path", { d, fill: "none", stroke: COLORS[s], "stroke-width": 2, "vector-effect": "non-scaling-stroke", "data-state": s }));
  }
  children.push(node("text", { x: W - pad, y: 14, fill: "#8a96a3", "font-size": 11, "text-anchor": "end" }));
  children[children.length - 1].textContent = `max ${max}`;
  svg.replaceChildren(...children);
  const latest = points[points.length - 1]?.value ?? {};
  $("#legend").replaceChildren(
    ...STATES.map((s) => el("li", { dataset: { state: s } }, el("span", { class: "sw", style: `background:${COLORS[s]}` }), s, el("span", { class: "n" }, latest[s] ?? 0))),
  );
  $("#chart-span").textContent = points.length > 1 ? ago(t0) : "–";
}

// ─── polling ────────────────────────────────────────────────────────────────────────────────

let inFlight = false;
async function refresh() {
  if (inFlight || !token) return;
  inFlight = true;
  try {
    const [jobs, workers, queues, alarms, history] = await Promise.all([
      api("GET", "/jobs?limit=50"),
      api("GET", "/admin/workers"),
      api("GET", "/local/queues"),
      api("GET", "/local/alarms"),
      api("GET", "/local/history"),
    ]);
    renderJobs(jobs.jobs);
    renderWorkers(workers.workers, jobs.jobs);
    renderQueues(queues.queues);
    renderAlarms(alarms);
    renderChart(history.states);
    $("#conn").className = "dot ok";
    $("#updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
      showLogin(e.status === 401 ? "That token was refused." : "That token is not the admin's.");
    } else {
      $("#conn").className = "dot bad";
      $("#updated").textContent = `cannot reach the API: ${e.message}`;
    }
  } finally {
    inFlight = false;
  }
}

function showLogin(message = "") {
  $("#login").hidden = false;
  $("#app").hidden = true;
  $("#login-error").textContent = message;
}

function showApp() {
  $("#login").hidden = true;
  $("#app").hidden = false;
}

$("#login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  token = $("#token-input").value.trim();
  localStorage.setItem("warden.adminToken", token);
  showApp();
  refresh();
});
$("#forget").addEventListener("click", () => {
  localStorage.removeItem("warden.adminToken");
  token = null;
  showLogin();
});
$("#sweep").addEventListener("click", (ev) =>
  act(ev.currentTarget, "POST", "/admin/sweep", {}, (o) => {
    const counts = Object.entries(o.report ?? {}).filter(([, v]) => typeof v === "number" && v > 0);
    return `sweep: ${counts.length ? counts.map(([k, v]) => `${k} ${v}`).join(", ") : "nothing to repair"}`;
  }),
);
$("#submit-type").addEventListener("change", (ev) => {
  $("#submit-input").value = ev.target.selectedOptions[0].dataset.input;
});
$("#submit").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  let input;
  try {
    input = JSON.parse($("#submit-input").value || "{}");
  } catch {
    $("#submit-msg").textContent = "the input is not valid JSON";
    return;
  }
  const queue = $("#submit-queue").value;
  try {
    const out = await api("POST", "/jobs", { type: $("#submit-type").value, input, ...(queue ? { queue } : {}) });
    $("#submit-msg").textContent = `submitted ${out.job.id}`;
    refresh();
  } catch (e) {
    $("#submit-msg").textContent = e.message;
  }
});

if (token) {
  showApp();
  refresh();
} else {
  showLogin();
}
setInterval(refresh, POLL_MS);
