/**
 * The chaos run's verdict, computed from what the run observed: the jobs as DynamoDB holds them
 * at the end, the append-only ledger (handlers' side effects, accepted claims and terminal
 * writes, injected faults) and the parent's own log of kills and message faults. Pure: the
 * guard test feeds it a deliberately broken run and expects violations.
 */
import { isTerminal, type Job } from "../core/job.js";
import { EXPECTED_STATUS, expectedSum } from "./chaos-jobs.js";
import type { LedgerEntry } from "./chaos-ledger.js";

export interface Submitted {
  id: string;
  type: string;
  input: Record<string, unknown>;
  /** The job was written but its message was dropped: only the sweeper can start it. */
  enqueueDropped: boolean;
  at: number;
}

export type Target = "fargate" | "lambda" | "sweeper";
export interface Kill {
  pid: number;
  signal: "SIGKILL" | "SIGTERM";
  target: Target;
  at: number;
  midSweep?: boolean;
}

export interface ChaosFacts {
  submitted: Submitted[];
  jobs: Map<string, Job | undefined>;
  ledger: LedgerEntry[];
  kills: Kill[];
  heartbeatMs: number;
  stepMs: number;
  duplicates: { immediate: number; delayed: number };
}

export interface CheckRow {
  check: string;
  value: string;
  /** null: a figure, not a pass/fail check. */
  ok: boolean | null;
}

export interface Distribution {
  n: number;
  median: number;
  p95: number;
  max: number;
}

export interface ChaosVerdict {
  ok: boolean;
  rows: CheckRow[];
  violations: string[];
  faults: Record<string, number>;
  kills: Record<string, number>;
  deathToRunning: Record<"SIGKILL" | "SIGTERM", Distribution & { samples: number[] }>;
  redo: { resumed: number; maxRedoneSteps: number; maxRedoneMs: number };
  jobsNeedingSweeper: number;
  fencedOut: number;
  statuses: Record<string, number>;
}

const percentile = (s: number[], p: number): number => (s.length ? s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]! : NaN);
export function distribution(values: number[]): Distribution & { samples: number[] } {
  const s = [...values].sort((a, b) => a - b);
  return { n: s.length, median: percentile(s, 50), p95: percentile(s, 95), max: s[s.length - 1] ?? NaN, samples: s };
}

const STEP_TYPES = new Set(["chaos.steps", "chaos.long", "chaos.stall"]);

export function checkChaos(f: ChaosFacts): ChaosVerdict {
  const violations: string[] = [];
  const ordered = [...f.ledger].sort((a, b) => a.at - b.at);
  const byJob = groupBy(ordered.filter((e): e is Extract<LedgerEntry, { job: string }> => "job" in e), (e) => e.job);
  const statuses: Record<string, number> = {};

  // 1. every job terminal; 2. its final state is what its type produces
  let notTerminal = 0;
  let wrongState = 0;
  for (const s of f.submitted) {
    const job = f.jobs.get(s.id);
    const status = job?.status ?? "missing";
    statuses[status] = (statuses[status] ?? 0) + 1;
    if (!job || !isTerminal(job.status)) {
      notTerminal++;
      violations.push(`${s.id} (${s.type}) is ${status}, not terminal`);
      continue;
    }
    const why = wrongOutcome(s, job);
    if (why) {
      wrongState++;
      violations.push(`${s.id} (${s.type}): ${why}`);
    }
  }

  // 3. at most one committed result per job, committed under the job's current fence
  let doubles = 0;
  let unobserved = 0;
  let stale = 0;
  for (const s of f.submitted) {
    const job = f.jobs.get(s.id);
    const commits = (byJob.get(s.id) ?? []).filter((e): e is Extract<LedgerEntry, { k: "commit" }> => e.k === "commit");
    if (commits.length > 1) {
      doubles++;
      violations.push(`${s.id} (${s.type}) has ${commits.length} accepted terminal writes: ${commits.map((c) => `${c.status} by pid ${c.pid} on token ${c.token ?? "none"}`).join("; ")}`);
    }
    if (job && isTerminal(job.status) && commits.length === 0) {
      unobserved++;
      violations.push(`${s.id} (${s.type}) is ${job.status} but no accepted terminal write was observed`);
    }
    const last = commits[commits.length - 1];
    if (job && last && last.token !== null && last.status === job.status && ![last.token, last.token + 1].includes(job.token)) {
      stale++;
      violations.push(`${s.id} (${s.type}) ended ${job.status} by a write fenced on token ${last.token}, but the job's token is ${job.token}`);
    }
  }

  // 4. nothing skipped, and a resumed attempt redid at most one checkpoint interval
  let skipped = 0;
  let resumed = 0;
  let maxRedoneSteps = 0;
  let maxRedoneMs = 0;
  let overRedo = 0;
  let worstBound = 0;
  let zombies = 0;
  let zombieMs = 0;
  const beatsBy = groupBy(f.ledger.filter((e): e is Extract<LedgerEntry, { k: "beat" }> => e.k === "beat"), (e) => `${e.job} ${e.pid}`);
  for (const s of f.submitted.filter((x) => STEP_TYPES.has(x.type))) {
    const entries = byJob.get(s.id) ?? [];
    const steps = entries.filter((e): e is Extract<LedgerEntry, { k: "step" }> => e.k === "step");
    const starts = entries.filter((e): e is Extract<LedgerEntry, { k: "start" }> => e.k === "start").sort((a, b) => a.at - b.at);
    const n = Number(s.input.steps);
    if (f.jobs.get(s.id)?.status === "succeeded") {
      const done = new Set(steps.map((e) => e.step));
      const missing = Array.from({ length: n }, (_, i) => i).filter((i) => !done.has(i));
      if (missing.length) {
        skipped++;
        violations.push(`${s.id} (${s.type}) succeeded but steps ${missing.join(", ")} never ran: work was skipped`);
      }
    }
    // Order attempts by the fencing token of the claim that started them, not by when they
    // started: a worker frozen between its claim and its start begins work after later attempts.
    const claimsHere = entries.filter((e): e is Extract<LedgerEntry, { k: "claim" }> => e.k === "claim");
    const tokenOf = (st: Extract<LedgerEntry, { k: "start" }>) =>
      claimsHere.filter((c) => c.pid === st.pid && c.at <= st.at).reduce((t, c) => Math.max(t, c.token), -1);
    const attempts = starts.map((st) => ({ st, token: tokenOf(st) }));
    let highest = -1;
    const live: typeof attempts = [];
    for (const a of attempts) {
      if (a.token < highest) {
        // A zombie: its lease was gone before it began. It may work until its first heartbeat is refused.
        zombies++;
        const mine = steps.filter((e) => e.pid === a.st.pid && e.attempt === a.st.attempt && e.at >= a.st.at);
        const ms = mine.length * f.stepMs;
        const beats = (beatsBy.get(`${s.id} ${a.st.pid}`) ?? []).filter((b) => b.at >= a.st.at);
        const bound = f.heartbeatMs + Math.max(0, ...beats.map((b) => b.ms)) + f.stepMs;
        zombieMs = Math.max(zombieMs, ms);
        if (ms > bound) {
          overRedo++;
          violations.push(`${s.id} (${s.type}) attempt ${a.st.attempt} (token ${a.token}) started after its lease was taken over and did ${ms} ms of work, more than one heartbeat (${bound} ms)`);
        }
        continue;
      }
      highest = a.token;
      live.push(a);
    }
    live.sort((a, b) => a.token - b.token);
    for (let i = 1; i < live.length; i++) {
      const prev = live[i - 1]!.st;
      const cur = live[i]!.st;
      resumed++;
      // What the previous attempt did past the point this one resumed from: work lost to its end.
      const mine = steps.filter((e) => e.pid === prev.pid && e.attempt === prev.attempt && e.at >= prev.at && e.at < cur.at);
      const lost = mine.filter((e) => e.step >= cur.resume);
      if (!lost.length) continue;
      // Measured in work (steps × their length), not wall time: a frozen process's pause is not work.
      const lostMs = lost.length * f.stepMs;
      // A checkpoint is durable once the next heartbeat write completes: one interval plus that
      // write's time, plus one more interval for each heartbeat that failed in between.
      const beats = (beatsBy.get(`${s.id} ${prev.pid}`) ?? []).filter((b) => b.at >= prev.at && b.at <= cur.at);
      const failed = beats.filter((b) => !b.ok).length;
      const slowest = Math.max(0, ...beats.map((b) => b.ms));
      const bound = (1 + failed) * f.heartbeatMs + slowest + f.stepMs;
      maxRedoneSteps = Math.max(maxRedoneSteps, lost.length);
      if (lostMs > maxRedoneMs) {
        maxRedoneMs = lostMs;
        worstBound = bound;
      }
      if (lostMs > bound) {
        overRedo++;
        violations.push(
          `${s.id} (${s.type}) attempt ${cur.attempt} resumed at step ${cur.resume}; attempt ${prev.attempt} had done ${lost.length} steps (${lostMs} ms) past it, more than one checkpoint interval (${bound} ms: heartbeat ${f.heartbeatMs} ms${failed ? ` × ${1 + failed} (failed beats)` : ""} + slowest beat ${slowest} ms + a step)`,
        );
      }
    }
  }

  // 5. jobs that needed the sweeper; 6. death → running again
  const swept = new Set(f.ledger.filter((e) => e.k === "swept").map((e) => (e as { job: string }).job));
  const dropped = f.submitted.filter((s) => s.enqueueDropped);
  const deathToRunning = { SIGKILL: [] as number[], SIGTERM: [] as number[] };
  const claims = ordered.filter((e): e is Extract<LedgerEntry, { k: "claim" }> => e.k === "claim");
  for (const kill of f.kills.filter((k) => k.target !== "sweeper")) {
    for (const [job, entries] of byJob) {
      const held = holder(entries, kill.at);
      if (held !== kill.pid) continue;
      const next = claims.find((c) => c.job === job && c.at > kill.at);
      if (next) deathToRunning[kill.signal].push(next.at - kill.at);
    }
  }

  // Handlers that returned a result their worker could not commit: a later attempt or the fence beat them.
  let fencedOut = 0;
  let stallFenced = 0;
  for (const [job, entries] of byJob) {
    const committers = new Set(entries.filter((e) => e.k === "commit").map((e) => (e as { pid: number }).pid));
    const refused = entries.filter((e) => e.k === "done" && !committers.has((e as { pid: number }).pid)).length;
    fencedOut += refused;
    if (f.submitted.find((s) => s.id === job)?.type === "chaos.stall") stallFenced += refused;
  }

  const count = (k: LedgerEntry["k"]) => f.ledger.filter((e) => e.k === k).length;
  const faults: Record<string, number> = {};
  for (const e of f.ledger) if (e.k === "fault") faults[e.kind] = (faults[e.kind] ?? 0) + 1;
  const kills: Record<string, number> = {};
  for (const k of f.kills) {
    const key = `${k.signal} ${k.target}${k.midSweep ? " (mid-sweep)" : ""}`;
    kills[key] = (kills[key] ?? 0) + 1;
  }
  const killed = f.kills.filter((k) => k.target !== "sweeper");
  const d = { SIGKILL: distribution(deathToRunning.SIGKILL), SIGTERM: distribution(deathToRunning.SIGTERM) };
  const ms = (x: number) => (Number.isFinite(x) ? `${(x / 1000).toFixed(2)} s` : "–");
  const rows: CheckRow[] = [
    { check: "jobs submitted", value: String(f.submitted.length), ok: null },
    { check: "every job terminal", value: notTerminal ? `${notTerminal} not terminal` : `all ${f.submitted.length}`, ok: notTerminal === 0 },
    { check: "final state matches the job type", value: wrongState ? `${wrongState} wrong` : "all", ok: wrongState === 0 },
    { check: "≤ 1 committed result per job", value: doubles ? `${doubles} jobs committed twice` : `max 1 (${count("commit")} commits for ${f.submitted.length} jobs)`, ok: doubles === 0 },
    { check: "every end observed, under the current fence", value: `${unobserved} unobserved, ${stale} stale`, ok: unobserved === 0 && stale === 0 },
    { check: "no step skipped (succeeded jobs did all their work)", value: skipped ? `${skipped} jobs skipped work` : "none skipped", ok: skipped === 0 },
    { check: "resumed attempts redid ≤ one checkpoint interval", value: `${resumed} resumed; most redone ${maxRedoneSteps} steps; worst ${maxRedoneMs} ms of work lost (its bound ${worstBound} ms; heartbeat ${f.heartbeatMs} ms)`, ok: overRedo === 0 },
    { check: "attempts begun after their lease was lost (frozen worker)", value: `${zombies}; each stopped by its first heartbeat (worst ${zombieMs} ms of work, no commit)`, ok: null },
    { check: "jobs that needed the sweeper", value: `${swept.size} (${dropped.length} had their message dropped)`, ok: null },
    { check: "death → running again (SIGKILL)", value: `n=${d.SIGKILL.n} median ${ms(d.SIGKILL.median)} p95 ${ms(d.SIGKILL.p95)} worst ${ms(d.SIGKILL.max)}`, ok: null },
    { check: "stop → running again (SIGTERM)", value: `n=${d.SIGTERM.n} median ${ms(d.SIGTERM.median)} p95 ${ms(d.SIGTERM.p95)} worst ${ms(d.SIGTERM.max)}`, ok: null },
    { check: "worker kills", value: `${killed.length}: ${Object.entries(kills).filter(([k]) => !k.includes("sweeper")).map(([k, n]) => `${n} ${k}`).join(", ") || "none"}`, ok: null },
    { check: "sweeper restarts", value: `${f.kills.length - killed.length} (${f.kills.filter((k) => k.midSweep).length} mid-sweep)`, ok: null },
    { check: "store faults injected", value: Object.entries(faults).map(([k, n]) => `${n} ${k}`).join(", ") || "none", ok: null },
    { check: "SQS faults", value: `${f.duplicates.immediate} duplicate, ${f.duplicates.delayed} delayed redeliveries, ${dropped.length} enqueues lost after the write`, ok: null },
    { check: "finished handlers whose result was fenced out", value: `${fencedOut} (${stallFenced} from workers frozen past their lease; ${f.submitted.filter((s) => s.type === "chaos.stall").length} stall jobs)`, ok: null },
  ];
  return {
    ok: violations.length === 0,
    rows,
    violations,
    faults,
    kills,
    deathToRunning: d,
    redo: { resumed, maxRedoneSteps, maxRedoneMs },
    jobsNeedingSweeper: swept.size,
    fencedOut,
    statuses,
  };
}

function wrongOutcome(s: Submitted, job: Job): string | undefined {
  const expected = EXPECTED_STATUS[s.type];
  if (!expected) return `unknown chaos type`;
  if (job.status !== expected) {
    const err = "error" in job && job.error ? ` (${job.error.code}: ${job.error.message})` : "";
    return `ended ${job.status}${err}, expected ${expected}`;
  }
  if (STEP_TYPES.has(s.type) && job.status === "succeeded") {
    const r = job.result as { steps?: number; sum?: number } | null;
    const n = Number(s.input.steps);
    if (r?.steps !== n || r?.sum !== expectedSum(n)) return `result ${JSON.stringify(r)} is not {steps: ${n}, sum: ${expectedSum(n)}}`;
  }
  if (s.type === "chaos.doomed" && job.status === "failed" && job.error.code !== "handler_error") return `failed with ${job.error.code}, expected handler_error`;
  return undefined;
}

/** Which process held the job at `at`: the last claimer, unless it had let go (commit or release) by then. */
function holder(entries: LedgerEntry[], at: number): number | undefined {
  let pid: number | undefined;
  for (const e of entries) {
    if (e.at > at) break;
    if (e.k === "claim") pid = e.pid;
    else if ((e.k === "commit" || e.k === "release") && e.pid === pid) pid = undefined;
    else if (e.k === "swept" || e.k === "commit") pid = undefined;
  }
  return pid;
}

function groupBy<T>(xs: T[], key: (x: T) => string): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const x of xs) {
    const k = key(x);
    const list = m.get(k);
    if (list) list.push(x);
    else m.set(k, [x]);
  }
  return m;
}
