/**
 * The chaos run's verdict, computed from what the run observed: the jobs as DynamoDB holds them
 * at the end, the append-only ledger (the handlers' side effects from their processes; every
 * write DynamoDB applied, from the wire-fault proxy in front of it), the faults the proxies
 * injected, and the parent's own log of kills, callers' requests and message faults. Pure: the
 * guard test feeds it a deliberately broken run and expects violations.
 *
 * Store-side entries name a worker id or a fencing token; they are mapped to processes first
 * (`attribute`): a claim's worker id to the process that recorded it (`proc`), a fenced write's
 * token to the process whose claim got it.
 *
 * A job's life can be restarted by a caller: an API retry of a failed or cancelled job. Its
 * store-side entries are split into runs at each applied retry; each run has at most one end.
 *
 * Flows (chaos.evaluate, an evaluation fanned out over its executions): every parent's children are derived from its
 * input alone (their ids from core/flow.ts childId, as the store derives them), so a child never
 * written is found missing rather than unseen; each child is then held to every check above as
 * a job of its own, and the flow's own checks (section 8) hold the parent to one wait and one
 * resume per round, after its last child ended, and to a result true to its children's records.
 *
 * Controls (docs/jobs.md "Controls"): the jobs that carry the run's concurrency key are held to its
 * limit, counted from their handlers' starts and ends (section 9), and to holds that spend no
 * attempt; a schedule's ticks (section 10) each have exactly one job, its id derived from the
 * tick, and every such job is held to the per-job checks too.
 */
import { childId } from "../core/flow.js";
import { isTerminal, type Job } from "../core/job.js";
import { tickKey, type Schedule } from "../core/schedule.js";
import type { SlotEntry } from "../core/gates.js";
import type { Priority } from "../core/config.js";
import { checkPriorities, priorityRows, type PriorityFigures, type Ring } from "./chaos-priorities.js";
import { checkEffects, effectRows, type EffectsFacts, type EffectsFigures } from "./chaos-effects.js";
import { idempotentId } from "../core/store.js";
import { EXECUTION_TYPES, UNSTORABLE_CODES, UNSTORABLE_TYPES, executionScore, executionsOf, expectedStatus, expectedSum, type EvaluateInput, type EvaluationResult, type ExecutionResult, type NearLimitResult } from "./chaos-jobs.js";
import type { ChildLink, LedgerEntry, StoreEntry } from "./chaos-ledger.js";

export interface Submitted {
  id: string;
  type: string;
  input: Record<string, unknown>;
  /** The job was written but its message was dropped: only the sweeper can start it. */
  enqueueDropped: boolean;
  at: number;
  /** A flow's child (derived, not submitted): its place in its parent's round. */
  parent?: ChildLink;
  /** The concurrency key it was submitted with (section 9). */
  concurrencyKey?: string;
  /** A schedule's tick's job (derived, not submitted): its tick (section 10). */
  tick?: number;
  /** The priority it was submitted with, when not normal (section 11). */
  priority?: Priority;
}

/** The flow parents' type: an evaluation of regions × models × questions (chaos-jobs.ts). */
export const EVALUATE_TYPE = "chaos.evaluate";

/**
 * The children each evaluation among `submitted` spawns, derived from its input alone: id (as
 * the store derives it), type and input, in spawn order. The run reads and drains them, and the
 * checks hold each to the per-job checks.
 */
export function flowChildren(submitted: readonly Submitted[]): Submitted[] {
  return submitted
    .filter((s) => s.type === EVALUATE_TYPE)
    .flatMap((p) =>
      executionsOf(p.input as EvaluateInput).map((e) => ({
        id: childId(p.id, 0, { index: e.index, key: e.key }),
        type: e.type,
        input: e.input as unknown as Record<string, unknown>,
        enqueueDropped: false,
        at: p.at,
        parent: { id: p.id, round: 0, index: e.index, key: e.key },
      })),
    );
}

export type Target = "fargate" | "lambda" | "sweeper";
export interface Kill {
  pid: number;
  /** SIGSTOP: the process was frozen, not killed (no death event; its lease finds it). */
  signal: "SIGKILL" | "SIGTERM" | "SIGSTOP";
  target: Target;
  at: number;
  midSweep?: boolean;
}

export type Service = "dynamodb" | "sqs";
export const FAULT_KINDS = ["lostReply", "hang", "server", "throttle"] as const;
export type FaultCounts = Record<(typeof FAULT_KINDS)[number], number>;

/** What the parent asked of the API as a caller, and how the API answered (what DynamoDB applied is in the ledger). */
export interface CallerStats {
  cancel: { sent: number; answered: number; refused: number; failed: number };
  retry: { sent: number; answered: number; refused: number; failed: number };
}

export interface ChaosFacts {
  submitted: Submitted[];
  jobs: Map<string, Job | undefined>;
  ledger: LedgerEntry[];
  kills: Kill[];
  heartbeatMs: number;
  leaseMs: number;
  stepMs: number;
  duplicates: { immediate: number; delayed: number };
  /** What the wire proxies injected, by service and kind. */
  faults: Record<Service, FaultCounts>;
  /** The full run: every kind must have been injected on both services, or the run did not test it. */
  requireEveryFault?: boolean;
  callers?: CallerStats;
  /** Death events delivered (each worker death twice: at once and 1-4 s later), and what they did. */
  deaths?: { delivered: number; requeued: number; ended: number; untouched: number };
  /** Flows: executions whose creates the wire refused on every try (`flowUnwritten`), and how many tries it refused. */
  refusedChildWrites?: { executions: number; tries: number };
  /** The concurrency limit the keyed jobs ran under (section 9). */
  limits?: LimitFacts;
  /** The run's schedule (section 10). */
  schedule?: ScheduleFacts;
  /** Every doorbell SQS accepted, when some jobs were submitted high or low (section 11). */
  priorities?: { rings: Ring[] };
  /** The chaos.effects jobs and the downstream table's rows after the drain (section 12). */
  effects?: EffectsFacts;
}

/** A concurrency limit set before the run on `key:<key>`, which the submitted jobs with that `concurrencyKey` carry. */
export interface LimitFacts {
  key: string;
  limit: number;
  /** The key's slot holders after the drain (`store.controls.holders`): job id → its slot. */
  holders: Record<string, SlotEntry>;
}

/** A fixed-rate schedule made at the start of the chaos window and paused at its end. */
export interface ScheduleFacts {
  /** As it was at the end, paused. */
  schedule: Schedule;
  /** Its first tick (its nextAt when it was made). */
  firstTick: number;
  /** The pause had been applied by then (the parent's clock when setPaused answered): no later tick may have a job. */
  pausedBy: number;
  /** Every job of the schedule's job type in the table at the end (a scan), by id. */
  ofType: string[];
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
  faults: Record<Service, FaultCounts>;
  kills: Record<string, number>;
  deathToRunning: Record<Kill["signal"], Distribution & { samples: number[] }>;
  /** Worker kills (not the sweeper's) that interrupted at least one job which then ran again, by signal. */
  killsTimed: Record<Kill["signal"], number>;
  redo: { resumed: number; maxRedoneSteps: number; maxRedoneMs: number; beyondOneInterval: number };
  jobsNeedingSweeper: number;
  fencedOut: number;
  unstarted: { killed: number; leaseLost: number; handedBack: number };
  calls: { cancels: number; retries: number; cancelledJobs: number; retriedJobs: number };
  statuses: Record<string, number>;
  flows: FlowFigures;
  limits: LimitFigures;
  schedule: ScheduleFigures;
  /** Section 11, when some jobs were submitted high or low. */
  priorities?: PriorityFigures;
  /** Section 12, when chaos.effects jobs ran. */
  effects?: EffectsFigures;
}

/** Section 9's figures (zeros without a limit). */
export interface LimitFigures {
  key: string | null;
  limit: number;
  keyed: number;
  /** Handler runs of keyed jobs (starts under an applied claim). */
  handlers: number;
  /** Most keyed jobs with a handler running at once while their runs held a slot: the checked figure. */
  maxRunning: number;
  /** Most keyed jobs running at once as DynamoDB applied their claims and the writes that took them out of running. */
  maxRunningStore: number;
  /** Most at once counting also the handlers that ran on past their run's end (not checked: see section 9). */
  maxUnclipped: number;
  /** Handlers that ran on after their run had left running (its slot given back), and the longest such overrun. */
  overran: number;
  overranMs: number;
  notTerminal: number;
  /** Hold writes DynamoDB applied to keyed jobs, the jobs they held, and the unholds that woke them. */
  holds: number;
  heldJobs: number;
  unholds: number;
  /** Hold or unhold writes that changed the job's attempts, or a record counting more attempts than its history ran. */
  spentOnHold: number;
  /** Attempts in the keyed jobs' histories whose claim never started its handler (reported by section 4 as well) or that no applied claim made. */
  attemptsUnstarted: number;
  holdersLeft: number;
  /** Of those, slots whose job's ending write was made by a process killed right after it (left by design until a job waits on the key). */
  holdersExcused: number;
}

/** Section 10's figures (zeros without a schedule). */
export interface ScheduleFigures {
  id: string | null;
  everyMs: number;
  /** Ticks the schedule handled (its first to the one before its nextAt at the end), and how many have their job. */
  ticks: number;
  jobs: number;
  missing: number;
  /** Jobs of the schedule's type that no tick up to the pause derives: a tick fired twice under another id, or after the pause. */
  extra: number;
  /** Ticks after the last handled one, before the pause, that have a job: fired by a sweep whose own write the pause overtook. */
  unrecorded: number;
  notTerminal: number;
  counts: Schedule["counts"];
  /** Kept runs that are not `fired` with their tick's own job, and ticks decided but never recorded. */
  badRuns: number;
  /** From a tick to its job's createdAt, and how many were later than one interval (a catch-up after the sweeper was down). */
  lag: Distribution;
  late: number;
}

/** The flows' figures (all 0 without evaluations). */
export interface FlowFigures {
  evaluations: number;
  executions: number;
  /** Executions whose record exists with its parent link, and how many of them the sweeper wrote from the spec. */
  written: number;
  writtenBySweeper: number;
  missing: number;
  /** Claims DynamoDB applied to an execution after its success was committed. */
  claimsAfterSuccess: number;
  waits: number;
  resumes: number;
  resumedBy: Record<"worker" | "sweeper" | "other", number>;
  /** Parents whose waits or resumes were not one per round, or resumed before their last child ended. */
  badResumes: number;
  /** Succeeded parents whose result does not match their children's records. */
  badResults: number;
  statuses: Record<string, number>;
  /** Fan-in writes: children's ends counted, the sweeper's recounts, and ends a recount's rewrite dropped that an earlier answer showed counted. */
  fanIn: { ends: number; recounts: number; erased: number };
}

const percentile = (s: number[], p: number): number => (s.length ? s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]! : NaN);
export function distribution(values: number[]): Distribution & { samples: number[] } {
  const s = [...values].sort((a, b) => a - b);
  return { n: s.length, median: percentile(s, 50), p95: percentile(s, 95), max: s[s.length - 1] ?? NaN, samples: s };
}

const STEP_TYPES = new Set(["chaos.steps", "chaos.long", "chaos.stall", "chaos.tick"]);

type Of<K extends LedgerEntry["k"]> = Extract<LedgerEntry, { k: K }>;
type Claim = Of<"claim"> & { pid?: number };
type Start = Of<"start">;
type Step = Of<"step">;
const isStore = (e: LedgerEntry): e is StoreEntry => "version" in e;
const FENCED = new Set(["beat", "release", "commit", "wait"]);

/** The store-side entries with the process that sent each, where it can be known. */
export function attribute(ledger: LedgerEntry[]): LedgerEntry[] {
  const procs = new Map<string, { pid: number; at: number }[]>();
  for (const e of ledger) if (e.k === "proc" && e.worker) (procs.get(e.worker) ?? procs.set(e.worker, []).get(e.worker)!).push({ pid: e.pid, at: e.at });
  for (const list of procs.values()) list.sort((a, b) => a.at - b.at);
  // A worker id names one process at a time; a restarted slot gets a new id, but take the latest start before the claim anyway.
  const pidOf = (worker: string, at: number) => {
    const list = procs.get(worker);
    if (!list) return undefined;
    return (list.filter((p) => p.at <= at).at(-1) ?? list[0])!.pid;
  };
  const tokenPid = new Map<string, number>();
  const out = ledger.map((e) => {
    if (e.k !== "claim") return e;
    const pid = pidOf(e.worker, e.at);
    if (pid !== undefined) tokenPid.set(`${e.job}#${e.token}`, pid);
    return pid !== undefined ? { ...e, pid } : e;
  });
  return out.map((e) => {
    if (!FENCED.has(e.k) || !("token" in e)) return e;
    if (e.k === "commit" && e.by !== "worker") return e;
    // A worker's end without a fence (the deliberately broken build): the token the item kept is the best guess.
    const token = e.token ?? (e.k === "commit" ? e.held : undefined);
    const pid = token === undefined ? undefined : tokenPid.get(`${e.job}#${token}`);
    return pid !== undefined ? { ...e, pid } : e;
  });
}

/** One job's entries: the process side by time, the store side in the order DynamoDB applied them, split into runs at each API retry. */
interface JobLedger {
  proc: LedgerEntry[];
  store: StoreEntry[];
  runs: StoreEntry[][];
  claims: Claim[];
  starts: Start[];
  steps: Step[];
}

function byJob(ledger: LedgerEntry[]): Map<string, JobLedger> {
  const m = new Map<string, JobLedger>();
  const get = (job: string) => m.get(job) ?? m.set(job, { proc: [], store: [], runs: [[]], claims: [], starts: [], steps: [] }).get(job)!;
  for (const e of ledger) {
    if (!("job" in e)) continue;
    const j = get(e.job);
    if (isStore(e)) j.store.push(e);
    else j.proc.push(e);
  }
  for (const j of m.values()) {
    j.proc.sort((a, b) => a.at - b.at);
    j.store.sort((a, b) => a.version - b.version); // stable: two entries from one write keep their order
    j.runs = [[]];
    for (const e of j.store) {
      if (e.k === "call" && e.action === "retry") j.runs.push([]);
      j.runs.at(-1)!.push(e);
    }
    j.claims = j.store.filter((e): e is Claim => e.k === "claim");
    j.starts = j.proc.filter((e): e is Start => e.k === "start");
    j.steps = j.proc.filter((e): e is Step => e.k === "step");
  }
  return m;
}

/** The applied claim a handler start ran under: the same process and attempt, the latest decided before it. */
const claimOf = (j: JobLedger, st: Start): Claim | undefined =>
  j.claims.filter((c) => c.pid === st.pid && c.attempt === st.attempt && c.at <= st.at).at(-1);

export function checkChaos(f: ChaosFacts): ChaosVerdict {
  const violations: string[] = [];
  const ledger = attribute(f.ledger);
  const jobsLedger = byJob(ledger);
  const empty: JobLedger = { proc: [], store: [], runs: [[]], claims: [], starts: [], steps: [] };
  const L = (id: string) => jobsLedger.get(id) ?? empty;
  const statuses: Record<string, number> = {};
  const killedAt = new Map<number, number>();
  for (const k of f.kills) if (!killedAt.has(k.pid)) killedAt.set(k.pid, k.at);
  const killedAfter = (pid: number | undefined, at: number) => pid !== undefined && (killedAt.get(pid) ?? -Infinity) >= at;

  // Every job the run made: the ones submitted, the children their flows spawn, and its schedule's ticks' jobs.
  const children = flowChildren(f.submitted);
  const scheduled = f.schedule ? scheduledJobs(f.schedule, f.jobs) : [];
  const all = [...f.submitted, ...children, ...scheduled];
  const flowStatuses: Record<string, number> = {};
  const tickStatuses: Record<string, number> = {};

  // 1. every job terminal; 2. its final state is what its type produces (or a caller's cancel)
  let notTerminal = 0;
  let wrongState = 0;
  for (const s of all) {
    const job = f.jobs.get(s.id);
    const status = job?.status ?? "missing";
    const tally = s.parent ? flowStatuses : s.tick !== undefined ? tickStatuses : statuses;
    tally[status] = (tally[status] ?? 0) + 1;
    if (!job || !isTerminal(job.status)) {
      notTerminal++;
      violations.push(`${s.id} (${s.type}) is ${status}, not terminal`);
      continue;
    }
    const lastRun = L(s.id).runs.at(-1)!;
    const why = wrongOutcome(s, job, lastRun.some((e) => e.k === "call" && e.action === "cancel"), L(s.id));
    if (why) {
      wrongState++;
      violations.push(`${s.id} (${s.type}): ${why}`);
    }
  }

  // 3. at most one end per run of a job (a caller's retry starts a new run), and nothing written after it
  let doubles = 0;
  let unobserved = 0;
  let stale = 0;
  let missed = 0;
  let unclassified = 0;
  let commits = 0;
  for (const s of all) {
    const job = f.jobs.get(s.id);
    const j = L(s.id);
    for (const run of j.runs) {
      const ends = run.filter((e): e is Of<"commit"> => e.k === "commit");
      commits += ends.length;
      const first = ends[0];
      const after = first ? run.filter((e) => e.version > first.version && e.k !== "commit" && e.k !== "swept") : [];
      if (ends.length > 1) {
        doubles++;
        violations.push(`${s.id} (${s.type}) has ${ends.length} accepted terminal writes: ${ends.map((c) => `${c.status} by ${c.by}${c.pid !== undefined ? ` pid ${c.pid}` : ""} on token ${c.token ?? "none"} (v${c.version})`).join("; ")}`);
      } else if (after.length) {
        doubles++;
        violations.push(`${s.id} (${s.type}) ended ${first!.status} (v${first!.version}), then DynamoDB applied ${after.map((e) => `${e.k} v${e.version}`).join(", ")} before any retry`);
      }
    }
    const succeeded = j.store.filter((e) => e.k === "commit" && e.status === "succeeded").length;
    if (succeeded > 1 && j.runs.every((r) => r.filter((e) => e.k === "commit").length <= 1)) {
      doubles++;
      violations.push(`${s.id} (${s.type}) succeeded ${succeeded} times (a succeeded job cannot be retried)`);
    }
    for (const w of j.store.filter((e): e is Of<"write"> => e.k === "write")) {
      unclassified++;
      violations.push(`${s.id} (${s.type}) v${w.version}: ${w.what}`);
    }
    if (!job) continue;
    const lastRun = j.runs.at(-1)!;
    const last = lastRun.filter((e): e is Of<"commit"> => e.k === "commit").at(-1);
    if (isTerminal(job.status) && !last) {
      unobserved++;
      violations.push(`${s.id} (${s.type}) is ${job.status} but no accepted terminal write was observed since its last start of life`);
    }
    if (last && last.token !== null && last.status === job.status && ![last.token, last.token + 1].includes(job.token)) {
      stale++;
      violations.push(`${s.id} (${s.type}) ended ${job.status} by a write fenced on token ${last.token}, but the job's token is ${job.token}`);
    }
    // Every write bumps the version by one: the ledger must hold each version up to the job's.
    const seen = new Set(j.store.map((e) => e.version));
    const unseen = Array.from({ length: job.version }, (_, i) => i + 1).filter((v) => !seen.has(v));
    const beyond = [...seen].filter((v) => v > job.version);
    if (unseen.length || beyond.length) {
      missed++;
      violations.push(`${s.id} (${s.type}) is at version ${job.version}; the ledger ${unseen.length ? `never saw DynamoDB apply v${unseen.slice(0, 5).join(", v")}${unseen.length > 5 ? "…" : ""}` : ""}${beyond.length ? ` saw v${beyond.join(", v")} beyond it` : ""}: writes went unobserved`);
    }
  }

  // 4. every claim DynamoDB applied either started its handler, or its worker died or lost the lease
  //    (a worker that claims and then cannot start must write nothing under that token); and no
  //    handler starts without an applied claim, or after its job ended
  let spentUnstarted = 0;
  let unclaimedStarts = 0;
  let startedAfterEnd = 0;
  const unstarted = { killed: 0, leaseLost: 0, handedBack: 0 };
  // What became of each applied claim (section 9 reads the keyed jobs' from here).
  const fates = new Map<Claim, ClaimFate>();
  for (const s of all) {
    const j = L(s.id);
    const matched = new Set<Claim>();
    for (const st of j.starts) {
      const c = claimOf(j, st);
      if (!c) {
        unclaimedStarts++;
        violations.push(`${s.id} (${s.type}) attempt ${st.attempt} started in pid ${st.pid} at ${st.at} without a claim DynamoDB applied for that process`);
        continue;
      }
      matched.add(c);
      // After a success nothing may start again (a succeeded job cannot be retried); after any
      // other end, only a start under a claim applied after it (a caller retried the job).
      const ends = j.store.filter((e): e is Of<"commit"> => e.k === "commit" && e.appliedAt < st.at && (e.status === "succeeded" || e.version > c.version));
      for (const end of ends) {
        startedAfterEnd++;
        violations.push(`${s.id} (${s.type}) attempt ${st.attempt} started in pid ${st.pid} ${st.at - end.appliedAt} ms after the job was committed ${end.status} (v${end.version})`);
      }
    }
    for (const c of j.claims) {
      if (matched.has(c)) {
        fates.set(c, "started");
        continue;
      }
      fates.set(c, "spent");
      if (c.pid === undefined) {
        spentUnstarted++;
        violations.push(`${s.id} (${s.type}) was claimed (token ${c.token}) by worker ${c.worker}, which no chaos process announced`);
        continue;
      }
      if (killedAfter(c.pid, c.at)) {
        unstarted.killed++;
        fates.set(c, "killed");
        continue;
      }
      const wrote = j.store.filter((e) => FENCED.has(e.k) && "token" in e && e.token === c.token && e.version > c.version);
      if (!wrote.length) {
        unstarted.leaseLost++;
        fates.set(c, "leaseLost");
        continue;
      }
      // Handed straight back with its attempt returned (the store does so when it cannot read the
      // job's values for the handler, core/store.ts `leased`): nothing was spent.
      if (wrote.every((e) => e.k === "release" && e.outcome === "released" && e.attempts === c.attempt - 1)) {
        unstarted.handedBack++;
        fates.set(c, "handedBack");
        continue;
      }
      spentUnstarted++;
      violations.push(
        `${s.id} (${s.type}) attempt ${c.attempt} (token ${c.token}, worker ${c.worker}, pid ${c.pid}) never started its handler, yet its worker lived and wrote ${wrote.map((e) => `${e.k}${e.k === "commit" ? ` ${e.status}/${e.code ?? ""}` : e.k === "release" ? ` ${e.outcome ?? ""}` : ""}`).join(", ")} under its token`,
      );
    }
  }

  // 5. nothing skipped, and a resumed attempt resumed from what DynamoDB held and redid only what no
  //    applied write had made durable: at most one checkpoint interval while heartbeats land, never
  //    more than a lease when they do not
  let skipped = 0;
  let resumed = 0;
  let maxRedoneSteps = 0;
  let maxRedoneMs = 0;
  let beyondOneInterval = 0;
  let mostMissedBeats = 0;
  let badResume = 0;
  let overRedo = 0;
  let zombies = 0;
  let zombieMs = 0;
  const beatMs = (e: StoreEntry) => e.appliedAt - e.at;
  for (const s of [...f.submitted, ...scheduled].filter((x) => STEP_TYPES.has(x.type))) {
    const j = L(s.id);
    const n = Number(s.input.steps);
    if (f.jobs.get(s.id)?.status === "succeeded") {
      const done = new Set(j.steps.map((e) => e.step));
      const missing = Array.from({ length: n }, (_, i) => i).filter((i) => !done.has(i));
      if (missing.length) {
        skipped++;
        violations.push(`${s.id} (${s.type}) succeeded but steps ${missing.join(", ")} never ran: work was skipped`);
      }
    }
    // Attempts in the order of their claims' tokens, not of their starts.
    const attempts = j.starts.flatMap((st) => {
      const c = claimOf(j, st);
      return c ? [{ st, c }] : [];
    });
    let highest = -1;
    const live: typeof attempts = [];
    for (const a of attempts) {
      if (a.c.token < highest) {
        // A zombie: its lease was gone before it began. It may work until its first heartbeat is refused.
        zombies++;
        const mine = j.steps.filter((e) => e.pid === a.st.pid && e.attempt === a.st.attempt && e.at >= a.st.at);
        const ms = mine.length * f.stepMs;
        const beats = j.store.filter((b) => b.k === "beat" && b.token === a.c.token);
        const bound = f.heartbeatMs + Math.max(0, ...beats.map(beatMs)) + f.stepMs;
        zombieMs = Math.max(zombieMs, ms);
        if (ms > bound) {
          overRedo++;
          violations.push(`${s.id} (${s.type}) attempt ${a.st.attempt} (token ${a.c.token}) started after its lease was taken over and did ${ms} ms of work, more than one heartbeat (${bound} ms)`);
        }
        continue;
      }
      highest = a.c.token;
      live.push(a);
    }
    live.sort((a, b) => a.c.token - b.c.token);
    for (let i = 0; i < live.length; i++) {
      const cur = live[i]!;
      // The handler is handed exactly the checkpoint DynamoDB held when its claim was applied.
      const held = cur.c.resume ?? 0;
      if (cur.st.resume !== held) {
        badResume++;
        violations.push(`${s.id} (${s.type}) attempt ${cur.st.attempt} (token ${cur.c.token}) resumed at step ${cur.st.resume}, but DynamoDB held checkpoint ${held} when its claim was applied`);
      }
      if (i === 0) continue;
      const prev = live[i - 1]!;
      // A caller's retry starts the job over from its beginning (lifecycle.retry drops the
      // checkpoint): the attempt before it redid nothing the retried run must account for.
      const runOf = (c: Claim) => j.runs.findIndex((r) => r.includes(c));
      if (runOf(prev.c) !== runOf(cur.c)) continue;
      resumed++;
      const mine = j.steps.filter((e) => e.pid === prev.st.pid && e.attempt === prev.st.attempt && e.at >= prev.st.at && e.at < cur.st.at);
      // Lost to the end of the previous attempt: what it did past the checkpoint DynamoDB held (a
      // handler that resumed elsewhere is reported above).
      const lost = mine.filter((e) => e.step >= held);
      if (!lost.length) continue;
      // When the checkpoint resumed from became durable: the applied write under the previous
      // attempt's token that first held it (captured then, by the worker's clock); without one,
      // nothing the previous attempt did was durable.
      const underPrev = j.store.filter((e): e is Of<"beat"> | Of<"release"> => (e.k === "beat" || e.k === "release") && e.token === prev.c.token);
      const madeDurable = underPrev.find((e) => e.resume === cur.c.resume);
      const durableAt = madeDurable?.at ?? prev.st.at;
      const early = lost.filter((e) => e.at < durableAt);
      if (early.length) {
        badResume++;
        violations.push(`${s.id} (${s.type}) attempt ${cur.st.attempt} redid steps ${early.map((e) => e.step).join(", ")}, done before the checkpoint it resumed from was captured (v${madeDurable?.version ?? "?"}): a stale checkpoint was stored`);
      }
      const lostMs = lost.length * f.stepMs;
      const slowest = Math.max(0, ...underPrev.filter((e) => e.k === "beat").map(beatMs));
      const oneInterval = f.heartbeatMs + slowest + f.stepMs;
      const lastLost = lost.at(-1)!.at;
      // Heartbeats that should have landed between that capture and the last step lost, and did not.
      const missedBeats = Math.floor((lastLost - durableAt) / f.heartbeatMs);
      maxRedoneSteps = Math.max(maxRedoneSteps, lost.length);
      maxRedoneMs = Math.max(maxRedoneMs, lostMs);
      if (lostMs > oneInterval) {
        beyondOneInterval++;
        mostMissedBeats = Math.max(mostMissedBeats, missedBeats);
      }
      // However many heartbeats fail, the lease (renewed only by one that lands) stops the handler.
      const leaseBound = f.leaseMs + f.stepMs;
      if (lostMs > leaseBound) {
        overRedo++;
        violations.push(`${s.id} (${s.type}) attempt ${cur.st.attempt} resumed at step ${held}; attempt ${prev.st.attempt} had done ${lost.length} steps (${lostMs} ms) past it, more than its lease allows (${leaseBound} ms)`);
      }
    }
  }

  // 6. results that cannot be stored fail without being re-run
  let unstorableRerun = 0;
  let unstorableOnce = 0;
  let unstorableRestarted = 0;
  for (const s of f.submitted.filter((x) => UNSTORABLE_TYPES.has(x.type))) {
    const j = L(s.id);
    const starts = j.starts.flatMap((st) => {
      const c = claimOf(j, st);
      return c ? [{ st, c }] : [];
    });
    const runOf = (c: Claim) => j.runs.findIndex((r) => r.includes(c));
    let rerunHere = false;
    for (let i = 0; i + 1 < starts.length; i++) {
      const { st, c } = starts[i]!;
      if (runOf(starts[i + 1]!.c) !== runOf(c)) continue; // a caller retried it: a new run
      const retried = j.store.find((e): e is Of<"release"> => e.k === "release" && e.token === c.token && e.outcome !== "released");
      if (retried) {
        unstorableRerun++;
        violations.push(`${s.id} (${s.type}) attempt ${st.attempt} was queued again (${retried.outcome}, ${retried.code}) and its handler re-run: an unstorable result must fail the job, not retry it`);
      } else rerunHere = true; // killed, handed back, or lease lost
    }
    if (rerunHere) unstorableRestarted++;
    else if (starts.length) unstorableOnce++;
  }

  // 7. callers: cancels and retries the API applied. A cancel request marked on a running job is
  //    never lost: that run ends with the attempt that was running (cancelled, or its own end),
  //    and no new attempt is claimed. A retried job ends terminal again.
  const calls = { cancels: 0, retries: 0, cancelledJobs: 0, retriedJobs: 0 };
  let retriedOpen = 0;
  let lostCancels = 0;
  for (const s of f.submitted) {
    const j = L(s.id);
    for (const run of j.runs) {
      const mark = run.find((e) => e.k === "call" && e.action === "cancel" && !run.some((x) => x.version === e.version && x.k === "commit"));
      const again = mark && run.find((e): e is Claim => e.k === "claim" && e.version > mark.version);
      if (mark && again) {
        lostCancels++;
        violations.push(`${s.id} (${s.type}): a cancel request DynamoDB applied (v${mark.version}) was lost: the job was claimed again (v${again.version}, token ${again.token}, worker ${again.worker})`);
      }
    }
    const cancels = j.store.filter((e) => e.k === "call" && e.action === "cancel").length;
    const retries = j.runs.length - 1;
    calls.cancels += cancels;
    calls.retries += retries;
    if (f.jobs.get(s.id)?.status === "cancelled") calls.cancelledJobs++;
    if (retries > 0) {
      calls.retriedJobs++;
      const job = f.jobs.get(s.id);
      if (!job || !isTerminal(job.status)) retriedOpen++;
    }
  }

  // 8. flows: every child written, none claimed again after its success, every parent waited once
  //    and was resumed once per round after its last child ended, with a result true to them
  const flows = checkFlows(f, L, children, violations);
  flows.statuses = flowStatuses;

  // 9. a concurrency limit: never more keyed jobs running than it allows, no attempt spent on a
  //    hold, every keyed job terminal and its slots given back
  const limits = checkLimits(f, L, fates, violations);

  // 10. a schedule: one job per tick, each terminal, and the schedule's counts true
  const schedule = checkSchedule(f, violations);

  // 11. priorities: every job kept its priority, every doorbell rang on its job's lane
  const priorities = f.priorities ? checkPriorities({ submitted: f.submitted, rings: f.priorities.rings }, f.jobs, violations) : undefined;

  // 12. fenced effects: one row per step in the downstream table, no stale attempt's write over a later one's, stale writes refused
  const effects = f.effects ? checkEffects(f.effects, f.ledger, f.jobs, violations) : undefined;

  // figures: jobs that needed the sweeper; death → running again; fenced-out results
  const sweptJobs = new Set(ledger.filter((e) => e.k === "swept").map((e) => (e as Of<"swept">).job));
  const dropped = f.submitted.filter((s) => s.enqueueDropped);
  const deathToRunning = { SIGKILL: [] as number[], SIGTERM: [] as number[], SIGSTOP: [] as number[] };
  const killsTimed = { SIGKILL: 0, SIGTERM: 0, SIGSTOP: 0 };
  for (const kill of f.kills.filter((k) => k.target !== "sweeper")) {
    const before = deathToRunning[kill.signal].length;
    for (const [, j] of jobsLedger) {
      if (holder(j, kill.at) !== kill.pid) continue;
      // Running again means before the job ended: a job a caller cancelled and retried later was not recovered.
      const next = j.claims.filter((c) => c.at > kill.at).sort((a, b) => a.at - b.at)[0];
      const endedFirst = next && j.store.some((e) => e.k === "commit" && e.at > kill.at && e.at < next.at);
      if (next && !endedFirst) deathToRunning[kill.signal].push(next.at - kill.at);
    }
    if (deathToRunning[kill.signal].length > before) killsTimed[kill.signal]++;
  }
  let fencedOut = 0;
  let stallFenced = 0;
  for (const s of all) {
    const j = L(s.id);
    const committers = new Set(j.store.filter((e) => e.k === "commit").map((e) => e.pid));
    const refused = j.proc.filter((e) => e.k === "done" && !committers.has(e.pid)).length;
    fencedOut += refused;
    if (s.type === "chaos.stall") stallFenced += refused;
  }

  const kills: Record<string, number> = {};
  for (const k of f.kills) {
    const key = `${k.signal} ${k.target}${k.midSweep ? " (mid-sweep)" : ""}`;
    kills[key] = (kills[key] ?? 0) + 1;
  }
  const killed = f.kills.filter((k) => k.target !== "sweeper");
  const d = { SIGKILL: distribution(deathToRunning.SIGKILL), SIGTERM: distribution(deathToRunning.SIGTERM), SIGSTOP: distribution(deathToRunning.SIGSTOP) };
  const ms = (x: number) => (Number.isFinite(x) ? `${(x / 1000).toFixed(2)} s` : "–");
  const faultText = (c: FaultCounts) => FAULT_KINDS.map((k) => `${c[k]} ${k}`).join(", ");
  const faultsOn = Object.values(f.faults).some((c) => FAULT_KINDS.some((k) => c[k] > 0));
  const noFault = (Object.entries(f.faults) as [Service, FaultCounts][]).flatMap(([svc, c]) => FAULT_KINDS.filter((k) => c[k] === 0).map((k) => `${k} on ${svc}`));
  const faultRow = (svc: Service, label: string): CheckRow => {
    const lacking = FAULT_KINDS.filter((k) => f.faults[svc][k] === 0);
    return { check: label, value: faultText(f.faults[svc]), ok: f.requireEveryFault && faultsOn ? lacking.length === 0 : null };
  };
  if (f.requireEveryFault && faultsOn) for (const x of noFault) violations.push(`no ${x.replace(" on ", " fault was injected on ")}: the run did not test it`);
  const unstorableJobs = f.submitted.filter((s) => UNSTORABLE_TYPES.has(s.type));
  const nearJobs = f.submitted.filter((s) => s.type === "chaos.nearlimit");
  const refusedCheckpoints = new Set(f.ledger.filter((e) => e.k === "refused").map((e) => (e as Of<"refused">).job));
  const c = f.callers;
  const callText = (x: CallerStats["cancel"]) => `${x.sent} sent (${x.answered} answered, ${x.refused} refused, ${x.failed} failed)`;
  const rows: CheckRow[] = [
    { check: "jobs submitted", value: String(f.submitted.length), ok: null },
    ...(f.deaths
      ? [{ check: "death events (each twice: at once, and late)", value: `${f.deaths.delivered} delivered: ${f.deaths.requeued} jobs queued again at once, ${f.deaths.ended} ended, ${f.deaths.untouched} left alone (moved on, finished, or a repeat)`, ok: null }]
      : []),
    { check: "every job terminal", value: `${notTerminal ? `${notTerminal} not terminal` : `all ${f.submitted.length}`}${children.length ? ` (and their ${children.length} flow children)` : ""}${scheduled.length ? ` (and ${scheduled.length} scheduled ticks' jobs)` : ""}`, ok: notTerminal === 0 },
    { check: "final state matches the job type (or a caller's cancel)", value: wrongState ? `${wrongState} wrong` : "all", ok: wrongState === 0 },
    { check: "≤ 1 committed result per job (per run, between API retries)", value: doubles ? `${doubles} jobs committed twice` : `max 1 (${commits} commits for ${all.length} jobs${children.length ? ` (${children.length} of them flow children)` : ""}, ${calls.retries} retried runs)`, ok: doubles === 0 },
    { check: "every end observed, under the current fence", value: `${unobserved} unobserved, ${stale} stale, ${missed} jobs with writes the ledger missed, ${unclassified} unclassified writes`, ok: unobserved === 0 && stale === 0 && missed === 0 && unclassified === 0 },
    { check: "no attempt spent without its handler starting", value: `${spentUnstarted} spent; ${unstarted.killed + unstarted.leaseLost + unstarted.handedBack} claims not started (${unstarted.killed} worker killed, ${unstarted.leaseLost} lease lost, nothing written, ${unstarted.handedBack} handed back at once, the attempt returned)`, ok: spentUnstarted === 0 },
    { check: "every handler start under an applied claim, none after the job ended", value: `${unclaimedStarts} without a claim, ${startedAfterEnd} after the end`, ok: unclaimedStarts === 0 && startedAfterEnd === 0 },
    { check: "no step skipped (succeeded jobs did all their work)", value: skipped ? `${skipped} jobs skipped work` : "none skipped", ok: skipped === 0 },
    { check: "resumes start from the checkpoint DynamoDB held", value: badResume ? `${badResume} wrong` : `all (${resumed} resumed)`, ok: badResume === 0 },
    {
      check: "resumed attempts redid ≤ one checkpoint interval",
      value: `most redone ${maxRedoneSteps} steps (${maxRedoneMs} ms of work); ${resumed - beyondOneInterval} of ${resumed} within one heartbeat (${f.heartbeatMs} ms) + its write + a step, ${beyondOneInterval} more where heartbeats did not land (up to ${mostMissedBeats} missed); none past the lease (${f.leaseMs} ms)`,
      ok: overRedo === 0,
    },
    { check: "attempts begun after their lease was lost (frozen worker)", value: `${zombies}; each stopped by its first heartbeat (worst ${zombieMs} ms of work, no commit)`, ok: null },
    {
      check: "unstorable results fail once, never retried",
      value: `${unstorableJobs.length} jobs (Date, NaN, a result over its limit): ${unstorableOnce} after one start, ${unstorableRestarted} re-run only after a kill or lost lease; ${unstorableRerun} retried`,
      ok: unstorableRerun === 0,
    },
    { check: "values at their limits", value: `${nearJobs.length} jobs stored an input and a checkpoint at their limits; the larger checkpoint was refused to ${refusedCheckpoints.size} of them (TooLargeError)`, ok: null },
    {
      check: "API cancels and retries accounted for",
      value: `${calls.cancels} cancels applied (${calls.cancelledJobs} jobs ended cancelled, ${lostCancels} requests lost), ${calls.retries} retries applied to ${calls.retriedJobs} jobs (${retriedOpen} not terminal again)${c ? `; cancel ${callText(c.cancel)}, retry ${callText(c.retry)}` : ""}`,
      ok: retriedOpen === 0 && lostCancels === 0,
    },
    { check: "jobs that needed the sweeper", value: `${sweptJobs.size} (${dropped.length} had their message dropped)`, ok: null },
    { check: "death → running again (SIGKILL)", value: `n=${d.SIGKILL.n} median ${ms(d.SIGKILL.median)} p95 ${ms(d.SIGKILL.p95)} worst ${ms(d.SIGKILL.max)}`, ok: null },
    { check: "stop → running again (SIGTERM)", value: `n=${d.SIGTERM.n} median ${ms(d.SIGTERM.median)} p95 ${ms(d.SIGTERM.p95)} worst ${ms(d.SIGTERM.max)}`, ok: null },
    ...(f.kills.some((k) => k.signal === "SIGSTOP")
      ? [{ check: "frozen → running again (SIGSTOP, the lease)", value: `n=${d.SIGSTOP.n} median ${ms(d.SIGSTOP.median)} p95 ${ms(d.SIGSTOP.p95)} worst ${ms(d.SIGSTOP.max)}`, ok: null }]
      : []),
    { check: "worker kills", value: `${killed.length}: ${Object.entries(kills).filter(([k]) => !k.includes("sweeper")).map(([k, n]) => `${n} ${k}`).join(", ") || "none"}`, ok: null },
    { check: "sweeper restarts", value: `${f.kills.length - killed.length} (${f.kills.filter((k) => k.midSweep).length} mid-sweep)`, ok: null },
    faultRow("dynamodb", "DynamoDB faults injected on the wire"),
    faultRow("sqs", "SQS faults injected on the wire"),
    { check: "SQS message faults", value: `${f.duplicates.immediate} duplicate, ${f.duplicates.delayed} delayed redeliveries, ${dropped.length} enqueues lost after the write`, ok: null },
    { check: "finished handlers whose result was fenced out", value: `${fencedOut} (${stallFenced} from workers frozen past their lease; ${f.submitted.filter((s) => s.type === "chaos.stall").length} stall jobs)`, ok: null },
    ...(flows.evaluations ? flowRows(flows, children, f.refusedChildWrites) : []),
    ...(f.limits ? limitRows(limits) : []),
    ...(f.schedule ? scheduleRows(schedule) : []),
    ...(priorities ? priorityRows(priorities) : []),
    ...(effects ? effectRows(effects) : []),
  ];
  return {
    ok: violations.length === 0,
    rows,
    violations,
    faults: f.faults,
    kills,
    deathToRunning: d,
    killsTimed,
    redo: { resumed, maxRedoneSteps, maxRedoneMs, beyondOneInterval },
    jobsNeedingSweeper: sweptJobs.size,
    fencedOut,
    unstarted,
    calls,
    statuses,
    flows,
    limits,
    schedule,
    ...(priorities ? { priorities } : {}),
    ...(effects ? { effects } : {}),
  };
}

type LedgerOf = (id: string) => JobLedger;

/** Section 8: the flows' own checks, over the evaluations among the submitted jobs and their derived children. */
function checkFlows(f: ChaosFacts, L: LedgerOf, children: Submitted[], violations: string[]): FlowFigures {
  const out: FlowFigures = {
    evaluations: 0,
    executions: children.length,
    written: 0,
    writtenBySweeper: 0,
    missing: 0,
    claimsAfterSuccess: 0,
    waits: 0,
    resumes: 0,
    resumedBy: { worker: 0, sweeper: 0, other: 0 },
    badResumes: 0,
    badResults: 0,
    statuses: {},
    fanIn: { ends: 0, recounts: 0, erased: 0 },
  };
  // The fan-in items' writes, in the order DynamoDB answered them: a recount rewrites a whole item
  // from the children's records it read, so an end counted after that read is dropped until the next.
  const fanins = new Map<string, Of<"fanin">[]>();
  for (const e of f.ledger) if (e.k === "fanin") (fanins.get(`${e.parent}#${e.round}#${e.shard}`) ?? fanins.set(`${e.parent}#${e.round}#${e.shard}`, []).get(`${e.parent}#${e.round}#${e.shard}`)!).push(e);
  for (const list of fanins.values()) {
    list.sort((a, b) => a.appliedAt - b.appliedAt);
    const counted = new Set<number>();
    for (const e of list) {
      const now = e.sets ? [...e.sets.s, ...e.sets.f, ...e.sets.c] : [];
      if (e.op === "end") {
        out.fanIn.ends++;
        for (const i of now) counted.add(i);
      } else if (e.op === "recount") {
        out.fanIn.recounts++;
        // A whole item written (`sets`, no delta) replaces it; a delta adds and removes indexes.
        const whole = e.added === undefined && e.removed === undefined;
        const gone = whole ? [...counted].filter((i) => !now.includes(i)) : (e.removed ?? []).filter((i) => counted.has(i));
        out.fanIn.erased += gone.length;
        if (whole) counted.clear();
        for (const i of gone) counted.delete(i);
        for (const i of whole ? now : (e.added ?? [])) counted.add(i);
      } else for (const i of e.removed ?? []) counted.delete(i); // a retry's forget
    }
  }
  const kidsOf = new Map<string, Submitted[]>();
  for (const c of children) (kidsOf.get(c.parent!.id) ?? kidsOf.set(c.parent!.id, []).get(c.parent!.id)!).push(c);
  // Every child DynamoDB created, from the ledger: by parent, then by id.
  const created = new Map<string, Map<string, Of<"create">[]>>();
  for (const e of f.ledger) {
    if (e.k !== "create" || !e.parent) continue;
    const byId = created.get(e.parent.id) ?? created.set(e.parent.id, new Map()).get(e.parent.id)!;
    (byId.get(e.job) ?? byId.set(e.job, []).get(e.job)!).push(e);
  }

  for (const p of f.submitted.filter((s) => s.type === EVALUATE_TYPE)) {
    out.evaluations++;
    const kids = kidsOf.get(p.id) ?? [];
    const parent = f.jobs.get(p.id);
    const made = created.get(p.id) ?? new Map<string, Of<"create">[]>();

    // No execution missing: each derived id has one record, linked to this parent at its index, created once.
    const ids = new Set(kids.map((k) => k.id));
    const missing: number[] = [];
    for (const k of kids) {
      const rec = f.jobs.get(k.id);
      const link = k.parent!;
      if (!rec) {
        missing.push(link.index);
        continue;
      }
      const at = rec.parent;
      if (at?.id !== p.id || at.round !== link.round || at.index !== link.index || at.key !== link.key) {
        missing.push(link.index);
        violations.push(`${k.id} (${k.type}) is not child ${link.index} of ${p.id} round ${link.round}: its record links ${JSON.stringify(at ?? null)}`);
        continue;
      }
      out.written++;
      const creates = made.get(k.id) ?? [];
      if (creates.some((c) => c.by === "sweeper")) out.writtenBySweeper++;
      if (creates.length !== 1) violations.push(`${k.id} (child ${link.index} of ${p.id}) was created ${creates.length} times as DynamoDB applied it (the ledger): expected once`);
    }
    out.missing += missing.length;
    if (missing.length) violations.push(`${p.id} (${p.type}): ${missing.length} of its ${kids.length} executions were never written (indexes ${missing.slice(0, 10).join(", ")}${missing.length > 10 ? ", …" : ""})`);
    for (const [id, creates] of made) {
      if (ids.has(id)) continue;
      violations.push(`${p.id} (${p.type}): DynamoDB created a child ${id} it never spawned (index ${creates[0]!.parent!.index}, key ${creates[0]!.parent!.key ?? "none"})`);
    }

    // None run again after its result was committed: no claim applied after the first succeeded end.
    for (const k of kids) {
      const j = L(k.id);
      const won = j.store.find((e): e is Of<"commit"> => e.k === "commit" && e.status === "succeeded");
      if (!won) continue;
      for (const c of j.claims.filter((x) => x.version > won.version)) {
        out.claimsAfterSuccess++;
        violations.push(`${k.id} (child ${k.parent!.index} of ${p.id}) was claimed again (v${c.version}, token ${c.token}, worker ${c.worker}) after its success was committed (v${won.version})`);
      }
    }

    // One wait and one resume per round (per run: a caller's retry of a parent waits on its round again), the resume after every child of the round ended.
    const j = L(p.id);
    let bad = false;
    for (const [r, run] of j.runs.entries()) {
      const waits = run.filter((e): e is Of<"wait"> => e.k === "wait");
      const resumes = run.filter((e): e is Of<"resume"> => e.k === "resume");
      out.waits += waits.length;
      out.resumes += resumes.length;
      for (const x of resumes) out.resumedBy[x.by]++;
      for (const round of new Set([...waits, ...resumes].map((e) => e.round))) {
        const w = waits.filter((e) => e.round === round).length;
        const n = resumes.filter((e) => e.round === round).length;
        if (w > 1 || n > 1) {
          bad = true;
          const how = resumes.filter((e) => e.round === round).map((e) => `v${e.version} by ${e.by}${e.conditional ? "" : ", unconditional"}`);
          violations.push(`${p.id} (${p.type}) ${r ? `run ${r + 1}, ` : ""}round ${round}: ${w} waits and ${n} resumes applied (${how.join("; ") || "no resume"}): expected one of each`);
        }
      }
      for (const x of resumes) {
        const open = kids.filter((k) => k.parent!.round === x.round && !L(k.id).store.some((e) => e.k === "commit" && e.appliedAt <= x.appliedAt));
        if (open.length) {
          bad = true;
          violations.push(`${p.id} (${p.type}) was resumed (v${x.version}, by ${x.by}) while ${open.length} of its executions had not ended (indexes ${open.slice(0, 10).map((k) => k.parent!.index).join(", ")})`);
        }
      }
    }
    if (parent?.status === "succeeded") {
      const waits = j.store.filter((e) => e.k === "wait").length;
      const last = j.runs.at(-1)!.filter((e) => e.k === "resume").length;
      if (waits !== 1 || last !== 1) {
        bad = true;
        violations.push(`${p.id} (${p.type}) succeeded after ${waits} waits and ${last} resumes in its last run: expected one wait for its executions and one resume`);
      }
    }
    if (bad) out.badResumes++;

    // Its result reports complete results, as its children's records say.
    if (parent?.status !== "succeeded") continue;
    const r = parent.result as Partial<EvaluationResult> | null;
    const recs = kids.map((k) => f.jobs.get(k.id));
    const succeeded = recs.filter((x) => x?.status === "succeeded");
    const failed = recs.filter((x) => x?.status === "failed").length;
    const scores = succeeded.map((x) => (x!.result as ExecutionResult | undefined)?.score ?? NaN);
    const mean = scores.length ? scores.reduce((a, b) => a + b, 0) / scores.length : null;
    const why: string[] = [];
    if (r?.executions !== kids.length) why.push(`executions ${r?.executions}, spawned ${kids.length}`);
    if ((r?.succeeded ?? NaN) + (r?.failed ?? NaN) !== kids.length) why.push(`succeeded + failed = ${(r?.succeeded ?? NaN) + (r?.failed ?? NaN)}, not ${kids.length}`);
    if (r?.succeeded !== succeeded.length) why.push(`succeeded ${r?.succeeded}, the records say ${succeeded.length}`);
    if (r?.failed !== failed) why.push(`failed ${r?.failed}, the records say ${failed}`);
    const meanOk = mean === null ? r?.meanScore === null : typeof r?.meanScore === "number" && Math.abs(r.meanScore - mean) < 1e-9;
    if (!meanOk) why.push(`mean score ${r?.meanScore}, the records say ${mean}`);
    if (why.length) {
      out.badResults++;
      violations.push(`${p.id} (${p.type}) succeeded with a result not true to its executions: ${why.join("; ")} (result ${JSON.stringify(r)})`);
    }
  }
  return out;
}

function flowRows(x: FlowFigures, children: Submitted[], refused?: ChaosFacts["refusedChildWrites"]): CheckRow[] {
  const on = (t: string) => children.filter((c) => c.type === t).length;
  const doomed = children.filter((c) => c.input.doomed === true).length;
  const flaky = children.filter((c) => Number(c.input.failTimes) > 0).length;
  const ends = Object.entries(x.statuses).map(([s, n]) => `${n} ${s}`).join(", ");
  return [
    {
      check: "flows: evaluations (regions × models × questions)",
      value: `${x.evaluations} parents, ${x.executions} executions (${on("chaos.execution")} on Lambda, ${on("chaos.execution.large")} on Fargate; ${doomed} doomed, ${flaky} failing once): ${ends}`,
      ok: null,
    },
    {
      check: "every execution written, one record per index",
      value: `${x.written} of ${x.executions} (${x.writtenBySweeper} written by the sweeper from the spec${refused?.executions ? `; ${refused.executions} executions' creates refused on the wire, ${refused.tries} tries` : ""}); ${x.missing} missing`,
      ok: x.missing === 0 && x.written === x.executions,
    },
    { check: "no execution claimed after its success was committed", value: `${x.claimsAfterSuccess} claims after a committed success`, ok: x.claimsAfterSuccess === 0 },
    {
      check: "every evaluation waited once, resumed once, after its last execution",
      value: `${x.waits} waits, ${x.resumes} resumes (${x.resumedBy.worker} by the last execution's worker, ${x.resumedBy.sweeper} by the sweeper's recount, ${x.resumedBy.other} by the API or a death event); ${x.badResumes} parents off`,
      ok: x.badResumes === 0,
    },
    {
      check: "fan-in writes",
      value: `${x.fanIn.ends} children's ends applied (one written again, a resend after a lost reply, adds nothing), ${x.fanIn.recounts} recounts by the sweeper from the children's records; ${x.fanIn.erased} counted ends a recount took out`,
      ok: null,
    },
    { check: "evaluation results complete and true to the executions", value: x.badResults ? `${x.badResults} wrong` : "all (executions, succeeded + failed, counts and mean score as the records say)", ok: x.badResults === 0 },
  ];
}

/** What became of an applied claim (section 4): it started its handler, or why it did not. */
type ClaimFate = "started" | "killed" | "leaseLost" | "handedBack" | "spent";

// ─── 9. a concurrency limit ──────────────────────────────────────────────────────────────────

/** A stretch of time one job spent in some state, from `from` up to (not including) `to`. */
interface Span {
  job: string;
  from: number;
  to: number;
}

/** The write that takes a job out of running: its end, a hand-back, a parent's wait, the sweeper's (or a death event's) reclaim, expire or cancel. */
const leavesRunning = (e: StoreEntry): boolean => e.k === "commit" || e.k === "release" || e.k === "wait" || (e.k === "swept" && e.transition !== "recheck");

/**
 * A job's runs as DynamoDB applied them: from a claim of it while it was not running to the
 * write that took it out of running, with every claim made in between (a takeover of an expired
 * lease continues the run, and keeps its slots). Times are the proxy's `appliedAt`, one clock.
 */
function runsOf(j: JobLedger): { from: number; to: number; claims: Claim[] }[] {
  const out: { from: number; to: number; claims: Claim[] }[] = [];
  let cur: { from: number; to: number; claims: Claim[] } | undefined;
  for (const e of j.store) {
    if (e.k === "claim") {
      cur ??= { from: e.appliedAt, to: Infinity, claims: [] };
      cur.claims.push(e as Claim);
    } else if (cur && leavesRunning(e)) {
      cur.to = e.appliedAt;
      out.push(cur);
      cur = undefined;
    }
  }
  if (cur) out.push(cur);
  return out;
}

/** The most distinct jobs inside one of their spans at once, when that was first reached, and which jobs they were. */
function peak(spans: Span[]): { n: number; at: number; jobs: string[] } {
  const events = spans.filter((x) => x.to > x.from).flatMap((x) => [{ t: x.from, d: 1, job: x.job }, { t: x.to, d: -1, job: x.job }]);
  // An end and a start at the same instant do not overlap: ends first.
  events.sort((a, b) => a.t - b.t || a.d - b.d);
  const open = new Map<string, number>();
  let best = { n: 0, at: NaN, jobs: [] as string[] };
  for (const e of events) {
    const n = (open.get(e.job) ?? 0) + e.d;
    if (n > 0) open.set(e.job, n);
    else open.delete(e.job);
    if (open.size > best.n) best = { n: open.size, at: e.t, jobs: [...open.keys()] };
  }
  return best;
}

/** How long after its end a kill may still have cut the slot release that follows it (a release can hang on the wire for a few tries). */
const RELEASE_CUT_MS = 10_000;

/**
 * Section 9: the keyed jobs (submitted with the run's concurrency key) against their limit.
 *
 * What is counted: a keyed job is running while one of its handlers runs (from its `start` to
 * its `end`; a SIGKILLed process's handlers to the kill) and its run holds its slot (from the
 * claim that took it out of queued to the write that took it out of running, as DynamoDB applied
 * them). The store gives a run's slots back only after that write, and takes a slot before the
 * claim, so no more than the limit of such runs exist at once. A handler whose lease was lost
 * still counts while its run holds the slot: a worker frozen past its lease, until another
 * worker's takeover ends the run (the takeover keeps the job's slot: both handlers are one job,
 * counted once) or the sweeper's reclaim takes the job back. After that write its slot is
 * free, and another keyed job may take it and start: the frozen handler, continued, runs on
 * until its first heartbeat is refused, holding no slot. That overrun is the fence's business
 * (section 5 bounds it; its results are refused), not the limit's: the limit bounds runs holding
 * slots, and a handler that overran one no longer holds any. So it is cut at its run's end, and
 * the count with it (`maxUnclipped`) is shown beside, unchecked. The frozen-worker jobs
 * (chaos.stall) carry the key too, so that case is exercised, not avoided.
 *
 * Checked besides: DynamoDB's own view (runs at once, as applied), every keyed job terminal,
 * holds that leave the job's attempts as they were and histories whose every attempt started
 * its handler (or lost it to a kill or a lost lease, section 4), and the key's slots item empty
 * after the drain, but for a slot whose job's ending write was made by a process killed right
 * after it (its release cut: by design it stays until a job waits on the key, and the sweeper's
 * recount gives it back).
 */
function checkLimits(f: ChaosFacts, L: LedgerOf, fates: Map<Claim, ClaimFate>, violations: string[]): LimitFigures {
  const out: LimitFigures = {
    key: f.limits?.key ?? null,
    limit: f.limits?.limit ?? 0,
    keyed: 0,
    handlers: 0,
    maxRunning: 0,
    maxRunningStore: 0,
    maxUnclipped: 0,
    overran: 0,
    overranMs: 0,
    notTerminal: 0,
    holds: 0,
    heldJobs: 0,
    unholds: 0,
    spentOnHold: 0,
    attemptsUnstarted: 0,
    holdersLeft: 0,
    holdersExcused: 0,
  };
  if (!f.limits) return out;
  const { key, limit } = f.limits;
  const keyed = f.submitted.filter((s) => s.concurrencyKey === key);
  out.keyed = keyed.length;
  const sigkilled = new Map<number, number>();
  for (const k of f.kills) if (k.signal === "SIGKILL" && !sigkilled.has(k.pid)) sigkilled.set(k.pid, k.at);
  const running: Span[] = [];
  const unclipped: Span[] = [];
  const inStore: Span[] = [];
  for (const s of keyed) {
    const j = L(s.id);
    const runs = runsOf(j);
    for (const r of runs) inStore.push({ job: s.id, from: r.from, to: r.to });
    for (const st of j.starts) {
      const c = claimOf(j, st);
      if (!c) continue; // reported by section 4
      out.handlers++;
      const runEnd = runs.find((r) => r.claims.includes(c))?.to ?? Infinity;
      const ended = j.proc.find((e): e is Of<"end"> => e.k === "end" && e.pid === st.pid && e.attempt === st.attempt && e.at >= st.at)?.at;
      const killed = sigkilled.get(st.pid);
      const end = ended ?? (killed !== undefined && killed >= st.at ? killed : undefined);
      running.push({ job: s.id, from: st.at, to: Math.min(end ?? Infinity, runEnd) });
      unclipped.push({ job: s.id, from: st.at, to: end ?? runEnd });
      if (end !== undefined && end > runEnd) {
        out.overran++;
        out.overranMs = Math.max(out.overranMs, end - runEnd);
      }
    }

    // No attempt spent on a hold: the gates' writes leave attempts as they were, and every attempt
    // the record counts ran its handler, or lost it to a kill or a lost lease.
    const job = f.jobs.get(s.id);
    if (!job || !isTerminal(job.status)) out.notTerminal++;
    const gated = j.store.filter((e) => e.k === "hold" || e.k === "unhold");
    if (gated.some((e) => e.k === "hold")) out.heldJobs++;
    for (const g of gated) {
      if (g.k === "hold") out.holds++;
      else out.unholds++;
      const before = j.store.find((e) => e.version === g.version - 1);
      if (g.attempts !== undefined && before?.attempts !== undefined && g.attempts !== before.attempts) {
        out.spentOnHold++;
        violations.push(`${s.id} (${s.type}) ${g.k === "hold" ? `was held (${g.by} on ${g.key})` : "was unheld"} at v${g.version} with ${g.attempts} attempts, but had ${before.attempts} before (v${before.version}): an attempt spent on a hold`);
      }
    }
    if (!job) continue;
    const history = job.history ?? [];
    for (const a of history) {
      const claims = j.claims.filter((c) => c.attempt === a.attempt && c.worker === a.worker);
      if (claims.some((c) => fates.get(c) !== "spent")) continue;
      out.attemptsUnstarted++;
      // A claim that was spent is section 4's violation already; one never applied is this one's.
      if (!claims.length) violations.push(`${s.id} (${s.type}) has attempt ${a.attempt} (worker ${a.worker}) in its history, but DynamoDB applied no such claim`);
    }
    const ran = Math.max(0, ...history.map((a) => a.attempt));
    if (job.attempts > ran) {
      out.spentOnHold++;
      violations.push(`${s.id} (${s.type}) counts ${job.attempts} attempts, but its history ran ${ran}: an attempt spent without a run`);
    }
  }
  const p = peak(running);
  const ps = peak(inStore);
  out.maxRunning = p.n;
  out.maxRunningStore = ps.n;
  out.maxUnclipped = peak(unclipped).n;
  const iso = (t: number) => (Number.isFinite(t) ? new Date(t).toISOString() : String(t));
  if (p.n > limit) violations.push(`${p.n} keyed jobs (key:${key}, limit ${limit}) ran their handlers at once while their runs held slots, at ${iso(p.at)}: ${p.jobs.join(", ")}`);
  if (ps.n > limit) violations.push(`DynamoDB had ${ps.n} keyed jobs (key:${key}, limit ${limit}) running at once, at ${iso(ps.at)}: ${ps.jobs.join(", ")}`);

  // The key's slots after the drain: none held, but a slot whose release a kill cut right after its job ended.
  const isKeyed = new Set(keyed.map((s) => s.id));
  for (const id of Object.keys(f.limits.holders)) {
    out.holdersLeft++;
    const job = f.jobs.get(id);
    const end = L(id).store.filter((e): e is Of<"commit"> => e.k === "commit").at(-1);
    const enders = !end ? [] : end.by === "worker" ? f.kills.filter((k) => k.pid === end.pid) : end.by === "sweeper" ? f.kills.filter((k) => k.target === "sweeper") : [];
    const cut = end && enders.some((k) => k.at >= end.appliedAt && k.at - end.appliedAt <= RELEASE_CUT_MS);
    if (isKeyed.has(id) && job && isTerminal(job.status) && cut) {
      out.holdersExcused++;
      continue;
    }
    violations.push(`key:${key}'s slots still hold ${id} (${isKeyed.has(id) ? (job?.status ?? "missing") : "not a keyed job of this run"}, taken at ${iso(f.limits.holders[id]!.at)}) after the drain: a slot no run holds, its release lost`);
  }
  return out;
}

function limitRows(x: LimitFigures): CheckRow[] {
  return [
    {
      check: `≤ ${x.limit} keyed jobs running at once (key:${x.key})`,
      value: `max ${x.maxRunning} handlers at once while their runs held slots, ${x.maxRunningStore} runs at once as DynamoDB applied them (${x.keyed} keyed jobs, ${x.handlers} handler runs); ${x.overran} handlers ran on past their run's end (frozen or cut off, worst ${x.overranMs} ms; ${x.maxUnclipped} at once counting them)`,
      ok: x.maxRunning <= x.limit && x.maxRunningStore <= x.limit,
    },
    {
      check: "every keyed job terminal, no attempt spent on a hold",
      value: `${x.keyed - x.notTerminal} of ${x.keyed} terminal; ${x.holds} holds applied to ${x.heldJobs} jobs, ${x.unholds} unholds, ${x.spentOnHold} changed attempts; ${x.attemptsUnstarted} attempts in their histories without a handler start`,
      ok: x.notTerminal === 0 && x.spentOnHold === 0 && x.attemptsUnstarted === 0,
    },
    {
      check: "keyed slots given back after the drain",
      value: `${x.holdersLeft} held${x.holdersExcused ? ` (${x.holdersExcused} whose job's end was written by a process killed before it gave the slot back: left until a job waits on the key, by design)` : ""}`,
      ok: x.holdersLeft === x.holdersExcused,
    },
  ];
}

// ─── 10. a schedule ──────────────────────────────────────────────────────────────────────────

/**
 * Every tick of the schedule from its first up to the pause, each with the id its job must have
 * (core/schedules.ts: the tick is the job's idempotency key under the schedule's owner) and
 * whether the schedule handled it (before its nextAt at the end). Fixed rates only.
 */
export function scheduleTicks(s: ScheduleFacts): { tick: number; id: string; recorded: boolean }[] {
  const c = s.schedule.cadence;
  if (!("everyMs" in c) || c.everyMs <= 0) return [];
  const out: { tick: number; id: string; recorded: boolean }[] = [];
  const last = Math.max(s.pausedBy, s.schedule.nextAt - c.everyMs);
  for (let t = s.firstTick; t <= last; t += c.everyMs) out.push({ tick: t, id: idempotentId(s.schedule.owner, tickKey(s.schedule.id, t)), recorded: t < s.schedule.nextAt });
  return out;
}

/** The ticks' jobs the per-job checks hold: every handled tick's (missing or not), and the job of any other tick up to the pause that exists. */
export function scheduledJobs(s: ScheduleFacts, jobs: Map<string, Job | undefined>): Submitted[] {
  return scheduleTicks(s)
    .filter((t) => t.recorded || jobs.get(t.id))
    .map((t) => ({ id: t.id, type: s.schedule.job.type, input: (s.schedule.job.input ?? {}) as Record<string, unknown>, enqueueDropped: false, at: t.tick, tick: t.tick }));
}

/**
 * Section 10: a schedule fires each tick once. Each tick from the first to the last it handled
 * has its job (the derived id), and no other job of its type exists (a second job for a tick
 * would have another id, so it is found as one no tick derives); a tick after the last handled
 * one and before the pause may have a job (a sweep fired it, then lost its own write to the
 * pause), never one after the pause. Every such job is terminal, and the schedule's counts say
 * what it did: every tick fired (overlap `allow`), none skipped, none missed (catch-up `all`).
 */
function checkSchedule(f: ChaosFacts, violations: string[]): ScheduleFigures {
  const sf = f.schedule;
  const noLag = { n: 0, median: NaN, p95: NaN, max: NaN };
  if (!sf) return { id: null, everyMs: 0, ticks: 0, jobs: 0, missing: 0, extra: 0, unrecorded: 0, notTerminal: 0, counts: { fired: 0, skipped: 0, missed: 0 }, badRuns: 0, lag: noLag, late: 0 };
  const s = sf.schedule;
  const everyMs = "everyMs" in s.cadence ? s.cadence.everyMs : 0;
  const ticks = scheduleTicks(sf);
  const out: ScheduleFigures = { id: s.id, everyMs, ticks: 0, jobs: 0, missing: 0, extra: 0, unrecorded: 0, notTerminal: 0, counts: { ...s.counts }, badRuns: 0, lag: noLag, late: 0 };
  if (!everyMs) {
    violations.push(`schedule ${s.id}: not a fixed rate; the chaos check derives fixed-rate ticks only`);
    return out;
  }
  const lags: number[] = [];
  const missing: number[] = [];
  for (const t of ticks) {
    const job = f.jobs.get(t.id);
    if (t.recorded) out.ticks++;
    if (!job || job.type !== s.job.type) {
      if (t.recorded) missing.push(t.tick);
      if (job) violations.push(`schedule ${s.id}: tick ${new Date(t.tick).toISOString()}'s id ${t.id} holds a ${job.type} job, not ${s.job.type}`);
      continue;
    }
    if (t.recorded) out.jobs++;
    else out.unrecorded++;
    if (!isTerminal(job.status)) out.notTerminal++;
    lags.push(job.createdAt - t.tick);
  }
  out.missing = missing.length;
  if (missing.length) violations.push(`schedule ${s.id}: ${missing.length} of its ${out.ticks} handled ticks have no job (${missing.slice(0, 5).map((t) => new Date(t).toISOString()).join(", ")}${missing.length > 5 ? ", …" : ""})`);
  if (!out.ticks) violations.push(`schedule ${s.id}: not one tick handled in the run (first tick ${new Date(sf.firstTick).toISOString()}, paused by ${new Date(sf.pausedBy).toISOString()})`);
  const derived = new Set(ticks.map((t) => t.id));
  const extra = sf.ofType.filter((id) => !derived.has(id));
  out.extra = extra.length;
  if (extra.length) violations.push(`schedule ${s.id}: ${extra.length} jobs of its type ${s.job.type} are the job of no tick up to the pause (${extra.slice(0, 5).join(", ")}${extra.length > 5 ? ", …" : ""}): a tick fired twice, or after the pause`);
  if (s.counts.fired !== out.ticks || s.counts.skipped !== 0 || s.counts.missed !== 0) {
    violations.push(`schedule ${s.id} counts fired ${s.counts.fired}, skipped ${s.counts.skipped}, missed ${s.counts.missed}; it handled ${out.ticks} ticks, each to fire (overlap ${s.overlap}, catch-up ${s.catchUp})`);
  }
  // Ticks a look decided but did not record (core/schedules.ts keeps them `pending` until it does): the drain waits for them, so none may be left.
  const pending = (s as { pending?: { tick: number }[] }).pending ?? [];
  if (pending.length) {
    out.badRuns += pending.length;
    violations.push(`schedule ${s.id} still has ${pending.length} decided ticks it never recorded (${pending.slice(0, 5).map((p) => new Date(p.tick).toISOString()).join(", ")})`);
  }
  const idOf = new Map(ticks.map((t) => [t.tick, t.id]));
  for (const r of s.runs) {
    if (r.outcome === "fired" && r.jobId === idOf.get(r.tick)) continue;
    out.badRuns++;
    violations.push(`schedule ${s.id}'s run for tick ${new Date(r.tick).toISOString()} is ${r.outcome}${r.count ? ` (${r.count} ticks)` : ""} with job ${r.jobId ?? "none"}; expected fired with ${idOf.get(r.tick) ?? "a tick on its grid"}`);
  }
  const { samples: _s, ...lag } = distribution(lags);
  out.lag = lag;
  out.late = lags.filter((x) => x > everyMs).length;
  return out;
}

function scheduleRows(x: ScheduleFigures): CheckRow[] {
  const ms = (v: number) => (Number.isFinite(v) ? `${(v / 1000).toFixed(2)} s` : "–");
  return [
    {
      check: `schedule: one job per tick (every ${x.everyMs / 1000} s), first to last handled`,
      value: `${x.ticks} ticks handled: ${x.jobs} jobs, ${x.missing} missing, ${x.extra} more of its type than its ticks derive; ${x.unrecorded} later ticks fired by a sweep the pause overtook`,
      ok: x.ticks > 0 && x.missing === 0 && x.extra === 0,
    },
    {
      check: "schedule: its jobs terminal, its counts true (catch-up all)",
      value: `${x.jobs + x.unrecorded - x.notTerminal} of ${x.jobs + x.unrecorded} terminal; counts fired ${x.counts.fired}, skipped ${x.counts.skipped}, missed ${x.counts.missed}; ${x.badRuns} kept runs off`,
      ok: x.notTerminal === 0 && x.counts.fired === x.ticks && x.counts.skipped === 0 && x.counts.missed === 0 && x.badRuns === 0,
    },
    { check: "schedule: tick → its job written", value: `median ${ms(x.lag.median)} p95 ${ms(x.lag.p95)} worst ${ms(x.lag.max)}; ${x.late} later than one interval (caught up after the sweeper was down)`, ok: null },
  ];
}

function wrongOutcome(s: Submitted, job: Job, cancelAsked: boolean, j: JobLedger): string | undefined {
  const expected = expectedStatus(s.type, s.input);
  if (!expected) return `unknown chaos type`;
  const err = "error" in job && job.error ? ` (${job.error.code}: ${job.error.message.slice(0, 300)})` : "";
  if (job.status === "cancelled") return cancelAsked ? undefined : `ended cancelled${err}, but no caller asked for a cancel since its last retry`;
  if (job.status !== expected) return `ended ${job.status}${err}, expected ${expected}`;
  if (STEP_TYPES.has(s.type) && job.status === "succeeded") {
    const r = job.result as { steps?: number; sum?: number } | null;
    const n = Number(s.input.steps);
    if (r?.steps !== n || r?.sum !== expectedSum(n)) return `result ${JSON.stringify(r)} is not {steps: ${n}, sum: ${expectedSum(n)}}`;
  }
  if ((s.type === "chaos.doomed" || EXECUTION_TYPES.has(s.type)) && job.status === "failed" && job.error.code !== "handler_error") return `failed with ${job.error.code}${err}, expected handler_error`;
  if (EXECUTION_TYPES.has(s.type) && job.status === "succeeded") {
    const i = s.input as { region: string; model: string; question: string };
    const score = (job.result as ExecutionResult | null)?.score;
    if (score !== executionScore(i.region, i.model, i.question)) return `result ${JSON.stringify(job.result)} does not carry its score ${executionScore(i.region, i.model, i.question)}`;
  }
  if (UNSTORABLE_TYPES.has(s.type) && job.status === "failed" && !UNSTORABLE_CODES.has(job.error.code)) return `failed with ${job.error.code}${err}, expected ${[...UNSTORABLE_CODES].join(" or ")}`;
  if (s.type === "chaos.nearlimit" && job.status === "succeeded") {
    const r = job.result as NearLimitResult | null;
    if (r?.refused !== true) return `the checkpoint over the item limit was not refused to the handler (result ${JSON.stringify(r)})`;
    const kept = (job.checkpoint as { text?: string } | undefined)?.text?.length;
    if (kept !== Number(s.input.keep)) return `its checkpoint at the limit (${s.input.keep} characters) is not what DynamoDB holds (${kept ?? "none"})`;
    if (!j.proc.some((e) => e.k === "refused")) return "succeeded without a refused checkpoint in the ledger";
  }
  return undefined;
}

/** Which process held the job at `at`: the last claimer, unless it had let go (an end or a hand-back) or the sweeper took the job back by then. */
function holder(j: JobLedger, at: number): number | undefined {
  let pid: number | undefined;
  for (const e of [...j.store].sort((a, b) => a.at - b.at)) {
    if (e.at > at) break;
    if (e.k === "claim") pid = e.pid;
    else if ((e.k === "commit" || e.k === "release" || e.k === "wait") && e.pid === pid) pid = undefined;
    else if (e.k === "swept" || e.k === "commit") pid = undefined;
  }
  return pid;
}
