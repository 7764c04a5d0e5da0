/**
 * Recovery at the production timings (issue 15): how long after a worker dies its jobs run again,
 * with the default lease (TIMINGS.leaseMs, 60 s) and sweep interval (TIMINGS.sweepIntervalMs,
 * 10 s), through the local system (local/chaos.ts with every fault but the kills switched off;
 * its checks must still pass). Four runs:
 *
 *   fargate   SIGKILL of a Fargate-style worker (functions/fargate.ts); its death event reclaims its jobs
 *   lambda    SIGKILL of the Lambda process (local/chaos-lambda.ts running functions/worker.ts): a crash
 *   frozen    SIGSTOP of a Fargate-style worker, SIGCONT after 2 × lease: no death event; the lease recovers it
 *   leases    SIGKILL of a Fargate-style worker with death events off: the recovery before them
 *
 * A sample is one job the killed (or frozen) process held, timed from the signal to its next
 * accepted claim by any worker (local/chaos-check.ts, deathToRunning). Beside each: BullMQ 6.7.0
 * at its defaults (60.5 s for the same thing, the anchor from the issue) and the issue's target.
 */
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { TIMINGS } from "../core/config.js";
import { runChaos, type ChaosOptions } from "../local/chaos.js";
import { readLedger, type LedgerEntry } from "../local/chaos-ledger.js";
import { fmt, summary, table } from "./lib/table.js";

/** BullMQ 6.7.0 at its defaults: a killed worker's job runs again after 60.5 s (issue 15). */
export const BULLMQ_ANCHOR_MS = 60_500;

export type RecoveryKind = "fargate" | "lambda" | "frozen" | "leases" | "fargate-poll20";

export interface RecoveryRow {
  kind: RecoveryKind;
  what: string;
  signal: "SIGKILL" | "SIGSTOP";
  deathEvents: boolean;
  /** Kills (or freezes) the run made of that kind. */
  kills: number;
  /** Of those, the ones that interrupted at least one job that ran again (the others hit an idle process). */
  killsTimed: number;
  /** Interrupted jobs timed (a kill can interrupt several). */
  n: number;
  median: number;
  p95: number;
  max: number;
  min: number;
  /** Sorted samples (ms), for the report's plot. */
  samplesMs: number[];
  target: { text: string; medianMs?: number; p95Ms?: number; maxMs?: number };
  /** null: no samples to judge. */
  met: boolean | null;
  violations: number;
  /**
   * Doorbells the sweeper sent again at a queued job's start deadline: with every message fault
   * off, each is a doorbell that reached no live worker (see the notes), and its job waited for it.
   */
  resends: number;
  /**
   * Submit → first claim of every job: how long a fresh job waited for a free worker. Seconds
   * here mean the workers were saturated, and recovery samples include that wait for capacity.
   */
  queueWaitMs: { median: number; p95: number; max: number };
  /** The chaos run's death-event figures (what the reaper did), as its table printed them. */
  deathEventsRow?: string;
  seconds: number;
  seed: number;
  /** Where the run's process log and ledger are (a temporary directory). */
  logs: string;
  setup: string;
}

export interface RecoveryResult {
  leaseSeconds: number;
  sweepSeconds: number;
  anchorMs: number;
  rows: RecoveryRow[];
  skipped: string[];
  notes: string[];
}

interface Plan {
  kind: RecoveryKind;
  /** Run only when asked for by name (`npx tsx bench/recovery.ts fargate-poll20`), not by `npm run bench`. */
  diagnostic?: boolean;
  what: string;
  signal: "SIGKILL" | "SIGSTOP";
  target: RecoveryRow["target"];
  setup: string;
  options: Partial<ChaosOptions>;
}

const LEASE_S = TIMINGS.leaseMs / 1000;
const SWEEP_S = TIMINGS.sweepIntervalMs / 1000;

/** Every fault but the kills off, production lease and sweep interval, a dead worker back 0.3 s later. */
const BASE: Partial<ChaosOptions> = {
  leaseSeconds: LEASE_S,
  sweepSeconds: SWEEP_S,
  faultRate: 0,
  sweeperKillEveryMs: 0,
  dropEnqueueRate: 0,
  duplicatesPerSecond: 0,
  callersPerSecond: 0,
  restart: "immediate",
  save: false,
};

function plans(quick: boolean): Plan[] {
  const frozenBound = TIMINGS.leaseMs + TIMINGS.sweepIntervalMs + 5_000;
  return [
    {
      kind: "fargate",
      what: "Fargate worker SIGKILL (death event)",
      signal: "SIGKILL",
      target: { text: "median ≤ 5 s, p95 ≤ 10 s", medianMs: 5_000, p95Ms: 10_000 },
      setup: "4 Fargate processes (4 jobs each), one SIGKILLed every ~3 s while they run 8–25-step jobs of 300 ms steps",
      options: {
        ...BASE,
        workers: 4,
        jobs: quick ? 60 : 150,
        minutes: quick ? 1 : 2.25,
        stepMs: 300,
        killEveryMs: 3_000,
        lambdaKillShare: 0,
        sigkillShare: 1,
        mix: { "chaos.long": 1 },
      },
    },
    {
      kind: "lambda",
      what: "Lambda process crash (SIGKILL, death event)",
      signal: "SIGKILL",
      target: { text: "median ≤ 10 s", medianMs: 10_000 },
      setup: "The Lambda process (8 concurrent invocations; no Fargate workers) SIGKILLed every ~5 s while it runs 3–10-step jobs of 500 ms steps; it is started again 0.3 s after it dies, and only it consumes the default queue",
      options: {
        ...BASE,
        workers: 0,
        jobs: quick ? 60 : 190,
        minutes: quick ? 1 : 3,
        stepMs: 500,
        killEveryMs: 5_000,
        lambdaKillShare: 1,
        sigkillShare: 1,
        mix: { "chaos.steps": 1 },
      },
    },
    {
      kind: "frozen",
      what: "Fargate worker SIGSTOP (frozen: the lease)",
      signal: "SIGSTOP",
      target: { text: `≤ lease + sweep interval + 5 s = ${frozenBound / 1000} s`, maxMs: frozenBound },
      setup: `6 Fargate processes (4 jobs each), one SIGSTOPped every ~12 s for the first minute (continued ${(2 * LEASE_S).toFixed(0)} s later, 2 × lease; never the last one not frozen) while they run 8–25-step jobs of 1 s steps`,
      options: {
        ...BASE,
        workers: 6,
        jobs: quick ? 30 : 45,
        minutes: quick ? 0.6 : 1,
        stepMs: 1_000,
        killEveryMs: 12_000,
        lambdaKillShare: 0,
        stopShare: 1,
        mix: { "chaos.long": 1 },
      },
    },
    {
      kind: "leases",
      what: "Fargate worker SIGKILL, death events off (leases only)",
      signal: "SIGKILL",
      target: { text: "before/after: what the death event saves" },
      setup: "3 Fargate processes (4 jobs each), one SIGKILLed every ~7 s for 75 s while they run 8–25-step jobs of 300 ms steps",
      options: {
        ...BASE,
        workers: 3,
        jobs: 80,
        minutes: 1.25,
        stepMs: 300,
        killEveryMs: 7_000,
        lambdaKillShare: 0,
        sigkillShare: 1,
        deathEvents: false,
        mix: { "chaos.long": 1 },
      },
    },
    {
      kind: "fargate-poll20",
      diagnostic: true,
      what: "Fargate worker SIGKILL, 20 s long polls (death event)",
      signal: "SIGKILL",
      target: { text: "median ≤ 5 s, p95 ≤ 10 s", medianMs: 5_000, p95Ms: 10_000 },
      setup: "as the Fargate SIGKILL run, with the workers long-polling 20 s as in production (FargateWorkerOptions.pollWaitSeconds default) instead of 1 s",
      options: {
        ...BASE,
        workers: 4,
        jobs: 150,
        minutes: 2.25,
        stepMs: 300,
        killEveryMs: 3_000,
        lambdaKillShare: 0,
        sigkillShare: 1,
        pollWaitSeconds: 20,
        mix: { "chaos.long": 1 },
      },
    },
  ];
}

function firstClaimWait(ledger: LedgerEntry[]): RecoveryRow["queueWaitMs"] {
  const created = new Map<string, number>();
  const claimed = new Map<string, number>();
  for (const e of ledger) {
    if (!("job" in e) || !("version" in e)) continue;
    if (e.k === "create") created.set(e.job, e.at);
    if (e.k === "claim" && !claimed.has(e.job)) claimed.set(e.job, e.at);
  }
  const waits = [...claimed].flatMap(([job, at]) => (created.has(job) ? [at - created.get(job)!] : []));
  const d = summary(waits);
  return { median: d.median, p95: d.p95, max: d.max };
}

function judge(t: RecoveryRow["target"], d: { n: number; median: number; p95: number; max: number }): boolean | null {
  if (!d.n || (t.medianMs === undefined && t.p95Ms === undefined && t.maxMs === undefined)) return null;
  return (t.medianMs === undefined || d.median <= t.medianMs) && (t.p95Ms === undefined || d.p95 <= t.p95Ms) && (t.maxMs === undefined || d.max <= t.maxMs);
}

export async function runRecovery(opts: { quick?: boolean; only?: RecoveryKind[]; log?: (l: string) => void } = {}): Promise<RecoveryResult> {
  const log = opts.log ?? ((l: string) => console.log(`  ${l}`));
  const rows: RecoveryRow[] = [];
  const skipped: string[] = [];
  for (const p of plans(!!opts.quick)) {
    if (opts.only ? !opts.only.includes(p.kind) : p.diagnostic) continue;
    if (opts.quick && p.kind === "leases") {
      skipped.push("leases only (death events off): skipped under --quick (each sample takes about a minute)");
      continue;
    }
    const t0 = Date.now();
    log(`${p.kind}: ${p.what}…`);
    const run = await runChaos({ ...p.options, log: () => {} });
    const v = run.verdict;
    const d = v.deathToRunning[p.signal];
    const ledger = readLedger(run.ledgerPath);
    const kills = Object.entries(v.kills)
      .filter(([k]) => k.startsWith(`${p.signal} `) && !k.includes("sweeper"))
      .reduce((a, [, c]) => a + c, 0);
    const row: RecoveryRow = {
      kind: p.kind,
      what: p.what,
      signal: p.signal,
      deathEvents: p.options.deathEvents ?? true,
      kills,
      killsTimed: v.killsTimed[p.signal],
      n: d.n,
      median: d.median,
      p95: d.p95,
      max: d.max,
      min: d.samples[0] ?? NaN,
      samplesMs: d.samples,
      target: p.target,
      met: judge(p.target, d),
      violations: v.violations.length,
      resends: ledger.filter((e) => e.k === "swept" && e.transition === "resend").length,
      queueWaitMs: firstClaimWait(ledger),
      ...(v.rows.find((r) => r.check.startsWith("death events")) ? { deathEventsRow: v.rows.find((r) => r.check.startsWith("death events"))!.value } : {}),
      seconds: (Date.now() - t0) / 1000,
      seed: run.seed,
      logs: dirname(run.ledgerPath),
      setup: p.setup,
    };
    rows.push(row);
    log(`${p.kind}: n=${d.n} median ${s(d.median)} p95 ${s(d.p95)} max ${s(d.max)}; ${kills} kills (${row.killsTimed} interrupted a job); ${row.resends} start-deadline resends; fresh jobs waited median ${s(row.queueWaitMs.median)} p95 ${s(row.queueWaitMs.p95)} for a claim; ${row.violations} violations; ${row.seconds.toFixed(0)} s; logs in ${row.logs}`);
    for (const x of v.violations.slice(0, 5)) log(`  violation: ${x}`);
  }
  return {
    leaseSeconds: LEASE_S,
    sweepSeconds: SWEEP_S,
    anchorMs: BULLMQ_ANCHOR_MS,
    rows,
    skipped,
    notes: [
      `production timings: lease ${LEASE_S} s (heartbeat every ${LEASE_S / 3} s), sweep every ${SWEEP_S} s (core/config.ts TIMINGS); every other chaos fault off; a dead process is started again 0.3 s after it dies (restart: "immediate", not the ECS stand-in's backoff); Fargate workers long-poll with a 1 s wait (WARDEN_POLL_WAIT_SECONDS in the chaos run; 20 s in production and in the fargate-poll20 diagnostic; a long poll returns as soon as a message arrives), the local Lambda event source with 1 s`,
      "a sample is one job the killed or frozen process held, timed from the signal to that job's next claim DynamoDB applied, by any worker; a kill that found its process idle gives none",
      "death event: the parent sees the process exit (as ECS's task-stopped event or a Lambda crash log line would report it) and core/deaths.ts reclaims its jobs (one byWorker Query, a conditional write each, their doorbells rung); each event is delivered again 1–4 s later, which must find nothing to do",
      `resent: doorbells the sweeper sent again at a job's start deadline (WARDEN_START_DEADLINE_SECONDS, the lease, ${LEASE_S} s, in the chaos run; ${TIMINGS.startDeadlineMs / 60_000} min by default). With every message fault off, each is a doorbell some process received and never acted on: the dead process's own long poll, still waiting at the queue (a SIGKILL does not withdraw a ReceiveMessage, and fauxqs hands it the next message, through the wire proxy or not), or a worker killed between its receive and its claim. The message stays hidden for the queue's visibility timeout (300 s on large, 720 s on default) and its job waits for the resend: a sample near ${LEASE_S} s`,
      "Lambda: this machine has one Lambda process, so a crash takes all 8 concurrent invocations and the jobs wait for its restart (on AWS, another execution environment picks them up); and the local event-source stand-in (local/poller.ts) polls inside that process, so its poll dies with it, where AWS's event source mapping polls from outside the function",
      `BullMQ 6.7.0 at its defaults: ${fmt(BULLMQ_ANCHOR_MS / 1000)} s from a killed worker to its job running again (the anchor, from issue 15)`,
      "all on this machine with the emulators: read the shape (seconds vs a lease), not AWS latencies",
    ],
  };
}

export const slow = (x: { samplesMs: number[] }): number => x.samplesMs.filter((v) => v > 30_000).length;
const s = (ms: number) => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(2)} s` : "–");

export function printRecovery(r: RecoveryResult): string {
  const verdict = (x: RecoveryRow) => (x.met === null ? "–" : x.met ? "met" : "MISSED");
  return table(
    `Kill → the job running again, at the default lease (${r.leaseSeconds} s) and sweep interval (${r.sweepSeconds} s)`,
    ["kind", "kills (timed)", "jobs n", "median", "p95", "max", "resent", "BullMQ 6.7.0", "target", "vs target"],
    r.rows.map((x) => [x.what, `${x.kills} (${x.killsTimed})`, x.n, s(x.median), s(x.p95), s(x.max), x.resends, s(r.anchorMs), x.target.text, verdict(x)]),
    [
      ...r.rows.map((x) => `${x.kind}: ${x.setup}; ${slow(x)} of ${x.n} samples over 30 s; fresh jobs waited median ${s(x.queueWaitMs.median)}, p95 ${s(x.queueWaitMs.p95)} for their first claim; seed ${x.seed}; ${x.violations} chaos violations; ${x.seconds.toFixed(0)} s${x.deathEventsRow ? `; death events: ${x.deathEventsRow}` : ""}`),
      ...r.skipped,
      ...r.notes,
    ],
  );
}

// `npx tsx bench/recovery.ts [fargate,lambda,frozen,leases] [--quick]`: one or more runs, printed, not saved.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const only = process.argv.slice(2).find((a) => !a.startsWith("--"))?.split(",") as RecoveryKind[] | undefined;
  runRecovery({ quick: process.argv.includes("--quick"), ...(only ? { only } : {}) }).then(
    (r) => {
      console.log(printRecovery(r));
      process.exit(0);
    },
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
