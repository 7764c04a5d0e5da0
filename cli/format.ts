/** How the CLI shows things to people: aligned tables, a job's details, a progress bar. */
import type {
  ApiChildren,
  ApiHold,
  ApiJob,
  ApiWorker,
  AttemptDetail,
  BulkTotal,
  Controls,
  ControlsWoken,
  DeadLetterReport,
  JobLogs,
  JobWhy,
  QueueDepth,
  Schedule,
  StuckReport,
  SweepReport,
} from "../client/index.js";

export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join("  ").trimEnd();
  return [line(headers), ...rows.map(line)].join("\n");
}

export function percentOf(job: ApiJob): string {
  const p = job.progress?.percent;
  if (job.status === "succeeded") return "100%";
  return typeof p === "number" ? `${p.toFixed(p < 10 ? 1 : 0)}%` : "-";
}

/** C0 and C1 control characters (newline, carriage return, the ESC that starts an ANSI sequence, ...). */
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
/** ANSI escape sequences: CSI (colours, cursor moves) and OSC (titles, links). */
const ANSI = /\u001b(?:\[[0-?]*[ -\/]*[@-~]|\][^\u0007\u001b]*(?:\u0007|\u001b\\)?)/g;

/**
 * Text from a job (a log message, an error message) on one line of ours: JSON-escaped when it
 * holds a control character, so a newline cannot forge a line and an escape cannot reach the terminal.
 */
export const oneLine = (text: string): string => (CONTROL.test(text) ? JSON.stringify(text) : text);

/** Multi-line text from a job (a stack): its lines kept, ANSI sequences and every other control character dropped. */
const withoutControls = (text: string): string => text.replace(ANSI, "").replace(/\r\n?/g, "\n").replace(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/g, "");

const short = (iso: string | null): string => (iso ? iso.replace("T", " ").replace(/\.\d+Z$/, "Z") : "-");

/** A span of time as a person says it: 42s, 3m 10s, 2h 5m, 3d 4h. */
export function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  const [d, h, m] = [Math.floor(s / 86_400), Math.floor((s % 86_400) / 3600), Math.floor((s % 3600) / 60)];
  if (d) return h ? `${d}d ${h}h` : `${d}d`;
  if (h) return m ? `${h}h ${m}m` : `${h}h`;
  return s % 60 ? `${m}m ${s % 60}s` : `${m}m`;
}

/** A time of today (UTC) as 12:01:05Z, any other as the full date; `now` decides which is today. */
export function clock(iso: string, now: number): string {
  const sameDay = iso.slice(0, 10) === new Date(now).toISOString().slice(0, 10);
  return sameDay ? iso.slice(11, 19) + "Z" : short(iso);
}

/** "12:01:05Z (3m ago)" or "12:01:05Z (in 2h)". */
function when(iso: string, now: number): string {
  return `${clock(iso, now)} (${fromNow(iso, now)})`;
}

/** "now", "in 2h", "3m ago". */
function fromNow(iso: string, now: number): string {
  const d = Date.parse(iso) - now;
  return Math.abs(d) < 1000 ? "now" : d > 0 ? `in ${duration(d)}` : `${duration(-d)} ago`;
}

export function jobsTable(jobs: ApiJob[]): string {
  return table(
    ["ID", "TYPE", "QUEUE", "STATUS", "PROGRESS", "ATTEMPTS", "CREATED"],
    jobs.map((j) => [j.id, j.type, j.queue, statusLabel(j), percentOf(j), `${j.attempts}/${j.maxAttempts}`, short(j.createdAt)]),
  );
}

/** What holds a queued job back, in a word or two (`held` is absent from an older API's answer). */
const HELD_LABEL: Record<ApiHold["by"], string> = { pause: "paused", concurrency: "at its concurrency limit", rate: "rate limited" };

const statusLabel = (j: ApiJob): string =>
  j.stale ? `${j.status} (stale)` : j.cancelRequested ? `${j.status} (cancelling)` : j.held ? `${j.status} (${HELD_LABEL[j.held.by] ?? "held"})` : j.status;

/**
 * A held job's `held` row: what holds it, since when, and what frees it. Built from the
 * structured fields; the API's own message is the fallback for a hold this CLI does not know.
 */
function holdText(h: ApiHold): string {
  switch (h.by) {
    case "pause":
      return `${h.key} is paused (since ${short(h.since)}); it starts when \`warden resume ${h.key}\` ends the pause`;
    case "concurrency":
      return `${h.key} runs as many jobs as its concurrency limit allows (held since ${short(h.since)}); it starts when one of them ends (see \`warden limits\`)`;
    case "rate":
      return `${h.key} started as many jobs as its rate limit allows; it may start at ${short(h.until)} (see \`warden limits\`)`;
    default:
      return oneLine((h as ApiHold).message);
  }
}

/** "3 queued, 2 running, 115 succeeded": a parent's children by status, the zero counts left out ("" when none is known). */
export function childCounts(c: ApiChildren): string {
  const parts: string[] = [];
  const add = (n: number | null, label: string): void => {
    if (n) parts.push(`${n} ${label}`);
  };
  // Counted from the records (up to 100 children), the live ones are split by status; beyond, the fan-in knows only the ended ones.
  if (c.exact) {
    add(c.queued, "queued");
    add(c.running, "running");
    add(c.waiting, "waiting");
  } else {
    add(c.live, "not ended");
  }
  add(c.succeeded, "succeeded");
  add(c.failed, "failed");
  add(c.cancelled, "cancelled");
  return parts.join(", ");
}

const childrenNoun = (n: number): string => `${n} ${n === 1 ? "child" : "children"}`;

/** A child's place: "01PARENT… (child #3, key "eu/a/q1")". */
const parentText = (j: ApiJob): string =>
  `${j.parentId}${j.childIndex !== null ? ` (child #${j.childIndex}${j.childKey !== null ? `, key ${JSON.stringify(j.childKey)}` : ""})` : ""}`;

/** The rows a flow adds: the parent of a child, the children of a parent. */
function flowRows(j: ApiJob): [string, string][] {
  const rows: [string, string][] = [];
  if (j.parentId) rows.push(["parent", parentText(j)]);
  if (j.children) {
    const counts = childCounts(j.children);
    rows.push(["children", `${j.children.total}${counts ? ` (${counts})` : ""}; \`warden tree ${j.id}\` lists them`]);
  }
  return rows;
}

function jobRows(j: ApiJob): [string, string][] {
  return [
    ["id", j.id],
    ["type", j.type],
    ["queue", j.queue],
    ["status", statusLabel(j)],
    ...(j.held ? ([["held", holdText(j.held)]] as [string, string][]) : []),
    ...(j.worker ? ([["worker", j.worker]] as [string, string][]) : []),
    ...(j.concurrencyKey ? ([["concurrencyKey", j.concurrencyKey]] as [string, string][]) : []),
    ...(j.priority && j.priority !== "normal" ? ([["priority", j.priority]] as [string, string][]) : []),
    ...flowRows(j),
    ["progress", j.progress ? `${percentOf(j)}${j.progress.total !== null ? ` (${j.progress.done}/${j.progress.total})` : ""}${j.progress.message ? ` ${j.progress.message}` : ""}` : "-"],
    ["attempts", `${j.attempts} of ${j.maxAttempts}`],
    ["created", short(j.createdAt)],
    ["started", short(j.startedAt ?? j.firstStartedAt)],
    ["heartbeat", short(j.heartbeatAt)],
    ["finished", short(j.finishedAt)],
    ...(j.runAt ? ([["runAt", short(j.runAt)]] as [string, string][]) : []),
    ["error", j.error ? `${j.error.code}: ${j.error.message}` : "-"],
    ["result", j.result === null ? "-" : JSON.stringify(j.result)],
  ];
}

const aligned = (rows: [string, string][]): string => {
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join("\n");
};

const indent = (text: string, by = "  "): string =>
  text
    .split("\n")
    .map((l) => (l ? `${by}${l}` : l))
    .join("\n");

export function jobDetails(j: ApiJob): string {
  const history = j.history.length
    ? "\nhistory:\n" +
      indent(
        table(
          ["ATTEMPT", "WORKER", "STARTED", "ENDED", "OUTCOME", "ERROR"],
          j.history.map((h) => [String(h.attempt), h.worker, short(h.startedAt), short(h.endedAt), h.outcome ?? "running", h.error ? h.error.code : ""]),
        ),
      )
    : "";
  return aligned(jobRows(j)) + history + actionsText(j);
}

/** Who cancelled or retried the job, and when (the owner, or the admin). */
function actionsText(j: ApiJob): string {
  const actions = j.actions ?? [];
  if (!actions.length) return "";
  return "\nactions:\n" + indent(table(["AT", "ACTION", "BY"], actions.map((a) => [short(a.at), a.action, a.by])));
}

/** Inputs can be up to 200 KiB: a screenful is shown, `--json` has the rest. */
const SHOWN_INPUT_CHARS = 2_000;

function inputText(value: unknown): string {
  const input = value === null ? "-" : JSON.stringify(value);
  return input.length > SHOWN_INPUT_CHARS ? `${input.slice(0, SHOWN_INPUT_CHARS)}… (${input.length} characters; --json shows it all)` : input;
}

/**
 * `warden show`: the job, why it is where it is (unfinished jobs), its input, and every attempt
 * with its worker, times, error and stack, then who cancelled or retried it.
 */
export function showText(j: ApiJob, attempts: AttemptDetail[], why: JobWhy | undefined, now: number): string {
  const rows = jobRows(j);
  rows.splice(rows.findIndex(([k]) => k === "result"), 0, ["input", inputText(j.input)]);
  // Right under the status (and the worker holding it): the first thing an on-call person asks.
  // A held job's why line says what holds it, so it takes the place of the held row.
  if (why) {
    const held = rows.findIndex(([k]) => k === "held");
    if (held >= 0 && HOLD_REASONS.has(why.reason)) rows.splice(held, 1);
    rows.splice(rows.findIndex(([k]) => k === (j.worker ? "worker" : "status")) + 1, 0, ["why", whyLine(why, j.id, now, j.held)]);
  }
  const parts = [aligned(rows)];
  parts.push(attempts.length ? `attempts:\n${attempts.map((a) => indent(attemptText(a))).join("\n")}` : "attempts: none yet");
  const actions = actionsText(j);
  if (actions) parts.push(actions.slice(1));
  return parts.join("\n");
}

function attemptText(a: AttemptDetail): string {
  const span = a.endedAt ? `${short(a.startedAt)} → ${short(a.endedAt)} (${duration(Date.parse(a.endedAt) - Date.parse(a.startedAt))})` : `${short(a.startedAt)} → (running)`;
  const head = `#${a.attempt}  ${a.worker}  ${span}  ${a.outcome ?? "running"}`;
  if (!a.error) return head;
  const lines = [head, `    ${oneLine(a.error.code)}: ${oneLine(a.error.message)}`];
  if (a.error.stack) {
    // Every stack line is indented under the attempt, so none can pass for a new attempt.
    const stack = withoutControls(a.error.stack).split("\n");
    // A stack's first line is usually "Error: <message>", which was just printed.
    const first = withoutControls(a.error.message).split("\n")[0] ?? "";
    if (stack[0]?.includes(first)) stack.shift();
    lines.push(...stack.filter((l) => l.trim()).map((l) => `      ${l.trim()}`));
  }
  return lines.join("\n");
}

/** The why reasons of a held job (a pause, a concurrency or a rate limit); its `held` names the key. */
export const HOLD_REASONS: ReadonlySet<JobWhy["reason"]> = new Set(["paused", "concurrency_limit", "rate_limit"]);

/**
 * The one-line answer to "why is this job not running?": the state, the reason in words, and
 * where to look next. Built from the structured fields so the times read alike everywhere; the
 * API's own message is the fallback for a reason this CLI does not know yet. A held job's line
 * names what holds it from the job's `held` (the why answer has it only in its message).
 */
export function whyLine(w: JobWhy, id: string, now: number, held?: ApiHold | null): string {
  const at = (iso: string | null): string | undefined => (iso ? when(iso, now) : undefined);
  const since = at(w.since);
  const until = at(w.until);
  const worker = w.worker ?? "its worker";
  // The API's message for a failed job starts with its error code, which the words here already say.
  const detail = w.message.replace(/^(attempts_exhausted|timeout): /, "");
  const known = ((): string | undefined => {
    switch (w.reason) {
      case "run_at":
        return until && `queued, waiting for its runAt: it may start at ${until}`;
      case "backoff":
        return until && `queued, backing off after a failed attempt: it is retried at ${until}`;
      case "waiting":
        return since && `queued, waiting for a worker: ready since ${since}, not yet claimed`;
      case "not_claimed":
        return (
          since &&
          `queued, not claimed: doorbell rung ${w.rings ?? 0} time${w.rings === 1 ? "" : "s"} since ${since} and no worker claimed it; check \`warden workers\``
        );
      case "running":
        return `running on ${worker}${until ? `, lease held until ${until}` : ""}`;
      case "worker_unresponsive":
        return `running, but ${worker} has not reported${since ? ` since ${since}` : ""}; it holds the lease${until ? ` until ${until}` : ""}, and the job is taken back if it stays silent (see \`warden workers\`)`;
      case "lease_expired":
        return `running, but no heartbeat from ${worker}${since ? ` since ${since}` : ""}; the sweeper takes it back (see \`warden stuck\`)`;
      case "cancel_requested":
        return `running, cancel requested${since ? ` at ${since}` : ""}: it stops when ${worker} sees it`;
      case "children":
        return `${w.message}; see \`warden tree ${id}\``;
      case "paused":
        return held?.by === "pause" ? `queued, held: ${held.key} is paused${since ? ` since ${since}` : ""}; it starts when \`warden resume ${held.key}\` ends the pause` : undefined;
      case "concurrency_limit":
        return held?.by === "concurrency"
          ? `queued, held by ${held.key}'s concurrency limit: as many jobs as it allows are running${since ? ` (held since ${since})` : ""}; it starts when one of them ends (see \`warden limits\`)`
          : undefined;
      case "rate_limit":
        return held?.by === "rate" && until ? `queued, held by ${held.key}'s rate limit: it may start at ${until} (see \`warden limits\`)` : undefined;
      case "succeeded":
        return `succeeded${since ? ` at ${since}` : ""}`;
      case "failed":
        return `failed: ${w.message}; see \`warden show ${id}\` and \`warden logs ${id}\``;
      case "attempts_exhausted":
        return `failed, attempts exhausted: ${detail}; see \`warden show ${id}\``;
      case "timeout":
        return `failed, out of time: ${detail}; see \`warden show ${id}\``;
      case "cancelled":
        return `cancelled${since ? ` at ${since}` : ""}${w.message ? `: ${w.message}` : ""}`;
      default:
        return undefined;
    }
  })();
  return known ?? `${w.state}, ${String(w.reason).replace(/_/g, " ")}: ${w.message}`;
}

/** `fields` as key=value, strings bare unless they hold spaces or quotes. */
function fieldsText(fields: Record<string, unknown>): string {
  return Object.entries(fields)
    .map(([k, v]) => `${oneLine(k)}=${typeof v === "string" && !/[\s"=]/.test(v) && !CONTROL.test(v) && v !== "" ? v : JSON.stringify(v)}`)
    .join(" ");
}

/** A job's log lines, one per line: time, level, attempt, worker, message, fields. */
export function logLines(r: JobLogs): string {
  const rows = r.lines.map((l) => [
    l.at.replace("T", " "),
    l.level.toUpperCase(),
    l.attempt !== null ? `#${l.attempt}` : "-",
    l.workerId ? oneLine(l.workerId) : "-",
    [oneLine(l.message), fieldsText(l.fields)].filter(Boolean).join("  "),
  ]);
  const widths = [0, 1, 2, 3].map((i) => Math.max(0, ...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i < 4 ? c.padEnd(widths[i]!) : c)).join("  ").trimEnd()).join("\n");
}

/** The note under the lines (on stderr): where they came from, and whether that is all of them. */
export function logsNote(r: JobLogs, id: string): string {
  const count = `${r.lines.length} line${r.lines.length === 1 ? "" : "s"} from ${r.source === "cloudwatch" ? "CloudWatch Logs" : "the local log"}`;
  const lag = r.source === "cloudwatch" && !r.lines.length ? "; CloudWatch can take a minute to show new lines" : "";
  const incomplete = r.complete
    ? ""
    : `; incomplete: the source stopped early (the limit, or a query still running at its deadline), so there may be more: try again, or a larger --limit`;
  return `(${count} for ${id}${lag}${incomplete})`;
}

export function progressBar(j: ApiJob, width = 30): string {
  // A waiting parent's bar is its children's: how many of them have ended.
  const ended = j.status === "waiting" && j.children && j.children.live !== null && j.children.total > 0 ? (100 * (j.children.total - j.children.live)) / j.children.total : undefined;
  const pct = j.status === "succeeded" ? 100 : (ended ?? j.progress?.percent ?? 0);
  const filled = Math.round((Math.max(0, Math.min(100, pct)) / 100) * width);
  const bar = "#".repeat(filled) + "-".repeat(width - filled);
  // A parent waiting on its children has no progress of its own: its children's counts move instead.
  const counts = j.status === "waiting" && j.children ? childCounts(j.children) : "";
  const note = j.progress?.message ? `  ${j.progress.message}` : counts ? `  ${childrenNoun(j.children!.total)}: ${counts}` : "";
  return `[${bar}] ${pct.toFixed(1).padStart(5)}%  ${statusLabel(j)}${note}`;
}

export function stuckText(r: StuckReport): string {
  const states = table(
    ["STATE", "COUNT", "OLDEST (s)", "SAMPLE"],
    Object.entries(r.states).map(([s, v]) => [s, String(v.count), String(v.oldestAgeSeconds), v.sample.slice(0, 3).join(" ")]),
  );
  const dl = Object.entries(r.deadLetters)
    .map(([q, n]) => `${q}=${n}`)
    .join(" ");
  return `${states}\ndead letters: ${dl}\n${notStartingText(r)}\n(as of ${short(r.generatedAt)})`;
}

/**
 * Jobs ready to start that no worker has claimed, per queue: the oldest wait, then each job's.
 * The job list is a sample (the API sends the oldest few), so it says how many are shown, not how many there are.
 */
function notStartingText(r: StuckReport): string {
  // ?? {}: an older API sends no notStarting.
  const all = Object.entries(r.notStarting ?? {});
  const queues = all.filter(([, q]) => q.jobs.length > 0);
  // Waiting, but none yet for a whole start deadline: no sample, but the wait is still news.
  const waiting = all.filter(([, q]) => q.jobs.length === 0 && q.oldestWaitSeconds > 0);
  const waitingText = waiting.map(([queue, q]) => `  ${queue}: oldest waiting ${duration(q.oldestWaitSeconds * 1000)} (none past the start deadline yet)`);
  if (!queues.length && !waiting.length) return "not starting: none (every ready job was claimed)";
  if (!queues.length) return `not starting: none past the start deadline, but ready jobs are waiting:\n${waitingText.join("\n")}`;
  const parts = queues.map(
    ([queue, q]) =>
      `  ${queue}: oldest waiting ${duration(q.oldestWaitSeconds * 1000)}; the oldest ${q.jobs.length} shown (a sample, there may be more)\n` +
      indent(table(["JOB", "WAITED", "RINGS"], q.jobs.map((j) => [j.id, duration(j.waitedSeconds * 1000), String(j.rings)])), "    "),
  );
  return `not starting (ready, but no worker claimed them; check \`warden workers\`):\n${[...parts, ...waitingText].join("\n")}`;
}

export function queuesText(qs: QueueDepth[]): string {
  return table(
    ["QUEUE", "VISIBLE", "IN FLIGHT", "DELAYED", "OLDEST WAIT", "DLQ VISIBLE", "DLQ IN FLIGHT"],
    qs.map((q) => [
      q.queue,
      String(q.visible),
      String(q.inFlight),
      String(q.delayed),
      q.oldestWaitSeconds ? duration(q.oldestWaitSeconds * 1000) : "-",
      String(q.dlq.visible),
      String(q.dlq.inFlight),
    ]),
  );
}

/** What a bulk retry or cancel did (or, dry, would do). `what` names the jobs: "failed job(s) of type demo.x". */
export function bulkText(verb: "retry" | "cancel", t: BulkTotal, what: string, afterwards?: string): string {
  if (t.dryRun) return `would ${verb} ${t.matched} ${what} (dry run: nothing changed)`;
  const done = verb === "retry" ? "retried" : "cancelled";
  const note = afterwards && t.acted ? `; ${afterwards}` : "";
  return `${done} ${t.acted} ${what}, skipped ${t.skipped}${t.skipped ? " that moved meanwhile" : ""} (matched ${t.matched}${t.calls > 1 ? `, in ${t.calls} calls` : ""})${note}`;
}

export function sweepText(r: SweepReport): string {
  const counts = Object.entries(r.counts)
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");
  const head = `swept in ${r.durationMs} ms, read ${r.read} overdue item(s): ${counts}${r.more ? " (more left for the next sweep)" : ""}`;
  const errors = r.errors ?? [];
  const shown = 5;
  const failed = errors.length
    ? `\n${errors.length} repair(s) failed (the next sweep tries them again):\n` +
      errors
        .slice(0, shown)
        .map((e) => `  ${e.jobId}: ${oneLine(e.message)}`)
        .join("\n") +
      (errors.length > shown ? `\n  … and ${errors.length - shown} more (see --json)` : "")
    : "";
  const wait = r.waitError ? `\nthe wait-index read failed, so no OldestUnclaimedSeconds was published: ${oneLine(r.waitError)}` : "";
  return head + failed + wait;
}

export function deadLettersText(r: DeadLetterReport): string {
  const rows: string[][] = [];
  for (const [q, v] of Object.entries(r.queues)) {
    if (!v.sample.length) rows.push([q, String(v.count), "-", "-", "-"]);
    for (const s of v.sample) rows.push([q, String(v.count), s.jobId || "(not a job)", String(s.receiveCount), short(s.firstFailedAt)]);
  }
  return table(["QUEUE", "COUNT", "JOB", "RECEIVES", "FIRST FAILED"], rows);
}

// ─── pauses and limits ──────────────────────────────────────────────────────────────────────

/** A rate limit as `--rate` takes it: 10/1s, 100/60s, 5/0.5s. */
export const rateText = (r: { starts: number; perSeconds: number } | null): string => (r ? `${r.starts}/${r.perSeconds}s` : "-");

/** `warden limits`: the pauses, then the limits, each with the jobs it holds back now. */
export function controlsText(c: Controls, now: number): string {
  if (!c.pauses.length && !c.limits.length) return "no pauses and no limits";
  const pauses = c.pauses.length
    ? table(["PAUSED", "SINCE", "BY", "HELD"], c.pauses.map((p) => [p.target, when(p.since, now), oneLine(p.by), String(p.held)]))
    : "no pauses";
  const limits = c.limits.length
    ? table(
        ["LIMIT", "CONCURRENCY", "RATE", "RUNNING", "HELD", "UPDATED", "BY"],
        c.limits.map((l) => [l.key, l.concurrency === null ? "-" : String(l.concurrency), rateText(l.rate), l.running === null ? "-" : String(l.running), String(l.held), short(l.updatedAt), oneLine(l.by)]),
      )
    : "no limits";
  return `${pauses}\n\n${limits}`;
}

const jobsNoun = (n: number): string => `${n} held job${n === 1 ? "" : "s"}`;

/** `warden pause`: the pause as it stands (since and by say when it was already paused). */
export function pausedText(target: string, c: Controls, now: number): string {
  const p = c.pauses.find((x) => x.target === target);
  if (!p) return `paused ${target}`;
  return `paused ${target} (since ${when(p.since, now)}, by ${oneLine(p.by)}): its queued jobs are held, not started, until \`warden resume ${target}\``;
}

/** `warden resume` and `warden limits rm`: what was ended, and how many held jobs it woke; past `wakeMax`, the sweeper wakes the rest. */
export function wokenText(what: string, c: ControlsWoken, wakeMax: number): string {
  const rest = c.woken >= wakeMax ? "; the sweeper wakes the rest on its next sweeps" : "";
  return `${what}: woke ${jobsNoun(c.woken)}${rest}`;
}

/** `warden limits set`: the key's limit as the API now has it. */
export function limitText(key: string, c: Controls): string {
  const l = c.limits.find((x) => x.key === key);
  if (!l) return `set the limit on ${key}`;
  const starts = (n: number): string => `${n} start${n === 1 ? "" : "s"}`;
  const parts = [...(l.concurrency !== null ? [`concurrency ${l.concurrency}`] : []), ...(l.rate ? [`rate ${rateText(l.rate)} (${starts(l.rate.starts)} in any ${l.rate.perSeconds} s)`] : [])];
  const running = l.running !== null ? `${l.running} running, ` : "";
  return `limit on ${key}: ${parts.join(", ")}; ${running}${l.held} held`;
}

// ─── schedules ──────────────────────────────────────────────────────────────────────────────

/** A fixed rate as `--every` takes it: 30s, 5m, 1h, 2d (the largest unit it is a whole number of). */
export function everyText(seconds: number): string {
  for (const [unit, n] of [["d", 86_400], ["h", 3600], ["m", 60]] as const) if (seconds >= n && seconds % n === 0) return `${seconds / n}${unit}`;
  return `${seconds}s`;
}

/** When it fires: `every 30s`, or the cron and its zone, `30 2 * * * (Asia/Tokyo)`. */
export const cadenceText = (s: Schedule): string => (s.cron !== null ? `${oneLine(s.cron)} (${s.timeZone ?? "UTC"})` : `every ${everyText(s.everySeconds ?? 0)}`);

/** An instant as the clock on the wall of `zone` shows it: 2026-12-03 02:30:00 (falls back to UTC's for a zone this Node does not know). */
export function zoned(iso: string, zone: string): string {
  let parts: Intl.DateTimeFormatPart[];
  try {
    parts = new Intl.DateTimeFormat("en-US", { timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" }).formatToParts(new Date(iso));
  } catch {
    return short(iso);
  }
  const p = (t: Intl.DateTimeFormatPartTypes): string => parts.find((x) => x.type === t)?.value ?? "??";
  return `${p("year")}-${p("month")}-${p("day")} ${p("hour")}:${p("minute")}:${p("second")}`;
}

const countsText = (c: Schedule["counts"]): string => `${c.fired}/${c.skipped}/${c.missed}`;
const catchUpText = (s: Schedule): string => (s.catchUp === "all" ? `all (at most ${s.catchUpMax})` : s.catchUp);

/** `warden schedules`: one line per schedule. */
export function schedulesText(ss: Schedule[], now: number): string {
  if (!ss.length) return "no schedules";
  return table(
    ["ID", "CADENCE", "TYPE", "OVERLAP/CATCH-UP", "PAUSED", "NEXT RUN", "FIRED/SKIPPED/MISSED"],
    ss.map((s) => [s.id, cadenceText(s), s.type, `${s.overlap}/${s.catchUp}`, s.paused ? "yes" : "no", s.nextRuns[0] ? when(s.nextRuns[0], now) : "-", countsText(s.counts)]),
  );
}

/** A run's outcome in words; `count` says how many ticks a missed entry stands for. */
function runOutcome(r: Schedule["lastRuns"][number]): string {
  if (r.outcome === "missed") return `missed${r.count !== null && r.count > 1 ? ` (${r.count} ticks, up to this one)` : ""}`;
  if (r.outcome === "skipped") return "skipped (its previous run was still live)";
  if (r.outcome === "cancelledPrevious") return "fired, cancelling its previous run";
  return r.outcome;
}

/** `warden schedules show`: what it fires and when, its next runs (in its zone too, for a cron), its last runs. */
export function scheduleText(s: Schedule, now: number): string {
  const rows: [string, string][] = [
    ["id", s.id],
    ["type", s.type],
    ["queue", s.queue],
    ["input", inputText(s.input)],
    ...(s.concurrencyKey !== null ? ([["concurrencyKey", s.concurrencyKey]] as [string, string][]) : []),
    ...(s.priority && s.priority !== "normal" ? ([["priority", s.priority]] as [string, string][]) : []),
    ["attempts", String(s.maxAttempts)],
    ["timeout", duration(s.timeoutSeconds * 1000)],
    ["cadence", cadenceText(s)],
    ["overlap", s.overlap],
    ["catch-up", catchUpText(s)],
    ["paused", s.paused ? `yes: no tick fires until \`warden schedules resume ${s.id}\`` : "no"],
    ["counts", `fired ${s.counts.fired}, skipped ${s.counts.skipped}, missed ${s.counts.missed}`],
    ["last job", s.lastJobId ?? "-"],
    ["created", short(s.createdAt)],
    ["updated", short(s.updatedAt)],
  ];
  const zone = s.cron !== null ? (s.timeZone ?? "UTC") : undefined;
  // A cron's ticks are its zone's wall-clock times: they are shown there too, beside UTC.
  const local = zone !== undefined && zone !== "UTC" ? zone : undefined;
  const next = s.nextRuns.length
    ? `next runs:\n${indent(
        table(
          ["AT", ...(local ? [`IN ${local}`] : []), "WHEN"],
          s.nextRuns.map((at) => [short(at), ...(local ? [zoned(at, local)] : []), fromNow(at, now)]),
        ),
      )}`
    : s.paused
      ? "next runs: none while paused"
      : "next runs: none (its cron fires no more)";
  const last = s.lastRuns.length
    ? `last runs (oldest first):\n${indent(table(["AT", "OUTCOME", "JOB"], s.lastRuns.map((r) => [short(r.at), runOutcome(r), r.jobId ?? "-"])))}`
    : "last runs: none yet";
  return [aligned(rows), next, last].join("\n");
}

/** `warden schedules add`, `set`, `resume`: the schedule in a line, and when it fires next. */
export function scheduleLine(verb: string, s: Schedule, now: number): string {
  const next = s.paused ? `paused: no tick fires until \`warden schedules resume ${s.id}\`` : s.nextRuns[0] ? `next run ${when(s.nextRuns[0], now)}` : "its cron fires no more";
  return `${verb} schedule ${s.id}: ${s.type} ${cadenceText(s)}, overlap ${s.overlap}, catch-up ${catchUpText(s)}; ${next}`;
}

export function workersText(ws: ApiWorker[], now: number): string {
  if (!ws.length) return "no workers seen recently";
  const state = (w: ApiWorker): string => {
    if (w.state === "dead") return `dead ${w.diedAt ? short(w.diedAt) : ""} (${w.deathReason ?? "?"})`;
    // Upper case so it stands out in a column of "alive".
    if (w.state === "unresponsive") return `UNRESPONSIVE (silent ${duration(now - Date.parse(w.lastSeenAt))})`;
    return w.state;
  };
  const rows = table(
    ["ID", "KIND", "PID", "STATE", "STARTED", "LAST SEEN", "JOBS"],
    ws.map((w) => [w.id, w.kind, w.pid !== undefined ? String(w.pid) : "-", state(w), short(w.startedAt), short(w.lastSeenAt), w.jobs.join(" ") || "-"]),
  );
  const silent = ws.filter((w) => w.state === "unresponsive");
  if (!silent.length) return rows;
  const held = silent.reduce((n, w) => n + w.jobs.length, 0);
  return (
    `${rows}\n${silent.length} unresponsive worker(s), not seen within their reporting interval: ${silent.map((w) => w.id).join(", ")}` +
    `${held ? ` (holding ${held} job(s); each goes back to its queue if its lease lapses, see \`warden stuck\`)` : ""}`
  );
}

/**
 * An API error's `details`, indented under its message: one line per validation issue
 * (`path: message`), or per field of a details object. Long lists are cut.
 */
export function detailsText(details: unknown, maxLines = 20): string {
  const value = (v: unknown): string => (typeof v === "string" ? v : JSON.stringify(v));
  let lines: string[];
  if (Array.isArray(details)) {
    lines = details.map((d) => {
      if (d === null || typeof d !== "object") return value(d);
      const { path, message, keys, ...rest } = d as { path?: unknown; message?: unknown; keys?: unknown };
      const where = typeof path === "string" && path !== "" ? path : "(input)";
      const extra = Array.isArray(keys) && keys.length ? ` (${keys.map(String).join(", ")})` : "";
      const more = Object.keys(rest).length ? ` ${JSON.stringify(rest)}` : "";
      return message !== undefined ? `${where}: ${value(message)}${extra}${more}` : JSON.stringify(d);
    });
  } else if (details !== null && typeof details === "object") {
    lines = Object.entries(details).map(([k, v]) => `${k}: ${value(v)}`);
  } else if (details === undefined || details === null || details === "") {
    lines = [];
  } else {
    lines = [value(details)];
  }
  const shown = lines.slice(0, maxLines).map((l) => `  ${l}`);
  if (lines.length > maxLines) shown.push(`  … and ${lines.length - maxLines} more`);
  return shown.join("\n");
}

// ─── warden tree ────────────────────────────────────────────────────────────────────────────

/** A job and the children `warden tree` read under it (cli/main.ts readTree); `--json` prints it as is. */
export interface JobTree {
  job: ApiJob;
  /** Its last round's children as read, by place; null when it is no parent or they were not read. */
  children: JobTree[] | null;
  /** How many of its children are not shown, and why: past --limit, below --depth, or past the tree's size bound. */
  notShown: number;
  cut: "limit" | "depth" | "size" | null;
  /** Where `GET /jobs/{id}/children` goes on from (past --limit). */
  nextCursor: string | null;
}

export interface TreeOptions {
  depth: number;
  limit: number;
  /** The most --limit may be: a cut line suggests at most this. */
  maxLimit: number;
  /** The most jobs one tree reads. */
  maxJobs: number;
}

const RESULT_CHARS = 60;
const ERROR_CHARS = 80;
const cut = (s: string, n: number): string => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

/** What a job came to, short: its result, its error, or how far it got. */
function outcomeText(j: ApiJob): string {
  if (j.status === "succeeded") return j.result === null ? "" : `→ ${cut(JSON.stringify(j.result), RESULT_CHARS)}`;
  if (j.error && (j.status === "failed" || j.status === "cancelled")) return `✗ ${oneLine(cut(`${j.error.code}: ${j.error.message}`, ERROR_CHARS))}`;
  if (j.status === "running" && j.progress) return `${percentOf(j)}${j.progress.message ? ` ${oneLine(cut(j.progress.message, RESULT_CHARS))}` : ""}`;
  if (j.error) return `(last: ${j.error.code})`;
  return "";
}

/** One line of the tree: place, id, type, status, key, outcome, and a parent's children. */
function treeLine(j: ApiJob, root: boolean): string {
  const counts = j.children ? childCounts(j.children) : "";
  return [
    root ? "" : j.childIndex !== null ? `#${j.childIndex}` : "",
    j.id,
    j.type,
    statusLabel(j),
    j.childKey !== null && !root ? `key=${oneLine(j.childKey)}` : "",
    outcomeText(j),
    j.children ? `[${childrenNoun(j.children.total)}${counts ? `: ${counts}` : ""}]` : "",
    root && j.parentId ? `(child #${j.childIndex ?? "?"} of ${j.parentId})` : "",
  ]
    .filter(Boolean)
    .join("  ");
}

/** The line that says which children are not shown, and the command that shows them. */
function cutLine(t: JobTree, o: TreeOptions): string | undefined {
  if (!t.notShown || !t.cut) return undefined;
  const id = t.job.id;
  const total = t.job.children?.total ?? t.notShown;
  switch (t.cut) {
    case "limit":
      return Math.min(total, o.maxLimit) > o.limit
        ? `… and ${t.notShown} more (warden tree ${id} --limit ${Math.min(total, o.maxLimit)})`
        : `… and ${t.notShown} more (past the most one tree shows, --limit ${o.maxLimit}; GET /jobs/${id}/children pages through them all)`;
    case "depth":
      return `… ${childrenNoun(t.notShown)} below --depth ${o.depth} (warden tree ${id})`;
    case "size":
      return `… ${childrenNoun(t.notShown)} not shown: one tree reads at most ${o.maxJobs} jobs (warden tree ${id})`;
  }
}

/**
 * `warden tree`: the job, then its children indented under it, one line each, recursing into
 * children that are parents themselves (a chain's steps, a child that fanned out).
 */
export function treeText(t: JobTree, o: TreeOptions): string {
  const lines = [treeLine(t.job, true)];
  const walk = (node: JobTree, prefix: string): void => {
    const more = cutLine(node, o);
    const items: (JobTree | string)[] = [...(node.children ?? []), ...(more ? [more] : [])];
    items.forEach((it, i) => {
      const last = i === items.length - 1;
      const branch = `${prefix}${last ? "└─ " : "├─ "}`;
      if (typeof it === "string") {
        lines.push(branch + it);
        return;
      }
      lines.push(branch + treeLine(it.job, false));
      walk(it, `${prefix}${last ? "   " : "│  "}`);
    });
  };
  walk(t, "");
  return lines.join("\n");
}
