// The Warden dashboard: plain JS, no build step. The same files are served by npm start's
// gateway (local/gateway.ts) and, for a deployed stage, by `warden dashboard` (cli/dashboard.ts),
// which signs the calls itself. It talks to the HTTP API as the admin, and renders with
// textContent only, so job data (inputs, errors, stacks, log lines) can never inject markup.

const STATES = ["queued", "running", "waiting", "succeeded", "failed", "cancelled"];
const COLORS = { queued: "#6ea8fe", running: "#f0b429", waiting: "#b392f0", succeeded: "#3ecf8e", failed: "#f25f5c", cancelled: "#a0a7b0" };
const PAGE = 50;
/** Children per page in the detail's tree (GET /jobs/{id}/children). */
const CHILD_PAGE = 50;
/** A filtered page may match nothing and still carry a cursor; one click follows at most this many. */
const MAX_PAGES_PER_LOAD = 40;
const LOG_LINES = 500;
const $ = (sel) => document.querySelector(sel);

// The token (npm start's admin token, or `warden dashboard`'s session key) arrives once in the
// URL fragment, which the browser never sends to the server, and is kept in localStorage.
function takeToken() {
  const m = /(?:^|[#&])token=([^&]+)/.exec(location.hash);
  if (m) {
    // A malformed fragment (`#token=%`) is dropped, not allowed to stop the module.
    try {
      localStorage.setItem("warden.adminToken", decodeURIComponent(m[1]));
    } catch {
      /* keep the stored token, if any */
    }
    history.replaceState(null, "", location.pathname + location.search);
  }
  return localStorage.getItem("warden.adminToken");
}
let token = takeToken();

const state = {
  /** "local" under npm start; "stage" behind `warden dashboard`, which answers /dashboard/session.json. */
  mode: "local",
  /** The search the table shows, and where its next page starts (null: no more). */
  filter: {},
  jobs: new Map(),
  cursor: null,
  /** Bumped by every new search, so an answer to an older one is dropped. */
  generation: 0,
  pagesLoaded: 0,
  loadingMore: false,
  /** false once /local/alarms answered 404 (a stage): the chart and alarms panels say where to look instead. */
  localPanels: true,
  detailId: null,
  /** The detail's job as last read, and the status it had when its log was last read. */
  detailJob: null,
  detailLogsFor: null,
  /** Every detail read is numbered: an answer older than the latest request is dropped. */
  detailSeq: 0,
  detailLoading: false,
  logSeq: 0,
  logsBusy: false,
  /** The detail's tree of children (see "children" below); a new one per job opened. */
  tree: null,
  /** false once /admin/workers, /admin/queues or /admin/controls answered 403: those panels need the admin role. */
  adminPanels: true,
  /** The jobs list's last poll failed (its message is in #more-msg). */
  listError: false,
};

/** Actions in flight (`cancel:<id>`, `retry:<id>`, `redrive:<queue>`): their buttons stay disabled, even rebuilt. */
const pending = new Set();

class ApiError extends Error {
  constructor(status, body) {
    // API Gateway's own refusals are {"message"}; the API's are {"error": {"code", "message"}}.
    super(body?.error?.message ?? body?.message ?? `HTTP ${status}`);
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
    // Through the CSSOM, which the page's Content-Security-Policy allows (a style attribute it would not).
    else if (k === "style") Object.assign(e.style, v);
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

/** A span of seconds as 42s, 3m 10s, 2h, 3d. */
const span = (s) => (s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m${s % 60 ? ` ${s % 60}s` : ""}` : s < 86400 ? `${Math.floor(s / 3600)}h` : `${Math.floor(s / 86400)}d`);
const ago = (iso) => {
  if (!iso) return "";
  return span(Math.max(0, Math.round((Date.now() - (typeof iso === "number" ? iso : Date.parse(iso))) / 1000)));
};
/** How long until `iso`: "in 4m 10s", or "due" once it has come (the next sweep fires it). */
const until = (iso) => {
  const s = Math.round((Date.parse(iso) - Date.now()) / 1000);
  return s > 0 ? `in ${span(s)}` : "due";
};
const when = (iso) => (iso ? `${new Date(iso).toLocaleString()} (${ago(iso)} ago)` : "–");
const pretty = (v) => (v === undefined || v === null ? "–" : JSON.stringify(v, null, 2));
/** %20 for a space, as SigV4 signs a query (`warden dashboard` re-encodes it the same way). */
const qs = (params) => new URLSearchParams(params).toString().replace(/\+/g, "%20");
const jobPath = (id, tail = "") => `/jobs/${encodeURIComponent(id)}${tail}`;

// ─── jobs: search and paging ────────────────────────────────────────────────────────────────

function filterFromForm() {
  const f = {};
  for (const [key, sel] of [["id", "#f-id"], ["type", "#f-type"], ["owner", "#f-owner"], ["status", "#f-status"], ["queue", "#f-queue"]]) {
    const v = $(sel).value.trim();
    if (v) f[key] = v;
  }
  // datetime-local is the browser's local time; the API takes ISO-8601 instants.
  for (const [key, sel] of [["createdAfter", "#f-after"], ["createdBefore", "#f-before"]]) {
    const v = $(sel).value;
    if (v) f[key] = new Date(v).toISOString();
  }
  return f;
}

const listPath = (filter, cursor) => `/jobs?${qs({ ...filter, limit: String(PAGE), ...(cursor ? { cursor } : {}) })}`;

const newestFirst = (a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : a.id < b.id ? 1 : a.id > b.id ? -1 : 0);

function mergeJobs(jobs) {
  for (const j of jobs) state.jobs.set(j.id, j);
}

async function search() {
  state.filter = filterFromForm();
  state.generation++;
  state.jobs.clear();
  state.cursor = null;
  state.pagesLoaded = 0;
  renderJobs();
  await loadPages(null);
}

/**
 * Follows nextCursor from `cursor` until a page's worth of jobs came back or there is no more:
 * a filtered page may hold no match and still have a cursor, which only means keep reading.
 */
async function loadPages(cursor) {
  const gen = state.generation;
  state.loadingMore = true;
  renderMore();
  let added = 0;
  let pages = 0;
  try {
    do {
      const page = await api("GET", listPath(state.filter, cursor));
      if (gen !== state.generation) return;
      pages++;
      state.pagesLoaded++;
      mergeJobs(page.jobs);
      added += page.jobs.length;
      cursor = page.nextCursor;
      state.cursor = cursor;
      renderJobs();
    } while (cursor && added < PAGE && pages < MAX_PAGES_PER_LOAD);
    $("#more-msg").textContent = cursor && added === 0 ? `read ${pages} pages without a match so far; Load more keeps reading` : "";
  } catch (e) {
    if (gen === state.generation) $("#more-msg").textContent = `cannot list jobs: ${e.message}`;
    throw e;
  } finally {
    if (gen === state.generation) {
      state.loadingMore = false;
      renderMore();
    }
  }
}

/**
 * The live part of the table: the search's first page, read again on every poll. Every match
 * newer than that page's oldest job is on it, so a shown job newer than that which is missing
 * no longer matches (it changed status, say) and is dropped; older pages stay as they were read.
 */
async function refreshFirstPage() {
  if (state.loadingMore) return;
  const gen = state.generation;
  const page = await api("GET", listPath(state.filter, null));
  if (gen !== state.generation || state.loadingMore) return;
  const fresh = new Set(page.jobs.map((j) => j.id));
  if (state.pagesLoaded <= 1) {
    state.jobs.clear();
    state.cursor = page.nextCursor;
    state.pagesLoaded = 1;
  } else if (page.jobs.length || page.nextCursor === null) {
    // Nothing past the first page any more: the older pages read before are gone with their cursor.
    if (page.nextCursor === null) {
      state.cursor = null;
      state.pagesLoaded = 1;
    }
    const oldest = page.nextCursor === null ? undefined : page.jobs[page.jobs.length - 1];
    for (const j of [...state.jobs.values()]) if (!fresh.has(j.id) && (!oldest || newestFirst(j, oldest) < 0)) state.jobs.delete(j.id);
  }
  mergeJobs(page.jobs);
  renderJobs();
}

// ─── rendering ──────────────────────────────────────────────────────────────────────────────

function percentOf(job) {
  const p = job.progress;
  if (job.status === "succeeded") return 100;
  if (!p) return 0;
  if (typeof p.percent === "number") return p.percent;
  return p.total ? (100 * p.done) / p.total : 0;
}

/** Only a running job has a worker; older APIs without `worker` are read from the running attempt. */
const workerOf = (job) => ("worker" in job ? job.worker : job.status === "running" ? (job.history?.[job.history.length - 1]?.worker ?? null) : null);
/** Not finished: queued, running, or a parent waiting for its children (each can be cancelled). */
const isLive = (job) => job.status === "queued" || job.status === "running" || job.status === "waiting";

async function act(button, key, method, path, body, done) {
  if (pending.has(key)) return;
  pending.add(key);
  button.disabled = true;
  try {
    const out = await api(method, path, body);
    if (out.job) mergeJobs([out.job]);
    toast(done(out));
    renderJobs();
    if (state.detailId && out.job?.id === state.detailId) await loadDetail(state.detailId, { logs: true });
    await refresh();
  } catch (e) {
    toast(`${path}: ${e.message}`);
  } finally {
    pending.delete(key);
    button.disabled = false;
    // A button rebuilt meanwhile (a row, the detail) was made disabled by `pending`: re-read it.
    renderJobs();
    if (state.detailJob) renderDetailActions(state.detailJob);
  }
}

/** Cancel and Retry, through the API's own routes: the admin may act on any caller's job. */
function jobButtons(job) {
  const stop = (fn) => (ev) => {
    ev.stopPropagation();
    fn(ev);
  };
  return [
    isLive(job)
      ? el("button", { class: "danger", dataset: { action: "cancel" }, disabled: job.cancelRequested || pending.has(`cancel:${job.id}`) ? true : undefined, onclick: stop((ev) => act(ev.currentTarget, `cancel:${job.id}`, "POST", jobPath(job.id, "/cancel"), {}, (o) => `cancel: ${o.job.status}${o.job.cancelRequested ? " (cancel requested)" : ""}`)) }, "Cancel")
      : null,
    job.status === "failed" || job.status === "cancelled"
      ? el("button", { dataset: { action: "retry" }, disabled: pending.has(`retry:${job.id}`) ? true : undefined, onclick: stop((ev) => act(ev.currentTarget, `retry:${job.id}`, "POST", jobPath(job.id, "/retry"), {}, (o) => `retry: ${o.job.status}`)) }, "Retry")
      : null,
  ];
}

const progressText = (job, pct) => (job.progress ? `${pct.toFixed(0)}%${job.progress.message ? ` · ${job.progress.message}` : ""}` : job.status === "succeeded" ? "100%" : "");
const staleFlag = () => el("span", { class: "flag stale", title: "heartbeat older than its lease: the sweeper will act" }, "stale");

/** The fields that change on nearly every poll of a running job: updated in place, never a reason to rebuild. */
const FAST_FIELDS = new Set(["heartbeatAt", "progress", "stale"]);
const rowSig = (job) =>
  JSON.stringify(job, (k, v) => (FAST_FIELDS.has(k) ? undefined : v)) +
  (job.id === state.detailId ? "*" : "") +
  (pending.has(`cancel:${job.id}`) ? "c" : "") +
  (pending.has(`retry:${job.id}`) ? "r" : "");

/** A kept row follows its job's progress and stale flag without losing its buttons. */
function updateRow(tr, job) {
  const pct = Math.max(0, Math.min(100, percentOf(job)));
  const bar = tr.querySelector("[role=progressbar]");
  if (bar.dataset.percent !== pct.toFixed(1)) {
    bar.setAttribute("aria-valuenow", pct.toFixed(1));
    bar.dataset.percent = pct.toFixed(1);
    bar.querySelector(".fill").style.width = `${pct}%`;
  }
  const label = bar.querySelector(".label");
  const text = progressText(job, pct);
  if (label.textContent !== text) label.textContent = text;
  const flag = tr.querySelector(".flag.stale");
  if (job.stale && !flag) tr.querySelector(".badge.status").after(staleFlag());
  else if (!job.stale && flag) flag.remove();
}

function jobRow(job) {
  const pct = Math.max(0, Math.min(100, percentOf(job)));
  const live = isLive(job);
  const worker = workerOf(job);
  return el("tr", { class: job.id === state.detailId ? "selected" : "", dataset: { jobId: job.id, status: job.status }, title: "show this job", onclick: () => openDetail(job.id) },
    el("td", { class: "mono", title: job.id }, job.id.slice(-10)),
    el("td", {}, job.type,
      job.children ? el("div", { class: "hint" }, `${job.children.total} ${job.children.total === 1 ? "child" : "children"}`) : null,
      job.parentId ? el("div", { class: "hint", title: `child of ${job.parentId}` }, `child #${job.childIndex ?? "?"}`) : null,
    ),
    el("td", {}, job.queue),
    el("td", {},
      el("span", { class: `badge status ${job.status}` }, job.status),
      job.stale ? staleFlag() : null,
      job.cancelRequested && live ? el("span", { class: "flag cancelling" }, "cancelling") : null,
      job.error ? el("div", { class: "hint", title: job.error.message }, live ? `last: ${job.error.code}` : job.error.code) : null,
    ),
    el("td", {},
      el("div", { class: "bar", role: "progressbar", "aria-valuenow": pct.toFixed(1), "aria-valuemin": 0, "aria-valuemax": 100, dataset: { percent: pct.toFixed(1) } },
        el("div", { class: "fill", style: { width: `${pct}%` } }),
        el("span", { class: "label" }, progressText(job, pct)),
      ),
    ),
    el("td", { class: "attempts" }, `${job.attempts}/${job.maxAttempts}`),
    el("td", { class: "mono worker" }, worker ?? ""),
    el("td", { class: "age", dataset: { created: job.createdAt } }, ago(job.createdAt)),
    el("td", { class: "row-actions" }, jobButtons(job)),
  );
}

// Rows are rebuilt only when their job changed (not its progress or heartbeat, updated in
// place), so a button is never swapped out under the pointer between a press and its release.
const rows = new Map();
function renderJobs() {
  const jobs = [...state.jobs.values()].sort(newestFirst);
  const next = new Map();
  const trs = jobs.map((job) => {
    const sig = rowSig(job);
    const kept = rows.get(job.id);
    const tr = kept && kept.sig === sig ? kept.tr : jobRow(job);
    if (tr === kept?.tr) updateRow(tr, job);
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
  const filtered = Object.keys(state.filter).length > 0;
  $("#job-count").textContent = `(${jobs.length} shown${filtered ? ", filtered" : ""}${state.cursor ? "; more below" : jobs.length ? "; that is all" : ""})`;
  renderMore();
}

function renderMore() {
  const b = $("#more");
  b.hidden = !state.cursor && !state.loadingMore;
  b.disabled = state.loadingMore;
  b.textContent = state.loadingMore ? "Loading…" : "Load more";
}

function renderWorkers(workers) {
  const label = { alive: "alive", unresponsive: "unresponsive", dead: "dead" };
  const trs = workers.map((w) =>
    el("tr", { dataset: { workerId: w.id, state: w.state } },
      el("td", { class: "mono" }, w.id),
      el("td", {}, w.kind),
      el("td", {},
        el("span", { class: `badge worker-${w.state}`, title: w.state === "dead" ? (w.deathReason ?? "") : w.state === "unresponsive" ? "not seen within its reporting interval" : "" }, label[w.state] ?? w.state),
        w.state === "dead" && w.diedAt ? el("span", { class: "hint" }, ` ${ago(w.diedAt)} ago`) : null,
      ),
      el("td", { class: "mono" }, w.pid ?? ""),
      el("td", { class: "mono" }, w.state === "dead"
        ? el("span", { class: "hint" }, "its jobs were taken back")
        : w.jobs.length ? w.jobs.map((j) => j.slice(-10)).join(", ") : el("span", { class: "hint" }, "idle")),
      el("td", {}, ago(w.lastSeenAt)),
    ),
  );
  $("#workers tbody").replaceChildren(...(trs.length ? trs : [el("tr", {}, el("td", { colspan: 6, class: "hint" }, "no workers seen recently"))]));
}

/** One row per queue, kept across polls: its cells are rewritten, its Redrive button stays the same node. */
const queueRows = new Map();
function renderQueues(queues) {
  const trs = queues.map((q) => {
    let r = queueRows.get(q.queue);
    if (!r) {
      const cells = Array.from({ length: 6 }, () => el("td", {}));
      cells[4].title = "the oldest claimable job's wait without a claim";
      const key = `redrive:${q.queue}`;
      const btn = el("button", { dataset: { action: "redrive" }, onclick: (ev) => act(ev.currentTarget, key, "POST", "/admin/dead-letters/redrive", { queue: q.queue }, (o) => `redrive ${q.queue}: moved ${o.moved}`) }, "Redrive");
      r = { key, cells, btn, tr: el("tr", { dataset: { queue: q.queue } }, cells, el("td", {}, btn)) };
      queueRows.set(q.queue, r);
    }
    const dlq = q.dlq.visible + q.dlq.inFlight;
    const texts = [q.queue, q.visible, q.inFlight, q.delayed, q.oldestWaitSeconds ? `${q.oldestWaitSeconds}s` : "–", dlq];
    texts.forEach((t, i) => {
      if (r.cells[i].textContent !== String(t)) r.cells[i].textContent = String(t);
    });
    r.cells[5].className = q.dlq.visible ? "error" : "";
    r.cells[5].dataset.dlq = String(q.dlq.visible);
    r.btn.disabled = pending.has(r.key) || !dlq;
    return r.tr;
  });
  const seen = new Set(queues.map((q) => q.queue));
  for (const k of [...queueRows.keys()]) if (!seen.has(k)) queueRows.delete(k);
  const body = $("#queues tbody");
  trs.forEach((tr, i) => {
    if (body.children[i] !== tr) body.insertBefore(tr, body.children[i] ?? null);
  });
  while (body.children.length > trs.length) body.lastElementChild.remove();
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
    ...STATES.map((s) => el("li", { dataset: { state: s } }, el("span", { class: "sw", style: { background: COLORS[s] } }), s, el("span", { class: "n" }, latest[s] ?? 0))),
  );
  $("#chart-span").textContent = points.length > 1 ? ago(t0) : "–";
}

/** Pauses first, then limits: one row each, with what it holds back now. */
function renderControls(c) {
  const rate = (r) => (r ? `${r.starts}/${r.perSeconds}s` : null);
  const trs = [
    ...c.pauses.map((p) =>
      el("tr", { dataset: { control: "pause", target: p.target, held: p.held } },
        el("td", {}, el("span", { class: "badge paused" }, "paused"), " ", el("span", { class: "mono" }, p.target)),
        el("td", { title: new Date(p.since).toLocaleString() }, `${ago(p.since)} ago by ${p.by}`),
        el("td", { class: "hint" }, "–"),
        el("td", { class: "hint" }, "–"),
        el("td", { class: "held" }, p.held),
      ),
    ),
    ...c.limits.map((l) =>
      el("tr", { dataset: { control: "limit", target: l.key, held: l.held } },
        el("td", { class: "mono" }, l.key),
        el("td", { title: new Date(l.updatedAt).toLocaleString() }, `${ago(l.updatedAt)} ago by ${l.by}`),
        el("td", { class: "limit" }, [l.concurrency !== null ? `at most ${l.concurrency} at once` : null, rate(l.rate) ? `${rate(l.rate)} starts` : null].filter(Boolean).join(" · ")),
        el("td", { class: "running" }, l.running ?? "–"),
        el("td", { class: "held" }, l.held),
      ),
    ),
  ];
  $("#controls tbody").replaceChildren(...(trs.length ? trs : [el("tr", {}, el("td", { colspan: 5, class: "hint" }, "no pauses and no limits"))]));
}

/** A fixed rate as `warden schedules add --every` takes it: 30s, 5m, 1h, 1d. */
const everyText = (s) => {
  for (const [unit, n] of [["d", 86400], ["h", 3600], ["m", 60]]) if (s >= n && s % n === 0) return `${s / n}${unit}`;
  return `${s}s`;
};

function renderSchedules(schedules) {
  const trs = schedules.map((s) => {
    const next = s.nextRuns[0];
    return el("tr", { dataset: { schedule: s.id, paused: String(s.paused) } },
      el("td", { class: "mono" }, s.id),
      el("td", { class: "cadence" }, s.cron !== null ? el("span", {}, el("span", { class: "mono" }, s.cron), ` (${s.timeZone ?? "UTC"})`) : `every ${everyText(s.everySeconds)}`),
      el("td", {}, s.type),
      el("td", {}, s.paused ? el("span", { class: "badge paused" }, "paused") : el("span", { class: "hint" }, "no")),
      el("td", { class: "next nowrap", title: next ? new Date(next).toLocaleString() : "" }, s.paused ? el("span", { class: "hint" }, "–") : next ? until(next) : el("span", { class: "hint" }, "none")),
      el("td", { class: "counts nowrap", title: `fired ${s.counts.fired}, skipped ${s.counts.skipped}, missed ${s.counts.missed}` }, `${s.counts.fired} / ${s.counts.skipped} / ${s.counts.missed}`),
    );
  });
  $("#schedules tbody").replaceChildren(...(trs.length ? trs : [el("tr", {}, el("td", { colspan: 6, class: "hint" }, "no schedules"))]));
}

/** The chart and the alarms exist only under npm start; a stage's are in CloudWatch. */
function hideLocalPanels() {
  state.localPanels = false;
  for (const e of document.querySelectorAll(".local-only")) e.hidden = true;
  for (const e of document.querySelectorAll(".cloud-note")) e.hidden = false;
  $("#chart-span").textContent = "–";
}

// ─── job detail ─────────────────────────────────────────────────────────────────────────────

function openDetail(id) {
  state.detailId = id;
  state.detailJob = null;
  state.detailLogsFor = null;
  $("#detail").hidden = false;
  $("#detail").dataset.jobId = id;
  $("#d-id").textContent = id;
  for (const sel of ["#d-summary", "#d-why", "#d-attempts", "#d-actions"]) $(sel).replaceChildren();
  delete $("#d-actions").dataset.sig;
  for (const sel of ["#d-input", "#d-result"]) $(sel).textContent = "";
  $("#d-logs tbody").replaceChildren();
  $("#d-logs-note").textContent = "";
  delete $("#detail").dataset.loaded;
  resetTree(id);
  renderParent(null);
  renderJobs();
  void loadDetail(id, { logs: true });
}

function closeDetail() {
  state.detailId = null;
  state.detailJob = null;
  resetTree(null);
  $("#detail").hidden = true;
  delete $("#detail").dataset.jobId;
  renderJobs();
}

const failure = (e) => el("p", { class: "error" }, e.message);

/**
 * Each part is its own call, and one that fails (an API without that route yet, a log query
 * that timed out) says so in its own place without hiding the rest. The log is the slowest
 * read (in the cloud a Logs Insights query): it is read on opening, on Refresh, when the job's
 * status changed since, and now and then while it runs locally.
 */
async function loadDetail(id, { logs = false } = {}) {
  const seq = ++state.detailSeq;
  state.detailLoading = true;
  const [job, attempts, why] = await Promise.allSettled([api("GET", jobPath(id)), api("GET", jobPath(id, "/attempts")), api("GET", jobPath(id, "/why"))]);
  if (seq !== state.detailSeq) return;
  state.detailLoading = false;
  if (state.detailId !== id) return;
  const j = job.status === "fulfilled" ? job.value.job : null;
  if (j) {
    state.detailJob = j;
    if (state.jobs.has(j.id)) mergeJobs([j]);
    renderDetailJob(j);
    // A parent's children: the first page read again on every read of the job (Load more's pages stay as read), and on Refresh every open branch.
    if (j.children) void refreshTree(id, logs);
  } else {
    $("#d-summary").replaceChildren(failure(job.reason));
  }
  if (why.status === "fulfilled") renderWhy(why.value.why);
  else $("#d-why").replaceChildren(failure(why.reason));
  if (attempts.status === "fulfilled") renderAttempts(attempts.value.attempts);
  else $("#d-attempts").replaceChildren(failure(attempts.reason));
  renderJobs();
  const changed = j !== null && j.status !== state.detailLogsFor;
  if (logs || changed || (state.mode === "local" && j?.status === "running" && polls % 10 === 0)) void loadLogs(id, j?.status ?? null, logs);
  $("#detail").dataset.loaded = "true";
}

/**
 * The log, read on its own (never awaited by a poll): marked as read for this status before
 * the call, so a failure or a slow query is not asked again on every poll; Refresh forces it.
 */
async function loadLogs(id, status, force) {
  if (state.logsBusy && !force) return;
  state.detailLogsFor = status;
  state.logsBusy = true;
  const seq = ++state.logSeq;
  try {
    const lines = await api("GET", `${jobPath(id, "/logs")}?${qs({ limit: String(LOG_LINES) })}`);
    if (state.detailId !== id || seq !== state.logSeq) return;
    renderLogs(lines);
  } catch (e) {
    if (state.detailId !== id || seq !== state.logSeq) return;
    $("#d-logs tbody").replaceChildren();
    $("#d-logs-note").textContent = `cannot read the log: ${e.message}`;
  } finally {
    if (seq === state.logSeq) state.logsBusy = false;
  }
}

function renderDetailJob(j) {
  $("#detail").dataset.status = j.status;
  renderParent(j);
  renderChildCounts(j);
  const rowsOf = [
    ["type", j.type],
    ["queue", j.queue],
    ["status", el("span", { class: `badge status ${j.status}` }, j.status), j.stale ? el("span", { class: "flag stale" }, "stale") : null, j.cancelRequested ? el("span", { class: "flag cancelling" }, "cancelling") : null],
    ...(j.owner !== undefined ? [["owner", j.owner]] : []),
    ["worker", workerOf(j) ?? "–"],
    ["attempts", `${j.attempts} of ${j.maxAttempts}`],
    ["progress", j.progress ? `${j.progress.percent ?? "?"}%${j.progress.total !== null ? ` (${j.progress.done}/${j.progress.total})` : ""}${j.progress.message ? ` ${j.progress.message}` : ""}` : "–"],
    ["created", when(j.createdAt)],
    ["first started", when(j.firstStartedAt)],
    ["started", when(j.startedAt)],
    ["heartbeat", when(j.heartbeatAt)],
    ["finished", when(j.finishedAt)],
    ...(j.runAt ? [["run at", when(j.runAt)]] : []),
    ["error", j.error ? `${j.error.code}: ${j.error.message}` : "–"],
    ...(j.actions?.length ? [["requests", ...j.actions.map((a) => el("div", { class: "hint" }, `${a.action} by ${a.by}, ${when(a.at)}`))]] : []),
  ];
  $("#d-summary").replaceChildren(...rowsOf.flatMap(([k, ...v]) => [el("dt", {}, k), el("dd", { dataset: { field: k } }, ...v)]));
  $("#d-input").textContent = pretty(j.input);
  $("#d-result").textContent = pretty(j.result);
  renderDetailActions(j);
}

// ─── the detail's children: a tree ───────────────────────────────────────────────────────────
// A parent's last round of children, a page at a time (GET /jobs/{id}/children), each child a
// line that opens its own detail; a child that is a parent itself (a chain's step, a child that
// fanned out) opens under its line. Its nodes are kept across reads and moved only when the
// order changes, and a line is rebuilt only when its job changed, so nothing is swapped out under
// the pointer by a poll.

/** The link from a child to its parent, kept as long as the parent is the same. */
function renderParent(j) {
  const box = $("#d-parent");
  const parentId = j?.parentId ?? "";
  if (box.dataset.parentId === parentId) return;
  box.dataset.parentId = parentId;
  box.hidden = !parentId;
  if (!parentId) return box.replaceChildren();
  const place = j.childIndex !== null ? `child #${j.childIndex}${j.childKey !== null ? ` (key ${j.childKey})` : ""}` : "child";
  box.replaceChildren(
    `${place} of `,
    el("button", { type: "button", class: "link mono", id: "d-parent-link", dataset: { jobId: parentId }, title: "show the parent", onclick: () => openDetail(parentId) }, parentId),
  );
}

/** The parent's children by status, as GET /jobs/{id} counts them. */
function renderChildCounts(j) {
  const c = j.children;
  $("#d-children-box").hidden = !c;
  if (!c) return;
  // Over 100 children the API counts only the ended ones (queued, running and waiting are null; live is the rest).
  const shown = ["total", "live", ...STATES].filter((k) => typeof c[k] === "number");
  $("#d-children-counts").replaceChildren(
    ...shown.map((k) =>
      el("span", { class: "count", dataset: { count: k, value: String(c[k]) } },
        STATES.includes(k) ? el("span", { class: `badge status ${k}` }, k) : el("span", { class: "hint" }, k === "live" ? "not ended" : k),
        ` ${c[k]}`,
      ),
    ),
  );
  $("#d-children-note").textContent = c.exact
    ? "(counted from the children)"
    : "(over 100 children: the ended ones as their fan-in counted them, the rest as not ended)";
}

function resetTree(rootId) {
  state.tree = rootId
    ? { rootId, nodes: new Map(), uls: new Map(), lis: new Map(), lines: new Map(), mores: new Map() }
    : null;
  $("#d-children").replaceChildren();
  delete $("#d-children").dataset.loaded;
  $("#d-children-counts").replaceChildren();
  $("#d-children-note").textContent = "";
  $("#d-children-box").hidden = true;
}

/** A parent's branch: its children by id, where its next page starts, and whether it is open (the root always is). */
function treeNode(t, parentId) {
  let n = t.nodes.get(parentId);
  if (!n) {
    n = { items: new Map(), cursor: null, total: null, pages: 0, loading: false, error: null, open: parentId === t.rootId };
    t.nodes.set(parentId, n);
  }
  return n;
}

async function refreshTree(rootId, all) {
  const t = state.tree;
  if (!t || t.rootId !== rootId) return;
  const open = all ? [rootId, ...[...t.nodes.entries()].filter(([id, n]) => n.open && id !== rootId).map(([id]) => id)] : [rootId];
  await Promise.all(open.map((id) => loadChildren(id, { more: false, force: all })));
}

/**
 * Reads a page of `parentId`'s children: the first page again (`more: false`), merged into what is
 * shown, or the next one (Load more). A read for a tree no longer shown is dropped.
 */
async function loadChildren(parentId, { more, force = false }) {
  const t = state.tree;
  if (!t) return;
  const n = treeNode(t, parentId);
  if (n.loading && !force) return;
  if (more && !n.cursor) return;
  n.loading = true;
  renderTree();
  try {
    const page = await api("GET", `${jobPath(parentId, "/children")}?${qs({ limit: String(CHILD_PAGE), ...(more ? { cursor: n.cursor } : {}) })}`);
    if (state.tree !== t) return;
    for (const c of page.children) n.items.set(c.id, c);
    n.total = page.total;
    n.error = null;
    // The first page read again leaves the cursor of the pages after it as it was.
    if (more || n.pages === 0) {
      n.cursor = page.nextCursor;
      n.pages++;
    }
    if (parentId === t.rootId) $("#d-children").dataset.loaded = "true";
  } catch (e) {
    if (state.tree !== t) return;
    n.error = e.message;
  } finally {
    if (state.tree === t) {
      n.loading = false;
      renderTree();
    }
  }
}

/** What a child came to, short: its result, its error, or how far it got. */
function childOutcome(c) {
  const cut = (s, n) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);
  if (c.status === "succeeded") return c.result === null || c.result === undefined ? "" : `→ ${cut(JSON.stringify(c.result), 80)}`;
  if (c.error && (c.status === "failed" || c.status === "cancelled")) return cut(`${c.error.code}: ${c.error.message}`, 100);
  return "";
}

function childLine(t, c) {
  const sub = t.nodes.get(c.id);
  const open = sub?.open === true;
  // A running child's heartbeat and progress move on every read: not a reason to rebuild its line.
  const sig = JSON.stringify(c, (k, v) => (k === "heartbeatAt" || k === "progress" ? undefined : v)) + (open ? "+" : "-");
  const kept = t.lines.get(c.id);
  if (kept && kept.sig === sig) return kept.line;
  const kids = c.children?.total ?? 0;
  const outcome = childOutcome(c);
  const failed = c.status === "failed" || c.status === "cancelled";
  const line = el("div", { class: "child-line", role: "button", tabindex: 0, title: "show this job", dataset: { jobId: c.id },
      onclick: () => openDetail(c.id),
      onkeydown: (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); openDetail(c.id); } } },
    el("span", { class: "mono hint child-index" }, `#${c.childIndex ?? "?"}`),
    el("span", { class: "mono child-id", title: c.id }, c.id.slice(-10)),
    el("span", { class: "child-type" }, c.type),
    el("span", { class: `badge status ${c.status}` }, c.status),
    c.stale ? staleFlag() : null,
    c.childKey !== null && c.childKey !== undefined ? el("span", { class: "mono child-key", title: "its key" }, c.childKey) : null,
    outcome ? el("span", { class: `child-outcome ${failed ? "error" : "hint"}`, title: outcome }, outcome) : null,
    kids
      ? el("button", { type: "button", class: "ghost expander", dataset: { action: "expand" }, "aria-expanded": open ? "true" : "false", title: open ? "hide its children" : "show its children here",
          onclick: (ev) => {
            ev.stopPropagation();
            toggleBranch(c.id);
          } }, `${open ? "▾" : "▸"} ${kids} ${kids === 1 ? "child" : "children"}`)
      : null,
  );
  t.lines.set(c.id, { sig, line });
  return line;
}

function toggleBranch(id) {
  const t = state.tree;
  if (!t) return;
  const n = treeNode(t, id);
  n.open = !n.open;
  renderTree();
  if (n.open && n.pages === 0) void loadChildren(id, { more: false });
}

/** The line under a branch's children: Load more, how many are shown, a failed read. */
function branchFoot(t, parentId, n) {
  let r = t.mores.get(parentId);
  if (!r) {
    const btn = el("button", { type: "button", class: "more-children", dataset: { action: "more-children" }, onclick: () => void loadChildren(parentId, { more: true }) }, "Load more");
    const note = el("span", { class: "hint" });
    r = { btn, note, li: el("li", { class: "tree-foot" }, btn, " ", note) };
    t.mores.set(parentId, r);
  }
  const shown = n.items.size;
  r.btn.hidden = !n.cursor;
  r.btn.disabled = n.loading;
  r.btn.textContent = n.loading && n.pages > 0 ? "Loading…" : "Load more";
  const text = n.error
    ? `cannot read the children: ${n.error}`
    : n.pages === 0
      ? "loading…"
      : n.total === 0 || (shown === 0 && !n.cursor)
        ? "no children to show"
        : n.cursor
          ? `${shown} of ${n.total} shown`
          : "";
  if (r.note.textContent !== text) r.note.textContent = text;
  r.note.className = n.error ? "error" : "hint";
  return n.cursor || text ? r.li : null;
}

function place(container, nodes) {
  nodes.forEach((node, i) => {
    if (container.children[i] !== node) container.insertBefore(node, container.children[i] ?? null);
  });
  while (container.children.length > nodes.length) container.lastElementChild.remove();
}

function branch(t, parentId) {
  const n = treeNode(t, parentId);
  let ul = t.uls.get(parentId);
  if (!ul) {
    ul = el("ul", { class: "tree", dataset: { parentId } });
    t.uls.set(parentId, ul);
  }
  const kids = [...n.items.values()].sort((a, b) => (a.childIndex ?? 0) - (b.childIndex ?? 0));
  const lis = kids.map((c) => {
    let li = t.lis.get(c.id);
    if (!li) {
      li = el("li", { class: "tree-item", dataset: { jobId: c.id } });
      t.lis.set(c.id, li);
    }
    li.dataset.status = c.status;
    li.dataset.index = String(c.childIndex ?? "");
    const sub = t.nodes.get(c.id);
    place(li, [childLine(t, c), ...(sub?.open ? [branch(t, c.id)] : [])]);
    return li;
  });
  const foot = branchFoot(t, parentId, n);
  place(ul, foot ? [...lis, foot] : lis);
  return ul;
}

function renderTree() {
  const t = state.tree;
  if (!t) return;
  place($("#d-children"), [branch(t, t.rootId)]);
}

/** The detail's Cancel/Retry are rebuilt only when what they act on changed, or an action on it ended. */
function renderDetailActions(j) {
  const box = $("#d-actions");
  const sig = `${j.id}|${j.status}|${j.cancelRequested}|${pending.has(`cancel:${j.id}`)}|${pending.has(`retry:${j.id}`)}`;
  if (box.dataset.sig === sig) return;
  box.dataset.sig = sig;
  box.replaceChildren(...jobButtons(j).filter(Boolean));
}

function renderWhy(why) {
  const facts = [
    ["state", why.state],
    ["reason", why.reason],
    ["since", when(why.since)],
    ...(why.until ? [["until", when(why.until)]] : []),
    ...(why.worker ? [["worker", why.worker]] : []),
    ...(typeof why.rings === "number" ? [["doorbells re-rung", String(why.rings)]] : []),
  ];
  $("#d-why").replaceChildren(
    el("p", { class: "why-message", dataset: { reason: why.reason ?? "" } }, why.message ?? ""),
    el("dl", { class: "summary" }, ...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v ?? "–")])),
  );
}

function renderAttempts(attempts) {
  if (!attempts.length) return $("#d-attempts").replaceChildren(el("p", { class: "hint" }, "no attempt yet"));
  $("#d-attempts").replaceChildren(
    ...attempts.map((a) =>
      el("div", { class: "attempt", dataset: { attempt: a.attempt, outcome: a.outcome ?? "running" } },
        el("div", { class: "attempt-head" },
          el("strong", {}, `#${a.attempt}`),
          el("span", { class: "mono" }, a.worker),
          el("span", { class: "hint" }, `${when(a.startedAt)} → ${a.endedAt ? when(a.endedAt) : "still running"}`),
          el("span", { class: `badge outcome ${a.outcome ?? "running"}` }, a.outcome ?? "running"),
        ),
        a.error
          ? el("div", { class: "attempt-error" },
              el("span", { class: "error-code mono" }, a.error.code), " ",
              el("span", { class: "error-message" }, a.error.message),
              // textContent of a <pre>: the stack is shown exactly as thrown, never parsed as markup.
              a.error.stack ? el("pre", { class: "stack" }, a.error.stack) : el("p", { class: "hint" }, "no stack trace kept"),
            )
          : null,
      ),
    ),
  );
}

function renderLogs(out) {
  $("#d-logs-note").textContent = `${out.lines.length} line(s) from ${out.source === "cloudwatch" ? "CloudWatch Logs" : "the local runtime"}${out.complete ? "" : " — not all of them: the limit or the query's time ran out"}`;
  $("#d-logs tbody").replaceChildren(
    ...(out.lines.length
      ? out.lines.map((l) => {
          const fields = l.fields && Object.keys(l.fields).length ? JSON.stringify(l.fields) : "";
          return el("tr", { class: `log-line ${l.level}`, dataset: { level: l.level, attempt: l.attempt ?? "" } },
            el("td", { class: "mono nowrap" }, new Date(l.at).toLocaleTimeString()),
            el("td", {}, l.level),
            el("td", {}, l.attempt ?? ""),
            el("td", { class: "mono" }, l.workerId ?? ""),
            el("td", { class: "log-message" }, l.message, fields ? el("div", { class: "hint mono" }, fields) : null),
          );
        })
      : [el("tr", {}, el("td", { colspan: 5, class: "hint" }, "no log lines for this job"))]),
  );
}

// ─── bulk actions ───────────────────────────────────────────────────────────────────────────

/** One bulk request, followed through every nextCursor; the counts are summed. */
async function bulk(action, scope, dryRun) {
  const total = { matched: 0, acted: 0, skipped: 0 };
  let cursor = null;
  do {
    let out;
    try {
      out = await api("POST", `/admin/jobs/${action}`, { ...scope, dryRun, ...(cursor ? { cursor } : {}) });
    } catch (e) {
      // The pages already done stay done: the caller says how far it got.
      e.partial = total;
      throw e;
    }
    total.matched += out.matched;
    total.acted += out.acted;
    total.skipped += out.skipped;
    cursor = out.nextCursor;
    $("#bulk-msg").textContent = `${dryRun ? "counting" : action === "retry" ? "retrying" : "cancelling"}… ${dryRun ? total.matched : total.acted}`;
  } while (cursor);
  return total;
}

let pendingBulk = null;

function bulkScope() {
  const scope = {};
  const type = $("#bulk-type").value.trim();
  const queue = $("#bulk-queue").value;
  if (type) scope.type = type;
  if (queue) scope.queue = queue;
  return scope;
}

const scopeText = (s) => [s.type ? `type ${s.type}` : null, s.queue ? `queue ${s.queue}` : null].filter(Boolean).join(" on ");

function resetBulk(message = "") {
  pendingBulk = null;
  delete $("#bulk-msg").dataset.matched;
  delete $("#bulk-msg").dataset.acted;
  $("#bulk-confirm").hidden = true;
  $("#bulk-abort").hidden = true;
  $("#bulk-retry").disabled = false;
  $("#bulk-cancel").disabled = false;
  $("#bulk-msg").textContent = message;
}

/** A dry run first: it says how many jobs would be touched, and nothing happens until Confirm. */
async function startBulk(action) {
  const scope = bulkScope();
  if (!scope.type && !scope.queue) return resetBulk("name a type and/or a queue first");
  $("#bulk-retry").disabled = true;
  $("#bulk-cancel").disabled = true;
  try {
    const counted = await bulk(action, scope, true);
    if (JSON.stringify(bulkScope()) !== JSON.stringify(scope)) return resetBulk("the scope changed while counting: ask again");
    const what = action === "retry" ? "failed" : "queued or running";
    if (!counted.matched) return resetBulk(`no ${what} job of ${scopeText(scope)}`);
    pendingBulk = { action, scope, matched: counted.matched };
    $("#bulk-msg").textContent = `dry run: ${counted.matched} ${what} job(s) of ${scopeText(scope)} would be ${action === "retry" ? "queued again" : "cancelled"}`;
    $("#bulk-msg").dataset.matched = String(counted.matched);
    $("#bulk-confirm").textContent = `${action === "retry" ? "Retry" : "Cancel"} ${counted.matched} job(s)`;
    $("#bulk-confirm").hidden = false;
    $("#bulk-abort").hidden = false;
  } catch (e) {
    resetBulk(`${action}: ${e.message}`);
  }
}

async function confirmBulk() {
  const p = pendingBulk;
  if (!p) return;
  pendingBulk = null;
  $("#bulk-confirm").hidden = true;
  $("#bulk-abort").hidden = true;
  try {
    const done = await bulk(p.action, p.scope, false);
    const verb = p.action === "retry" ? "queued again" : "cancelled (or cancel requested)";
    resetBulk(`${done.acted} job(s) of ${scopeText(p.scope)} ${verb}${done.skipped ? `, ${done.skipped} skipped (they had moved on)` : ""}`);
    $("#bulk-msg").dataset.acted = String(done.acted);
    toast(`bulk ${p.action}: ${done.acted} done`);
    await search();
  } catch (e) {
    const acted = e.partial?.acted ?? 0;
    resetBulk(`${p.action}: ${acted ? `${p.action === "retry" ? "retried" : "cancelled"} ${acted}, then: ` : ""}${e.message}`);
    if (acted) {
      $("#bulk-msg").dataset.acted = String(acted);
      void search().catch(() => undefined);
    }
  }
}

// ─── polling ────────────────────────────────────────────────────────────────────────────────

let inFlight = false;
let polls = 0;
async function refresh() {
  if (inFlight || !token) return;
  inFlight = true;
  polls++;
  try {
    const local = state.localPanels
      ? Promise.all([api("GET", "/local/alarms"), api("GET", "/local/history")]).catch((e) => {
          if (e instanceof ApiError && e.status === 404) return null;
          throw e;
        })
      : Promise.resolve(null);
    // The admin-only reads: a 403 means this sign-in lacks the admin role, not a bad sign-in.
    const adminRead = (path) => (state.adminPanels ? api("GET", path).catch((e) => ({ error: e })) : Promise.resolve(null));
    // The jobs list has its own catch: a filter the API rejects says so by the search form and
    // leaves the other panels polling. A 401 (or a 403 on this non-admin route) still signs out.
    const list = refreshFirstPage().then(
      () => {
        if (state.listError) $("#more-msg").textContent = "";
        state.listError = false;
      },
      (e) => {
        if (e instanceof ApiError && (e.status === 401 || e.status === 403)) throw e;
        state.listError = true;
        $("#more-msg").textContent = `cannot list jobs: ${e.message}`;
      },
    );
    // Every caller's own schedules (the admin's: all); a failed read says so in its panel.
    const schedulesRead = api("GET", "/schedules").catch((e) => ({ error: e }));
    const [, workersOut, localOut, queuesOut, controlsOut, schedulesOut] = await Promise.all([list, adminRead("/admin/workers"), local, adminRead("/admin/queues"), adminRead("/admin/controls"), schedulesRead]);
    for (const out of [workersOut, queuesOut, controlsOut, schedulesOut]) if (out?.error instanceof ApiError && out.error.status === 401) throw out.error;
    if ([workersOut, queuesOut, controlsOut].some((out) => out?.error instanceof ApiError && out.error.status === 403)) hideAdminPanels();
    if (workersOut?.error) $("#workers-note").textContent = `cannot read the workers: ${workersOut.error.message}`;
    else if (workersOut) {
      $("#workers-note").textContent = "";
      renderWorkers(workersOut.workers);
    }
    if (queuesOut?.error) $("#queues-note").textContent = `cannot read the queues: ${queuesOut.error.message}`;
    else if (queuesOut) {
      $("#queues-note").textContent = "";
      renderQueues(queuesOut.queues);
    }
    // An API older than the controls or the schedules answers 404 (or something else): the panel says so.
    if (controlsOut?.error) $("#controls-note").textContent = `cannot read the pauses and limits: ${controlsOut.error.message}`;
    else if (controlsOut && !(Array.isArray(controlsOut.pauses) && Array.isArray(controlsOut.limits))) $("#controls-note").textContent = "cannot read the pauses and limits: the API's answer has none";
    else if (controlsOut) {
      $("#controls-note").textContent = "";
      renderControls(controlsOut);
    }
    if (schedulesOut.error) $("#schedules-note").textContent = `cannot read the schedules: ${schedulesOut.error.message}`;
    else if (!Array.isArray(schedulesOut.schedules)) $("#schedules-note").textContent = "cannot read the schedules: the API's answer has none";
    else {
      $("#schedules-note").textContent = "";
      renderSchedules(schedulesOut.schedules);
    }
    if (localOut) {
      renderAlarms(localOut[0]);
      renderChart(localOut[1].states);
    } else if (state.localPanels) {
      hideLocalPanels();
    }
    // An open detail follows its job while it is queued or running, or the table shows it moved
    // on (a finished one is read again on Refresh or after an action); every other poll is
    // enough for a person. Not awaited: a slow detail or log read never holds up the page.
    const d = state.detailJob;
    const tableSays = d && state.jobs.get(d.id)?.status;
    if (state.detailId && d?.id === state.detailId && !state.detailLoading && (isLive(d) || (tableSays && tableSays !== d.status)) && polls % 2 === 0) {
      void loadDetail(state.detailId);
    }
    $("#conn").className = "dot ok";
    $("#updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
      showLogin(e.status === 401 ? (state.mode === "stage" ? "That session key is not this run's." : "That token was refused.") : e.message);
    } else {
      $("#conn").className = "dot bad";
      $("#updated").textContent = `cannot reach the API: ${e.message}`;
    }
  } finally {
    inFlight = false;
  }
}

/** Signed in without the admin role: the queues, workers and controls panels say so instead of asking each poll. */
function hideAdminPanels() {
  state.adminPanels = false;
  for (const e of document.querySelectorAll(".admin-only")) e.hidden = true;
  for (const e of document.querySelectorAll(".admin-note")) e.hidden = false;
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

/**
 * Behind `warden dashboard` the page is told which stage it shows (and the proxy holds the
 * credentials: the page has only this run's session key); npm start's gateway has no such file.
 */
async function detectMode() {
  const res = await fetch("/dashboard/session.json", { headers: token ? { authorization: `Bearer ${token}` } : {} }).catch(() => undefined);
  if (!res || res.status === 404) return;
  state.mode = "stage";
  document.body.dataset.mode = "stage";
  $("#login-local").hidden = true;
  $("#login-stage").hidden = false;
  $("#token-input").placeholder = "session key";
  const info = res.ok ? await res.json().catch(() => ({})) : {};
  $("#mode").textContent = info.api ? `${new URL(info.api).host} · ${info.auth}` : "stage";
  document.title = `Warden — ${info.api ? new URL(info.api).host : "stage"}`;
  // A stage has no /local/ routes: no need to ask.
  hideLocalPanels();
}

function signIn() {
  // A new sign-in may have the admin role: ask again.
  state.adminPanels = true;
  for (const e of document.querySelectorAll(".admin-only")) e.hidden = false;
  for (const e of document.querySelectorAll(".admin-note")) e.hidden = true;
  showApp();
  void detectMode().then(search).catch(() => undefined).then(refresh);
}

$("#login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  token = $("#token-input").value.trim();
  localStorage.setItem("warden.adminToken", token);
  signIn();
});
$("#forget").addEventListener("click", () => {
  localStorage.removeItem("warden.adminToken");
  token = null;
  showLogin();
});
$("#sweep").addEventListener("click", (ev) =>
  act(ev.currentTarget, "sweep", "POST", "/admin/sweep", {}, (o) => {
    const counts = Object.entries(o.report?.counts ?? {}).filter(([, v]) => typeof v === "number" && v > 0);
    return `sweep: ${counts.length ? counts.map(([k, v]) => `${k} ${v}`).join(", ") : "nothing to repair"}`;
  }),
);
$("#search").addEventListener("submit", (ev) => {
  ev.preventDefault();
  void search().catch(() => undefined);
});
$("#search-clear").addEventListener("click", () => {
  $("#search").reset();
  void search().catch(() => undefined);
});
$("#more").addEventListener("click", () => void loadPages(state.cursor).catch(() => undefined));
$("#bulk-retry").addEventListener("click", () => void startBulk("retry"));
$("#bulk-cancel").addEventListener("click", () => void startBulk("cancel"));
$("#bulk-confirm").addEventListener("click", () => void confirmBulk());
$("#bulk-abort").addEventListener("click", () => resetBulk("nothing was changed"));
// A dry run counted one scope: changing it drops the pending Confirm.
for (const sel of ["#bulk-type", "#bulk-queue"]) {
  for (const type of ["input", "change"]) $(sel).addEventListener(type, () => pendingBulk && resetBulk("the scope changed: count again"));
}
$("#bulk").addEventListener("submit", (ev) => ev.preventDefault());
$("#detail-close").addEventListener("click", closeDetail);
$("#detail-refresh").addEventListener("click", () => state.detailId && void loadDetail(state.detailId, { logs: true }));
document.addEventListener("keydown", (ev) => {
  if (ev.key === "Escape" && state.detailId) closeDetail();
});
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
  signIn();
} else {
  void detectMode().finally(() => showLogin());
}
// A stage is polled half as often: each poll is a few API calls on someone's bill.
let ticks = 0;
setInterval(() => {
  if (state.mode === "stage" && ticks++ % 2) return;
  void refresh();
}, 1000);
