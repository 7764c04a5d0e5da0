/**
 * `npm run chaos -- --jobs 300 --minutes 3 [--seed N] [--workers 4] [--fault-rate 0.03]`
 *
 * The chaos run: the local system (embedded emulators, Fargate-style worker processes running
 * functions/fargate.ts, a Lambda process running functions/worker.ts behind the local event
 * source, the sweeper in its own process) takes a few hundred jobs of mixed types while the run
 * SIGKILLs and SIGTERMs random workers (restarted as ECS would), kills the Lambda process and the
 * sweeper mid-sweep, sends duplicate and late messages, drops a fraction of enqueues after the
 * job was written, and cancels and retries jobs through the API as callers would.
 *
 * Faults are injected on the wire, below the SDK's retries: every process (the workers, the
 * Lambda process, the sweeper, and this parent's own API clients) reaches dynalite and fauxqs
 * only through one wire-fault proxy each (local/wire-faults.ts), which at `faultRate` per HTTP
 * request loses the reply to a write it forwarded (the store applied it; the SDK resends),
 * hangs the connection (the client's request timeout, WARDEN_AWS_REQUEST_TIMEOUT_MS, ends it),
 * or answers a 5xx or a throttle without forwarding. The DynamoDB proxy's record of every write
 * DynamoDB applied is the ledger's store side (local/chaos-ledger.ts).
 *
 * Flows (`--flows N`, on by default from the command line): N evaluations submitted among the
 * other jobs, modelled on an evaluation job (a set of executions) whose known failures are
 * executions never written, executions stuck running, and all executions done with the job never
 * updated: each a parent (chaos.evaluate) that spawns
 * regions × models × questions executions from its handler (3 × 4 × 5 = 60 by default) and waits
 * for them, under the same kills and wire faults. The first evaluation's writes of some of its
 * executions are refused on the wire on every try (`flowUnwritten`), so the sweeper must write
 * them from the round's spec: the "executions never written" failure.
 *
 * Controls (`--keyed-share`, `--key-limit`, `--schedule-every-ms`, on by default from the command
 * line; docs/jobs.md "Controls"): a concurrency limit is set on one key before the run, and a
 * share of the jobs (of KEYED_TYPES, frozen-worker ones included) is submitted with that key,
 * and a burst of one more long keyed job than the limit as the chaos starts, so some claim is
 * always held: at most the limit of them may run at once across every worker, a held one
 * spending no attempt, and their slots must all be given back after the drain. A fixed-rate schedule (overlap
 * `allow`, catch-up `all`) is made as the chaos starts and paused as it stops: the sweeper,
 * killed mid-sweep like the rest, must have made exactly one job per tick (chaos.tick, its id
 * derived from the tick), each held to the per-job checks like a submitted one.
 *
 * Fenced effects (`--effects N`, on by default from the command line): N chaos.effects jobs, each
 * writing a fenced row per step to a downstream table of the run's own; each first attempt asks
 * to be SIGSTOPped right before its middle step's write and is continued once a later attempt has
 * written that row: every step must have its one row, none with a lower token than a write of it
 * that landed, and the frozen attempts' writes must have been refused (local/chaos-effects.ts).
 *
 * Then every job must be terminal, end as its type says (or cancelled, when a caller asked),
 * carry at most one committed result per run, have started its handler for every attempt it
 * spent, and have redone at most one checkpoint interval of work (see local/chaos-check.ts). It
 * prints a table and the seed, saves bench/results/chaos-latest.json, and exits 1 on any
 * violation.
 *
 * The seed fixes every decision the run makes (job mix, kill targets and moments, callers'
 * picks, fault rolls); process scheduling is not under its control, so a replay repeats the same
 * plan, not the same interleaving.
 */
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, createWriteStream } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { GetCommand, ScanCommand, type DynamoDBDocumentClient, type ScanCommandInput } from "@aws-sdk/lib-dynamodb";
import { FENCE_ATTRIBUTE } from "../core/fence.js";
import { JobsApi } from "../core/api/jobs.js";
import { ConflictError, NotFoundError, errorMessage } from "../core/errors.js";
import { builtinRegistry } from "../core/jobs/index.js";
import { isTerminal, type Job } from "../core/job.js";
import { JobQueue } from "../core/queue.js";
import { loadRuntime } from "../core/runtime.js";
import { buildServices } from "../core/services.js";
import { SCHEDULE_LIMITS } from "../core/schedule.js";
import { idempotentId } from "../core/store.js";
import { laneOf, LIMITS, type Lane, type Priority, type QueueName } from "../core/config.js";
import { lanesByName, ringsOf, type Ring } from "./chaos-priorities.js";
import { parentEnv } from "../functions/parent-watch.js";
import { UNSAFE_RESUME_ENV } from "./chaos-broken.js";
import { checkChaos, EVALUATE_TYPE, FAULT_KINDS, flowChildren, scheduleTicks, type CallerStats, type ChaosVerdict, type FaultCounts, type Kill, type ScheduleFacts, type Submitted } from "./chaos-check.js";
import { seeded } from "./chaos-faults.js";
import { BIG, chaosLambdaWorkerId, chaosTick, EFFECTS_TABLE_ENV, executionsOf, freezeRequest, type FreezeRequest, KEYED_TYPES, registerChaosJobs, type EvaluateInput } from "./chaos-jobs.js";
import { appliedReader, readLedger, record, LEDGER_ENV, UA_APP_IDS } from "./chaos-ledger.js";
import { armPlanned, type LateDelivery, type PlannedFault } from "./chaos-planned.js";
import { ensureAppTable, startEmulators } from "./emulators.js";
import { WorkerFleet } from "./fleet.js";
import { DeathReaper, type WorkerDeath } from "../core/deaths.js";
import { startWireProxy, type AppliedRequest, type WireFaultKind } from "./wire-faults.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
export const CHAOS_RESULTS = join(ROOT, "bench", "results", "chaos-latest.json");

export interface ChaosOptions {
  jobs: number;
  /** How long jobs are submitted and chaos is made; the run then drains. */
  minutes: number;
  seed: number;
  workers: number;
  /** Probability of a wire fault on each HTTP request to DynamoDB or SQS, from any process. */
  faultRate: number;
  /** The wire faults to draw from (all four by default). */
  faultKinds: WireFaultKind[];
  /** How long a hung request is held before the proxy drops its connection. */
  hangMs: number;
  /** Every process's AWS request timeout (WARDEN_AWS_REQUEST_TIMEOUT_MS): what ends a hang for the client. */
  requestTimeoutMs: number;
  /** The full run: a fault kind never injected on a service is a violation (the run did not test it). */
  requireEveryFault: boolean;
  /** One-shot faults on top of the rate (local/chaos-planned.ts): a test's way to lose exactly the reply it means to. */
  planned: PlannedFault[];
  leaseSeconds: number;
  /** How often the sweeper sweeps (WARDEN_SWEEP_INTERVAL_SECONDS); 1 s by default here, 10 s in production. */
  sweepSeconds: number;
  /** The Fargate workers' SQS long-poll wait (WARDEN_POLL_WAIT_SECONDS); 1 s by default here, 20 s in production. */
  pollWaitSeconds: number;
  stepMs: number;
  /** Mean time between process kills; 0 for none. */
  killEveryMs: number;
  /** Mean time between sweeper kills (timed to land mid-sweep); 0 for none. */
  sweeperKillEveryMs: number;
  /** Fraction of submits whose message is dropped after the job was written. */
  dropEnqueueRate: number;
  /** Duplicate messages sent per second (half at once, half 1–5 s late). */
  duplicatesPerSecond: number;
  /** API requests per second from callers: a cancel of a queued or running job, or a retry of a failed or cancelled one. */
  callersPerSecond: number;
  /** Job mix by type (weights). */
  mix: Record<string, number>;
  /** Share of process kills that hit the Lambda process (the rest hit Fargate workers). */
  lambdaKillShare: number;
  /** Share of Fargate kills that are SIGKILL (the rest SIGTERM). */
  sigkillShare: number;
  /**
   * Share of Fargate kills that SIGSTOP the process instead (a frozen worker: no exit, so no death
   * event; only its lease finds it), each continued (SIGCONT) `stopMs` later; taken before the
   * SIGKILL/SIGTERM split. A frozen process is never picked again while it is frozen, and the last
   * worker not frozen is never frozen.
   */
  stopShare: number;
  /** How long a SIGSTOPped worker stays frozen; 0 for twice the lease. */
  stopMs: number;
  /**
   * How a dead Fargate worker comes back: `ecs` through the local ECS stand-in (local/fleet.ts,
   * which backs off when a task keeps dying young), `immediate` 0.3 s later every time (to time
   * the recovery itself, not the restart policy).
   */
  restart: "ecs" | "immediate";
  /**
   * Deliver a death event for every worker process that dies (the local counterpart of ECS's
   * task-stopped event and a Lambda crash's log line, core/deaths.ts), and each again 1-4 s later:
   * a duplicate that arrives after its jobs moved on. Off, only leases find dead workers.
   */
  deathEvents: boolean;
  /** Submit every job at once instead of spreading them over the window (throughput runs). */
  burst: boolean;
  /** The deliberately broken build (test only): workers succeed without the fence. */
  unsafeUnfencedSucceed: boolean;
  /**
   * Flows: evaluations (chaos.evaluate) submitted among the other jobs, spread over the same
   * window; each spawns regions × models × questions executions (`flowShape`) from its handler.
   * Not callers' targets (a cancel or retry of a parent is the API's own test); duplicate
   * messages reach parents and children alike.
   */
  flows: number;
  flowShape: { regions: number; models: number; questions: number };
  /** How many executions of the first evaluation have their create refused on the wire on every try: the sweeper must write them from the spec. */
  flowUnwritten: number;
  /** The deliberately broken fan-in (test only): workers and the sweeper resume a parent without a condition (local/chaos-broken.ts). */
  unsafeUnconditionalResume: boolean;
  /**
   * Share of the submitted jobs of KEYED_TYPES (local/chaos-jobs.ts) that carry the concurrency
   * key CHAOS_KEY, whose limit (`key:chaos-tenant`, `keyLimit` at once) is set before the run; 0
   * for none. Drawn from a generator of its own, so the rest of the plan is the same with or without.
   */
  keyedShare: number;
  keyLimit: number;
  /**
   * A schedule firing a chaos.tick job every this many ms (overlap `allow`, catch-up `all`), made
   * as the chaos starts and paused as it stops; 0 for none. Made through the store, below the
   * API's once-a-minute floor, so a 30 s run sees a dozen ticks: the firing code is the same.
   */
  scheduleEveryMs: number;
  /**
   * Share of the submitted jobs given a priority other than normal (half high, half low), from a
   * generator of its own; 0 for none. Every doorbell SQS accepts is then checked to ring on its
   * job's lane, and every job to keep its priority (section 11).
   */
  priorityShare: number;
  /**
   * How many chaos.effects jobs to submit (section 12): each writes one fenced row per step to a
   * downstream table of the run's own, and its first attempt freezes past its lease before its
   * middle step's write, so the fence must refuse the frozen attempt's write; 0 for none.
   */
  effects: number;
  /** Longest wait for every job to become terminal after the chaos stops. */
  drainMs: number;
  save: boolean;
  log: (line: string) => void;
}

export const DEFAULTS: ChaosOptions = {
  jobs: 300,
  minutes: 3,
  seed: 0,
  workers: 4,
  faultRate: 0.03,
  faultKinds: ["lostReply", "hang", "server", "throttle"],
  hangMs: 3_000,
  requestTimeoutMs: 1_000,
  requireEveryFault: true,
  planned: [],
  leaseSeconds: 3,
  sweepSeconds: 1,
  pollWaitSeconds: 1,
  stepMs: 200,
  killEveryMs: 5_000,
  sweeperKillEveryMs: 20_000,
  dropEnqueueRate: 0.05,
  duplicatesPerSecond: 2,
  callersPerSecond: 0.3,
  mix: { "chaos.steps": 34, "chaos.long": 34, "chaos.flaky": 12, "chaos.doomed": 10, "chaos.stall": 3, "chaos.unstorable": 3, "chaos.oversize": 1, "chaos.nearlimit": 1 },
  lambdaKillShare: 0.2,
  sigkillShare: 0.7,
  stopShare: 0,
  stopMs: 0,
  burst: false,
  restart: "ecs",
  deathEvents: true,
  unsafeUnfencedSucceed: false,
  flows: 0,
  flowShape: { regions: 3, models: 4, questions: 5 },
  flowUnwritten: 0,
  unsafeUnconditionalResume: false,
  keyedShare: 0,
  keyLimit: 2,
  scheduleEveryMs: 0,
  priorityShare: 0,
  effects: 0,
  drainMs: 120_000,
  save: true,
  log: (l) => console.log(l),
};

/** The concurrency key the keyed jobs carry (`keyedShare`); its limit is `key:chaos-tenant`'s. */
export const CHAOS_KEY = "chaos-tenant";

export interface ChaosRun {
  seed: number;
  options: Omit<ChaosOptions, "log" | "planned">;
  /** How many of the planned faults were injected. */
  plannedInjected: number;
  /** The planned late writes, as DynamoDB answered them when they arrived. */
  late: LateDelivery[];
  verdict: ChaosVerdict;
  seconds: number;
  ledgerPath: string;
  drained: boolean;
  /** The jobs as they ended, and when the first was submitted (for throughput figures). */
  jobs: Map<string, Job | undefined>;
  firstSubmitAt: number;
}

export async function runChaos(partial: Partial<ChaosOptions> = {}): Promise<ChaosRun> {
  const o: ChaosOptions = { ...DEFAULTS, ...partial };
  const seed = o.seed || Math.floor(Math.random() * 2 ** 31);
  const rng = seeded(seed);
  const t0 = Date.now();
  const dir = mkdtempSync(join(tmpdir(), "warden-chaos-"));
  const ledgerPath = join(dir, "ledger.jsonl");
  const procLog = createWriteStream(join(dir, "processes.log"));
  const plog = (l: string) => procLog.write(`${new Date().toISOString()} ${l}\n`);
  const shape = o.flowShape;
  const perFlow = shape.regions * shape.models * shape.questions;
  const flowText = o.flows ? ` + ${o.flows} evaluations of ${shape.regions} × ${shape.models} × ${shape.questions} = ${o.flows * perFlow} executions` : "";
  o.log(`chaos: seed ${seed}; ${o.jobs} jobs${flowText} over ${o.minutes} min; ${o.workers} Fargate workers + 1 Lambda process + sweeper; wire fault rate ${o.faultRate} (${o.faultKinds.join(", ")}); logs in ${dir}`);

  const emu = await startEmulators({ stage: "chaos" });
  // The wire: every process reaches DynamoDB and SQS through these, so every fault lands below the
  // SDK's retries, and every write DynamoDB applied reaches the ledger from here.
  const wireLog = (service: string) => (kind: WireFaultKind, target: string) => plog(`wire fault ${service} ${kind} ${target}`);
  const ledgerOf = appliedReader();
  const dynamoProxy = await startWireProxy(emu.dynamoEndpoint, {
    service: "dynamodb",
    rate: o.faultRate,
    seed,
    kinds: o.faultKinds,
    hangMs: o.hangMs,
    onFault: wireLog("dynamodb"),
    onApplied: (e) => {
      try {
        for (const entry of ledgerOf(e)) record(entry, ledgerPath);
      } catch (err) {
        plog(`ledger: could not record ${e.target}: ${errorMessage(err)}`);
      }
    },
  });
  // Every doorbell SQS accepted, with the lane its URL and its body name (section 11).
  const rings: Ring[] = [];
  const lanes = lanesByName(loadRuntime(emu.env).queues);
  const sqsProxy = await startWireProxy(emu.sqsEndpoint, {
    service: "sqs",
    rate: o.faultRate,
    seed: (seed ^ 0x5bd1e995) >>> 0,
    kinds: o.faultKinds,
    hangMs: o.hangMs,
    onFault: wireLog("sqs"),
    ...(o.priorityShare > 0 ? { onApplied: (e: AppliedRequest) => void rings.push(...ringsOf(e, lanes)) } : {}),
  });
  const wire = {
    WARDEN_DYNAMODB_ENDPOINT: dynamoProxy.endpoint,
    WARDEN_SQS_ENDPOINT: sqsProxy.endpoint,
    WARDEN_AWS_REQUEST_TIMEOUT_MS: String(o.requestTimeoutMs),
  };
  const heartbeatMs = Math.max(50, Math.floor((o.leaseSeconds * 1000) / 3));
  const env: Record<string, string> = {
    ...emu.env,
    ...wire,
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
    WARDEN_LEASE_SECONDS: String(o.leaseSeconds),
    WARDEN_SWEEP_INTERVAL_SECONDS: String(o.sweepSeconds),
    WARDEN_START_DEADLINE_SECONDS: String(Math.max(2, o.leaseSeconds)),
    WARDEN_CANCEL_GRACE_SECONDS: "2",
    WARDEN_WORKER_QUEUE: "large",
    WARDEN_SHUTDOWN_GRACE_MS: "3000",
    WARDEN_ABORT_GRACE_MS: "2000",
    WARDEN_POLL_WAIT_SECONDS: String(o.pollWaitSeconds),
    WARDEN_EXTRA_JOBS: join(ROOT, "local", "chaos-jobs.ts"),
    [LEDGER_ENV]: ledgerPath,
    [EFFECTS_TABLE_ENV]: EFFECTS_TABLE,
  };
  // The broken fan-in goes to every process that may resume a parent: the workers (a parent's last child) and the sweeper (its recount).
  const brokenFanIn: Record<string, string> = o.unsafeUnconditionalResume ? { [UNSAFE_RESUME_ENV]: "1" } : {};
  const workerEnv = { ...env, ...brokenFanIn, ...(o.unsafeUnfencedSucceed ? { WARDEN_UNSAFE_UNFENCED_SUCCEED: "1" } : {}) };

  const registry = registerChaosJobs(builtinRegistry());
  // The parent's own clients: the API's (submits, cancels, retries, duplicate messages) go over
  // the wire like everyone's; the checks' reads go straight to the emulators, so they see the truth.
  // Both with the run's timings (start deadline, lease, cancel grace), as the jobs they write must have.
  const wired = buildServices(loadRuntime(env), { registry });
  const directEnv: Record<string, string> = { ...env, WARDEN_DYNAMODB_ENDPOINT: emu.dynamoEndpoint, WARDEN_SQS_ENDPOINT: emu.sqsEndpoint };
  delete directEnv.WARDEN_AWS_REQUEST_TIMEOUT_MS; // the checks' reads keep the normal bound
  const direct = buildServices(loadRuntime(directEnv), { registry });
  if (o.effects > 0) await ensureAppTable(emu.dynamoEndpoint, EFFECTS_TABLE);
  // The limit exists before any process starts, so no claim of a keyed job reads settings without it.
  if (o.keyedShare > 0) await direct.store.controls.setLimit(`key:${CHAOS_KEY}`, { concurrency: o.keyLimit }, "chaos", Date.now());
  const planned = armPlanned(o.planned, { dynamodb: dynamoProxy, sqs: sqsProxy }, async (id) => isTerminal((await direct.store.get(id))?.status ?? "queued"), plog);
  // Jobs whose submit loses its doorbell after the job was written; known before the submit,
  // since an idempotency key fixes the id.
  const toDrop = new Set<string>();
  const dropped = new Set<string>();
  // The API's own submit path, with a doorbell that fails after the job was written.
  class FlakyQueue extends JobQueue {
    override async send(lane: Lane, ids: string[], delayMs?: number): Promise<void> {
      if (ids.some((id) => toDrop.has(id))) {
        for (const id of ids) dropped.add(id);
        throw new Error("chaos: SQS send failed after the job was written");
      }
      return super.send(lane, ids, delayMs);
    }
  }
  const api = new JobsApi({ ...wired, queue: new FlakyQueue(wired.sqs, wired.cfg.queues) });
  // Through the wire proxies like every other writer, so the ledger sees the reaper's writes too.
  const reaper = new DeathReaper(wired);
  const deaths = { delivered: 0, requeued: 0, ended: 0, untouched: 0 };
  const onDeath = (death: WorkerDeath): void => {
    if (!o.deathEvents) return;
    const deliver = () =>
      reaper
        .onDeath(death)
        .then((r) => {
          deaths.delivered++;
          deaths.requeued += r.requeued.length;
          deaths.ended += r.ended.length;
          deaths.untouched += r.untouched.length;
          plog(`death ${death.workerId}: ${r.requeued.length} requeued, ${r.ended.length} ended, ${r.untouched.length} untouched, ${r.errors.length} errors`);
        })
        .catch((e: unknown) => plog(`death ${death.workerId}: ${errorMessage(e)}`));
    void deliver();
    timers.push(setTimeout(() => void deliver(), 1_000 + rng() * 3_000));
  };
  const callerApi = new JobsApi(wired);
  const caller = { id: "chaos", admin: false };

  // Each kind of process names itself in its SDK user agent (AWS_SDK_UA_APP_ID): the ledger tells who sent a flow's writes.
  const fargateEnv = { ...workerEnv, WARDEN_CHAOS_ROLE: "fargate", AWS_SDK_UA_APP_ID: UA_APP_IDS.fargate };
  const fleet: Pool =
    o.restart === "ecs"
      ? new WorkerFleet({ count: o.workers, env: fargateEnv, stopGraceMs: 5_000, onLine: () => true, onDeath, log: plog })
      : new RespawnPool(o.workers, fargateEnv, plog, onDeath);
  const lambda = new Respawner("lambda", join(ROOT, "local", "chaos-lambda.ts"), { ...workerEnv, WARDEN_CHAOS_ROLE: "lambda", WARDEN_LAMBDA_CONCURRENCY: "8", AWS_SDK_UA_APP_ID: UA_APP_IDS.lambda }, plog, () => ({}), {
    onDeath,
    workerId: (_n, pid) => chaosLambdaWorkerId(pid),
  });
  const sweeper = new Respawner("sweeper", join(ROOT, "local", "chaos-sweeper.ts"), { ...env, ...brokenFanIn, WARDEN_CHAOS_ROLE: "sweeper", AWS_SDK_UA_APP_ID: UA_APP_IDS.sweeper }, plog);
  fleet.start();
  lambda.start();
  sweeper.start();
  await fleet.ready(90_000);
  await lambda.ready(90_000);
  await sweeper.ready(90_000);
  o.log(`chaos: processes ready after ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  const submitted: Submitted[] = [];
  const kills: Kill[] = [];
  const duplicates = { immediate: 0, delayed: 0 };
  const callers: CallerStats = { cancel: { sent: 0, answered: 0, refused: 0, failed: 0 }, retry: { sent: 0, answered: 0, refused: 0, failed: 0 } };
  const windowMs = o.minutes * 60_000;
  const chaosStart = Date.now();
  const chaosEnd = chaosStart + windowMs;
  const submitEnd = chaosStart + windowMs * 0.7;
  const timers: NodeJS.Timeout[] = [];
  const every = (meanMs: number, fn: () => void | Promise<void>) => {
    const tick = () => {
      if (Date.now() >= chaosEnd) return;
      void Promise.resolve()
        .then(fn)
        .catch((e) => plog(`chaos action failed: ${String(e)}`));
      timers.push(setTimeout(tick, meanMs * (0.5 + rng())));
    };
    timers.push(setTimeout(tick, meanMs * (0.5 + rng())));
  };

  // Over the wire, as a caller's requests are; retried as a caller would (a lost reply's resend finds its own write).
  const retried = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (e) {
        if (attempt >= 30) throw new Error(`chaos: ${what} failed ${attempt} times over the wire: ${errorMessage(e)}`);
        plog(`${what} failed (try ${attempt}): ${errorMessage(e)}`);
        await new Promise((r) => setTimeout(r, 100 * attempt));
      }
    }
  };

  // The schedule, made as the chaos starts: its first tick one interval later, as the API makes one.
  const scheduleId = `chaos-${seed}`;
  let scheduleMade: { firstTick: number } | undefined;
  if (o.scheduleEveryMs > 0) {
    const { type, input } = registry.parseInput(chaosTick.name, { steps: 2, stepMs: o.stepMs });
    const now = Date.now();
    const made = {
      id: scheduleId,
      owner: caller.id,
      cadence: { everyMs: o.scheduleEveryMs },
      overlap: "allow" as const,
      catchUp: "all" as const,
      catchUpMax: SCHEDULE_LIMITS.defaultCatchUpMax,
      job: { type: type.name, queue: registry.queueFor(type, input), input, maxAttempts: Math.min(type.limits.maxAttempts, LIMITS.maxAttempts), timeoutMs: type.limits.timeoutMs },
      paused: false,
      nextAt: now + o.scheduleEveryMs,
      anchor: now,
      runs: [],
      counts: { fired: 0, skipped: 0, missed: 0 },
      createdAt: now,
      updatedAt: now,
    };
    // A try whose write landed though its answer was lost finds the schedule made (its id is this run's).
    await retried("create the schedule", async () => (await wired.store.schedules.get(scheduleId)) ?? (await wired.store.schedules.create(made)));
    scheduleMade = { firstTick: made.nextAt };
  }

  // Submissions, spread over the first 70 % of the window, each at its time whatever the ones
  // before are doing (a submit of a large job can take a while). Over the wire a submit can fail
  // after the job was written; its idempotency key makes the next try find that job, not a twin.
  const submitOne = async (i: number | string, type: string, input: Record<string, unknown>, idempotencyKey: string, into: Submitted[] = submitted, concurrencyKey?: string, priority?: Priority): Promise<void> => {
    const req = { type, input, idempotencyKey, ...(concurrencyKey ? { concurrencyKey } : {}), ...(priority ? { priority } : {}) } as Parameters<JobsApi["submit"]>[1];
    for (let attempt = 1; ; attempt++) {
      try {
        const { job } = await api.submit(caller, req);
        into.push({ id: job.id, type, input, enqueueDropped: dropped.has(job.id), at: Date.parse(String(job.createdAt)) || Date.now(), ...(concurrencyKey ? { concurrencyKey } : {}), ...(priority ? { priority } : {}) });
        return;
      } catch (e) {
        if (attempt >= 30) throw new Error(`chaos: submit ${i} failed ${attempt} times over the wire: ${errorMessage(e)}`);
        plog(`submit ${i} failed (try ${attempt}): ${errorMessage(e)}`);
        await new Promise((r) => setTimeout(r, 100 * attempt));
      }
    }
  };
  // Every type of the mix at least once, at seeded places spread over the run; the rest by weight.
  const types = Object.keys(o.mix).filter((t) => (o.mix[t] ?? 0) > 0);
  for (let i = types.length - 1; i > 0; i--) {
    const k = Math.floor(rng() * (i + 1));
    [types[i], types[k]] = [types[k]!, types[i]!];
  }
  const forced = new Map(o.jobs >= types.length ? types.map((t, n) => [Math.floor(((n + rng()) * o.jobs) / types.length), t] as const) : []);
  // Which jobs carry the concurrency key: a generator of its own, so the plan above is the same without keys.
  const keyRng = seeded((seed ^ 0x7f4a7c15) >>> 0);
  // Which jobs are high or low: a generator of its own too.
  const priorityRng = seeded((seed ^ 0x1b873593) >>> 0);
  const priorityOf = (): Priority | undefined => {
    const r = priorityRng();
    return r < o.priorityShare / 2 ? "high" : r < o.priorityShare ? "low" : undefined;
  };
  const submitAll = (async () => {
    const pending: Promise<void>[] = [];
    for (let i = 0; i < o.jobs; i++) {
      const due = o.burst ? 0 : chaosStart + ((submitEnd - chaosStart) * i) / o.jobs;
      if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
      const { type, input } = pickJob(rng, o, forced.get(i));
      const idempotencyKey = `chaos-${seed}-${i}`;
      if (rng() < o.dropEnqueueRate) toDrop.add(idempotentId(caller.id, idempotencyKey));
      const keyed = keyRng() < o.keyedShare && KEYED_TYPES.has(type);
      pending.push(submitOne(i, type, input, idempotencyKey, submitted, keyed ? CHAOS_KEY : undefined, priorityOf()));
    }
    await Promise.all(pending);
  })();

  // A burst of keyed jobs as the chaos starts, one more than the limit and each longer than a
  // claim takes, so at least one claim finds the key full and is held however the seeded plan
  // spreads the other keyed jobs (a 40-job run may otherwise never overlap three of them).
  const submitKeyedBurst = (async () => {
    if (o.keyedShare <= 0) return;
    const burst = Array.from({ length: o.keyLimit + 1 }, (_, i) =>
      submitOne(`keyed-${i}`, "chaos.long", { steps: 15, stepMs: o.stepMs }, `chaos-${seed}-keyed-${i}`, submitted, CHAOS_KEY),
    );
    await Promise.all(burst);
  })();

  // The fenced-effects jobs: spread over the first half of the window (so each first attempt's
  // freeze and its takeover happen under the chaos), submitted like any other job, and held to
  // the per-job checks too.
  const effectJobs: Submitted[] = [];
  const submitEffects = (async () => {
    const pending: Promise<void>[] = [];
    for (let i = 0; i < o.effects; i++) {
      const due = chaosStart + ((submitEnd - chaosStart) * i) / (2 * o.effects);
      if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
      pending.push(submitOne(`effects-${i}`, "chaos.effects", EFFECTS_INPUT, `chaos-${seed}-effects-${i}`, effectJobs));
    }
    await Promise.all(pending);
  })();

  // The flows: evaluations spread over the same window, each decided by a generator of its own,
  // so a run without flows replays the same plan as before they existed.
  const evaluations: Submitted[] = [];
  const flowRng = seeded((seed ^ 0x2c1b3c6d) >>> 0);
  const flowKey = (i: number) => `chaos-${seed}-flow-${i}`;
  const flowInputs = Array.from({ length: o.flows }, (_, i) => evaluationInput(flowRng, o, i));
  const refusedWrites = { executions: 0, tries: 0 };
  if (o.flows > 0 && o.flowUnwritten > 0) {
    // "Executions never written": the first evaluation's worker writes its wait, then
    // some of its children's creates are refused on every try (a 5xx answered by the wire, each of
    // the SDK's tries), so the round is left short until the sweeper writes them from the spec.
    const first = idempotentId(caller.id, flowKey(0));
    const kids = flowChildren([{ id: first, type: EVALUATE_TYPE, input: flowInputs[0]!, enqueueDropped: false, at: 0 }]);
    const refused = new Set(kids.filter((_, n) => n % Math.max(1, Math.floor(kids.length / o.flowUnwritten)) === 0).slice(0, o.flowUnwritten).map((k) => k.id));
    refusedWrites.executions = refused.size;
    const isCreate = (t: string, body: unknown) => t.endsWith(".PutItem") && refused.has(String((body as { Item?: { id?: { S?: string } } })?.Item?.id?.S));
    // As many as the SDK's tries of each (maxAttempts 3, core/aws.ts): one the sweeper's first try meets, it retries.
    for (let n = 0; n < refused.size * 3; n++) void dynamoProxy.injectNext("server", isCreate).then(() => refusedWrites.tries++);
  }
  const submitFlows = (async () => {
    const pending: Promise<void>[] = [];
    for (let i = 0; i < o.flows; i++) {
      const due = o.burst ? 0 : chaosStart + ((submitEnd - chaosStart) * (i + 0.5)) / o.flows;
      if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
      const input = flowInputs[i]!;
      if (flowRng() < o.dropEnqueueRate) toDrop.add(idempotentId(caller.id, flowKey(i)));
      pending.push(submitOne(`flow ${i}`, EVALUATE_TYPE, input as unknown as Record<string, unknown>, flowKey(i), evaluations));
    }
    await Promise.all(pending);
  })();
  /** The evaluations submitted so far and every child they spawn (derived: a child not written yet is skipped where it is read). */
  const flowJobs = (): Submitted[] => (evaluations.length ? [...evaluations, ...flowChildren(evaluations)] : []);

  // Frozen (SIGSTOPped) Fargate processes and the timers that continue them: not cleared when
  // the chaos stops, so a freeze near the end still outlasts its lease; all continued before the stop.
  const frozen = new Map<number, NodeJS.Timeout>();
  const thaw = (pid: number) => {
    clearTimeout(frozen.get(pid));
    frozen.delete(pid);
    try {
      process.kill(pid, "SIGCONT");
      plog(`SIGCONT fargate pid ${pid}`);
    } catch {
      /* already gone */
    }
  };
  // A chaos.effects attempt asks to be frozen right before a write (chaos-jobs.ts awaitFreeze):
  // SIGSTOPped while another worker is not frozen, continued once a later attempt has written
  // that row (or after FREEZE_MAX_MS), so its own write comes last and the fence must refuse it.
  const freezing = new Map<number, { req: FreezeRequest; file: string }>();
  const serveFreezes = async () => {
    for (const w of fleet.list()) {
      const file = w.pid ? freezeRequest(w.pid, ledgerPath) : undefined;
      // One the kill loop froze is served once it is continued.
      if (!w.pid || !file || freezing.has(w.pid) || frozen.has(w.pid) || !existsSync(file)) continue;
      const pid = w.pid;
      const others = fleet.list().filter((x) => x.ready && x.pid && x.pid !== pid && !frozen.has(x.pid));
      if (!others.length) {
        rmSync(file, { force: true }); // no one to take the job over: it goes on unfrozen
        continue;
      }
      freezing.set(pid, { req: JSON.parse(readFileSync(file, "utf8")) as FreezeRequest, file });
      kills.push({ pid, signal: "SIGSTOP", target: "fargate", at: Date.now() });
      plog(`kill SIGSTOP fargate pid ${pid} (a chaos.effects attempt, before its write)`);
      process.kill(pid, "SIGSTOP");
      frozen.set(pid, setTimeout(() => continueFrozen(pid), FREEZE_MAX_MS));
    }
    for (const [pid, { req }] of freezing) {
      const row = (await direct.doc.send(new GetCommand({ TableName: EFFECTS_TABLE, Key: { id: req.id }, ConsistentRead: true }))).Item;
      if (Number(row?.[FENCE_ATTRIBUTE] ?? -1) > req.token) continueFrozen(pid);
    }
  };
  // Served through the drain too (a first attempt may come late), not drawn from the run's generator.
  let serving = false;
  const freezeTimer =
    o.effects > 0
      ? setInterval(() => {
          if (serving) return;
          serving = true;
          serveFreezes()
            .catch((e) => plog(`freeze service failed: ${String(e)}`))
            .finally(() => (serving = false));
        }, 100)
      : undefined;
  const continueFrozen = (pid: number) => {
    const f = freezing.get(pid);
    freezing.delete(pid);
    if (f) rmSync(f.file, { force: true }); // taken away first, so it writes as soon as it runs
    thaw(pid);
  };
  if (o.killEveryMs > 0) {
    every(o.killEveryMs, () => {
      const workers = fleet.list().filter((w) => w.ready && w.pid && !frozen.has(w.pid));
      const hitLambda = rng() < o.lambdaKillShare && lambda.pid !== undefined;
      // Drawn only when stops are asked for, so a seed without them replays the same plan as before.
      const stop = !hitLambda && o.stopShare > 0 && rng() < o.stopShare;
      const signal = hitLambda ? "SIGKILL" : stop ? "SIGSTOP" : rng() < o.sigkillShare ? "SIGKILL" : "SIGTERM";
      const pid = hitLambda ? lambda.pid : workers[Math.floor(rng() * workers.length)]?.pid;
      // A freeze always leaves a worker that is not frozen, to take over what the frozen one held.
      if (!pid || (stop && workers.length < 2)) return;
      kills.push({ pid, signal, target: hitLambda ? "lambda" : "fargate", at: Date.now() });
      plog(`kill ${signal} ${hitLambda ? "lambda" : "fargate"} pid ${pid}`);
      process.kill(pid, signal);
      if (stop) frozen.set(pid, setTimeout(() => thaw(pid), o.stopMs || o.leaseSeconds * 2_000));
    });
  }
  if (o.sweeperKillEveryMs > 0) {
    every(o.sweeperKillEveryMs, async () => {
      // Wait for the next sweep to begin, then kill it a few milliseconds in.
      const begun = await sweeper.nextLine("sweep begin", 5_000);
      if (!begun || sweeper.pid === undefined) return;
      await new Promise((r) => setTimeout(r, rng() * 15));
      const pid = sweeper.pid;
      const midSweep = !sweeper.sawSince("sweep end", begun);
      kills.push({ pid, signal: "SIGKILL", target: "sweeper", at: Date.now(), midSweep });
      plog(`kill SIGKILL sweeper pid ${pid}${midSweep ? " mid-sweep" : ""}`);
      process.kill(pid, "SIGKILL");
    });
  }
  if (o.duplicatesPerSecond > 0) {
    every(1000 / o.duplicatesPerSecond, async () => {
      const pool = o.flows > 0 ? [...submitted, ...flowJobs()] : submitted;
      const s = pool[Math.floor(rng() * pool.length)];
      if (!s) return;
      const late = rng() < 0.5;
      const job = await direct.store.get(s.id);
      if (!job) return;
      await wired.queue.send(laneOf(job), [s.id], late ? 1000 + rng() * 4000 : 0);
      if (late) duplicates.delayed++;
      else duplicates.immediate++;
    });
  }
  if (o.callersPerSecond > 0) {
    // A caller cancels a job still queued or running, or retries one that failed or was
    // cancelled, racing the workers' claims and the sweeper's repairs. Whatever the API answers,
    // the ledger has what DynamoDB applied.
    every(1000 / o.callersPerSecond, async () => {
      const wantRetry = rng() < 0.5;
      for (let tries = 0; tries < 8; tries++) {
        const s = submitted[Math.floor(rng() * submitted.length)];
        if (!s) return;
        const job = await direct.store.get(s.id);
        const live = job?.status === "queued" || job?.status === "running";
        const ended = job?.status === "failed" || job?.status === "cancelled";
        if (wantRetry ? !ended : !live) continue;
        const what = wantRetry ? "retry" : "cancel";
        const stats = callers[what];
        stats.sent++;
        try {
          await (wantRetry ? callerApi.retry(caller, s.id) : callerApi.cancel(caller, s.id));
          stats.answered++;
        } catch (e) {
          if (e instanceof ConflictError || e instanceof NotFoundError) stats.refused++;
          else stats.failed++;
          plog(`caller ${what} ${s.id}: ${errorMessage(e)}`);
        }
        return;
      }
    });
  }

  await submitAll;
  await submitFlows;
  await submitEffects;
  await submitKeyedBurst;
  // Keep the chaos going to the end of the window, then let the system drain.
  while (Date.now() < chaosEnd) await new Promise((r) => setTimeout(r, 500));
  for (const t of timers) clearTimeout(t);
  // The schedule paused as the chaos stops; its ticks' jobs, derived from what it handled (its
  // nextAt moves no more once paused), drain with the rest. It is read again after the drain for
  // its counts: a look may have decided ticks before the pause and record them after it.
  let scheduleFacts: Omit<ScheduleFacts, "ofType"> | undefined;
  const ticks = { must: [] as string[], may: new Set<string>() };
  if (scheduleMade) {
    await retried("pause the schedule", async () => {
      const s = await wired.store.schedules.mustGet(scheduleId);
      if (!s.paused) await wired.store.schedules.setPaused(s, true);
    });
    const pausedBy = Date.now();
    scheduleFacts = { schedule: await direct.store.schedules.mustGet(scheduleId), firstTick: scheduleMade.firstTick, pausedBy };
    for (const t of scheduleTicks({ ...scheduleFacts, ofType: [] })) {
      if (t.recorded) ticks.must.push(t.id);
      else ticks.may.add(t.id); // fired only by a sweep the pause overtook, if at all
    }
  }
  const ids = () => [...[...submitted, ...flowJobs(), ...effectJobs].map((s) => s.id), ...ticks.must, ...ticks.may];
  const chaosStoppedAt = Date.now();
  let drained = false;
  let last = "";
  // A flow's child that ended stays ended (no caller retries it): read again only those that have not.
  const childEnded = new Set<string>();
  const isChild = new Set(flowJobs().filter((s) => s.parent).map((s) => s.id));
  while (Date.now() - chaosStoppedAt < o.drainMs) {
    const all = ids();
    const jobs = await readJobs(direct.store, all.filter((id) => !childEnded.has(id)));
    for (const [id, j] of jobs) if (j && isTerminal(j.status) && isChild.has(id)) childEnded.add(id);
    const open = [...jobs].filter(([id, j]) => (!j && !ticks.may.has(id)) || (j && j.status !== "succeeded" && j.status !== "failed" && j.status !== "cancelled")).length;
    // Ticks the schedule decided but has not recorded yet (core/schedules.ts `pending`, where the store keeps them) are not drained either.
    const unrecorded = scheduleFacts ? ((await direct.store.schedules.get(scheduleId)) as { pending?: unknown[] } | undefined)?.pending?.length ?? 0 : 0;
    const line = `chaos: ${open} of ${all.length} jobs not terminal yet${unrecorded ? `; ${unrecorded} of the schedule's ticks not recorded yet` : ""}`;
    if (line !== last) plog(line);
    last = line;
    if (open === 0 && unrecorded === 0) {
      drained = true;
      break;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  o.log(`chaos: ${drained ? "drained" : "drain timed out"} ${((Date.now() - chaosStoppedAt) / 1000).toFixed(1)} s after the chaos stopped`);
  const late = await planned.finish();
  for (const d of late) plog(`late delivery of ${d.target} for ${d.job}: ${d.applied ? "applied" : `refused (${d.answer})`}`);
  clearInterval(freezeTimer);
  for (const pid of [...frozen.keys()]) continueFrozen(pid);
  await Promise.all([fleet.stop(), lambda.stop(), sweeper.stop()]);
  const faults: Record<"dynamodb" | "sqs", FaultCounts> = { dynamodb: { ...dynamoProxy.counts }, sqs: { ...sqsProxy.counts } };
  wired.doc.destroy();
  wired.sqs.destroy();
  await Promise.all([dynamoProxy.close(), sqsProxy.close()]);
  const jobs = await readJobs(direct.store, ids());
  const holders = o.keyedShare > 0 ? await direct.store.controls.holders(`key:${CHAOS_KEY}`) : {};
  if (scheduleFacts) scheduleFacts.schedule = await direct.store.schedules.mustGet(scheduleId);
  const ofType = scheduleFacts ? await jobsOfType(direct.doc, direct.store.table, scheduleFacts.schedule.job.type) : [];
  const verdict = checkChaos({
    submitted: [...submitted, ...evaluations, ...effectJobs],
    jobs,
    ledger: readLedger(ledgerPath),
    kills,
    heartbeatMs,
    leaseMs: o.leaseSeconds * 1000,
    stepMs: o.stepMs,
    duplicates,
    faults,
    requireEveryFault: o.requireEveryFault && o.faultRate > 0,
    callers,
    ...(o.deathEvents ? { deaths } : {}),
    ...(o.flows > 0 ? { refusedChildWrites: { ...refusedWrites } } : {}),
    ...(o.keyedShare > 0 ? { limits: { key: CHAOS_KEY, limit: o.keyLimit, holders } } : {}),
    ...(scheduleFacts ? { schedule: { ...scheduleFacts, ofType } } : {}),
    ...(o.priorityShare > 0 ? { priorities: { rings } } : {}),
    ...(o.effects > 0 ? { effects: { jobs: effectJobs.map((s) => ({ id: s.id, steps: EFFECTS_INPUT.steps })), rows: await scanAll(direct.doc, EFFECTS_TABLE) } } : {}),
  });
  direct.doc.destroy();
  direct.sqs.destroy();
  await emu.stop();
  procLog.end();
  const { log: _log, ...options } = o;
  const { planned: _planned, ...plain } = options;
  const run: ChaosRun = { seed, options: { ...plain, seed }, verdict, seconds: (Date.now() - t0) / 1000, ledgerPath, drained, jobs, firstSubmitAt: submitted.length + evaluations.length ? Math.min(...[...submitted, ...evaluations].map((x) => x.at)) : chaosStart, plannedInjected: planned.injected(), late };
  if (o.save) {
    mkdirSync(dirname(CHAOS_RESULTS), { recursive: true });
    const { runMeta } = await import("../bench/lib/meta.js");
    const { samples: _k, ...kill } = verdict.deathToRunning.SIGKILL;
    const { samples: _t, ...term } = verdict.deathToRunning.SIGTERM;
    writeFileSync(
      CHAOS_RESULTS,
      JSON.stringify({ meta: runMeta(), ...run, jobs: undefined, verdict: { ...verdict, violations: verdict.violations.slice(0, 50), deathToRunning: { SIGKILL: kill, SIGTERM: term }, killSamplesMs: verdict.deathToRunning.SIGKILL.samples } }, null, 1) + "\n",
    );
  }
  return run;
}

function pickJob(rng: () => number, o: ChaosOptions, forced?: string): { type: string; input: Record<string, unknown> } {
  const entries = Object.entries(o.mix).filter(([, w]) => w > 0);
  const total = entries.reduce((n, [, w]) => n + w, 0);
  let roll = rng() * total;
  const type = forced ?? (entries.find(([, w]) => (roll -= w) < 0) ?? entries[entries.length - 1]!)[0];
  const between = (a: number, b: number) => a + Math.floor(rng() * (b - a + 1));
  switch (type) {
    // Half the steps jobs checkpoint more than the record holds (core/values.ts INLINE_VALUE_BYTES).
    case "chaos.steps":
      return { type, input: { steps: between(3, 10), stepMs: o.stepMs, ...(rng() < 0.5 ? { checkpointPad: 2_048 } : {}) } };
    case "chaos.long":
      return { type, input: { steps: between(8, 25), stepMs: o.stepMs, ...(rng() < 0.5 ? { checkpointPad: 4_096 } : {}) } };
    case "chaos.stall":
      // Frozen for longer than a lease, a sweep, a reclaim and the rest of the job on another worker.
      return { type, input: { steps: between(2, 4), stepMs: o.stepMs, stallMs: Math.round(o.leaseSeconds * 1000 * 2 + 3_000 + 4 * o.stepMs) } };
    case "chaos.flaky":
      return { type, input: { failTimes: between(1, 2) } };
    case "chaos.unstorable":
      return { type, input: { kind: rng() < 0.5 ? "date" : "nan" } };
    case "chaos.oversize":
      return { type, input: { text: "x".repeat(BIG.input), checkpointText: BIG.checkpoint, resultText: BIG.result } };
    case "chaos.nearlimit":
      // Held past a heartbeat, so a heartbeat writes the checkpoint at the limit as well as the final write.
      return { type, input: { text: "x".repeat(BIG.input), keep: BIG.checkpoint, over: BIG.checkpoint + 64, holdMs: Math.round(o.leaseSeconds * 500) } };
    default:
      return { type, input: {} };
  }
}

/** An evaluation's input: the run's shape of regions × models × questions, some executions doomed (5 %) and some failing once (10 %). */
function evaluationInput(rng: () => number, o: ChaosOptions, i: number): EvaluateInput {
  const names = (prefix: string, n: number) => Array.from({ length: n }, (_, k) => `${prefix}${k + 1}`);
  const base: EvaluateInput = {
    regions: names("region-", o.flowShape.regions),
    models: names(`model-${i}-`, o.flowShape.models),
    questions: names("q", o.flowShape.questions),
    stepMs: o.stepMs,
    doomed: [],
    flaky: [],
  };
  for (const e of executionsOf(base)) {
    const roll = rng();
    if (roll < 0.05) base.doomed.push(e.key);
    else if (roll < 0.15) base.flaky.push(e.key);
  }
  return base;
}

/** The downstream table chaos.effects writes its rows to: a table of the run's own, beside the jobs table. */
const EFFECTS_TABLE = "chaos-effects";
/** Each chaos.effects job's steps (its first attempt is frozen before the middle one's write). */
const EFFECTS_INPUT = { steps: 6, stepMs: 150 };
/** The longest a chaos.effects attempt stays SIGSTOPped waiting for its job to move on. */
const FREEZE_MAX_MS = 60_000;

/** Every item of `table` (those `filter` keeps), through every page: a consistent scan, for the checks. */
async function scanAll(doc: DynamoDBDocumentClient, table: string, filter: Omit<ScanCommandInput, "TableName" | "ConsistentRead" | "ExclusiveStartKey"> = {}): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const page = await doc.send(new ScanCommand({ TableName: table, ConsistentRead: true, ...filter, ...(start ? { ExclusiveStartKey: start } : {}) }));
    out.push(...(page.Items ?? []));
    start = page.LastEvaluatedKey;
  } while (start);
  return out;
}

/** Every job of `type` in the table, by id: a consistent scan, for the check that a schedule made no job beyond its ticks'. */
async function jobsOfType(doc: DynamoDBDocumentClient, table: string, type: string): Promise<string[]> {
  const items = await scanAll(doc, table, { FilterExpression: "#t = :t", ProjectionExpression: "#i", ExpressionAttributeNames: { "#t": "type", "#i": "id" }, ExpressionAttributeValues: { ":t": type } });
  return items.map((i) => String(i.id));
}

async function readJobs(store: { get(id: string): Promise<Job | undefined> }, ids: string[]): Promise<Map<string, Job | undefined>> {
  const out = new Map<string, Job | undefined>();
  for (let i = 0; i < ids.length; i += 25) {
    const chunk = ids.slice(i, i + 25);
    const jobs = await Promise.all(chunk.map((id) => store.get(id)));
    chunk.forEach((id, n) => out.set(id, jobs[n]));
  }
  return out;
}

interface Pool {
  start(): void;
  ready(timeoutMs: number): Promise<void>;
  list(): { pid: number | undefined; ready: boolean }[];
  stop(): Promise<void>;
}

/** Fargate workers (functions/fargate.ts) each restarted 0.3 s after it dies, whatever its age. */
class RespawnPool implements Pool {
  private readonly procs: Respawner[];
  constructor(count: number, env: Record<string, string>, log: (l: string) => void, onDeath?: (d: WorkerDeath) => void) {
    // A new worker id for every process, as the ECS stand-in gives: the ledger maps each id to one pid.
    const idOf = (i: number, n: number) => `fargate-${i + 1}-${n}`;
    this.procs = Array.from(
      { length: count },
      (_, i) =>
        new Respawner(`fargate-${i + 1}`, join(ROOT, "functions", "fargate.ts"), env, log, (n) => ({ WARDEN_WORKER_ID: idOf(i, n) }), {
          ...(onDeath ? { onDeath } : {}),
          workerId: (n) => idOf(i, n),
        }),
    );
  }
  start(): void {
    for (const p of this.procs) p.start();
  }
  async ready(timeoutMs: number): Promise<void> {
    for (const p of this.procs) await p.ready(timeoutMs);
  }
  list(): { pid: number | undefined; ready: boolean }[] {
    return this.procs.map((p) => ({ pid: p.pid, ready: p.pid !== undefined }));
  }
  async stop(): Promise<void> {
    await Promise.all(this.procs.map((p) => p.stop()));
  }
}

/** A child process restarted shortly after it dies, as Lambda or EventBridge would start a new one. */
class Respawner {
  private child?: ChildProcess;
  private stopping = false;
  private readyNow = false;
  /** Its latest stdout lines, each numbered in the order read. */
  private lines: { text: string; seq: number }[] = [];
  private seq = 0;
  private waiters: { text: string; resolve: (seq: number | undefined) => void }[] = [];

  private starts = 0;

  constructor(
    private readonly name: string,
    private readonly entry: string,
    private readonly env: Record<string, string>,
    private readonly log: (l: string) => void,
    /** Extra environment for the n-th process started (1-based). */
    private readonly envFor: (n: number) => Record<string, string> = () => ({}),
    /** A process that dies unasked (not stopped, not a clean exit) is reported dead under the worker id it ran as. */
    private readonly death: { onDeath?: (d: WorkerDeath) => void; workerId?: (n: number, pid: number | undefined) => string } = {},
  ) {}

  get pid(): number | undefined {
    return this.readyNow ? this.child?.pid : undefined;
  }

  start(): void {
    this.readyNow = false;
    // WARDEN_PARENT_PID: should the chaos run itself die, its processes stop instead of spinning on.
    const extra = this.envFor(++this.starts);
    const child = spawn(process.execPath, ["--import", "tsx", this.entry], { cwd: ROOT, env: { ...process.env, ...this.env, ...extra, ...parentEnv() }, stdio: ["ignore", "pipe", "pipe"] });
    this.child = child;
    createInterface({ input: child.stdout! }).on("line", (text) => {
      if (text.includes(": ready")) this.readyNow = true;
      const seq = ++this.seq;
      this.lines.push({ text, seq });
      if (this.lines.length > 200) this.lines.splice(0, 100);
      for (const w of this.waiters.filter((x) => text.includes(x.text))) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(seq);
      }
    });
    createInterface({ input: child.stderr! }).on("line", (l) => this.log(`[${this.name} ${child.pid}] ${l}`));
    const n = this.starts;
    child.once("exit", (code, signal) => {
      this.readyNow = false;
      this.log(`[${this.name} ${child.pid}] exited (${signal ?? code})`);
      if (!this.stopping && code !== 0 && this.death.workerId) {
        this.death.onDeath?.({ workerId: this.death.workerId(n, child.pid), at: Date.now(), reason: `process exited (${signal ?? `code ${code}`})` });
      }
      if (!this.stopping) setTimeout(() => this.start(), 300);
    });
  }

  async ready(timeoutMs: number): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (!this.readyNow) {
      if (Date.now() > until) throw new Error(`${this.name} process not ready after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** The number of the next line that contains `text` (undefined after `timeoutMs`). */
  nextLine(text: string, timeoutMs: number): Promise<number | undefined> {
    return new Promise((resolve) => {
      const w = { text, resolve };
      this.waiters.push(w);
      setTimeout(() => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        resolve(undefined);
      }, timeoutMs);
    });
  }

  /**
   * Whether a line after line `seq` contains `text`. By number, not time: the sweeper prints a
   * sweep's end and, when that sweep overran its interval, the next one's begin at once, and
   * both are read in the same millisecond.
   */
  sawSince(text: string, seq: number): boolean {
    return this.lines.some((l) => l.seq > seq && l.text.includes(text));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGTERM");
    const t = setTimeout(() => child.kill("SIGKILL"), 5_000);
    await exited;
    clearTimeout(t);
  }
}

export function printChaos(run: ChaosRun): string {
  const v = run.verdict;
  const w = Math.max(...v.rows.map((r) => r.check.length));
  const lines = [
    "",
    `Chaos run — seed ${run.seed} (replay: npm run chaos -- --seed ${run.seed} --jobs ${run.options.jobs} --minutes ${run.options.minutes} --flows ${run.options.flows}${run.options.flows ? ` --flow-unwritten ${run.options.flowUnwritten}` : ""} --keyed-share ${run.options.keyedShare}${run.options.keyedShare ? ` --key-limit ${run.options.keyLimit}` : ""} --schedule-every-ms ${run.options.scheduleEveryMs} --priority-share ${run.options.priorityShare} --effects ${run.options.effects})`,
    `${"check".padEnd(w)}  result`,
    `${"─".repeat(w)}  ${"─".repeat(50)}`,
    ...v.rows.map((r) => `${r.check.padEnd(w)}  ${r.ok === null ? "  " : r.ok ? "✔ " : "✘ "}${r.value}`),
    "",
    `final states: ${Object.entries(v.statuses).map(([s, n]) => `${n} ${s}`).join(", ")}`,
    "",
    `wire faults injected (below the SDK's retries, rate ${run.options.faultRate} per request):`,
    `  ${"".padEnd(8)}${FAULT_KINDS.map((k) => k.padStart(10)).join("")}`,
    ...(["dynamodb", "sqs"] as const).map((svc) => `  ${(svc === "dynamodb" ? "DynamoDB" : "SQS").padEnd(8)}${FAULT_KINDS.map((k) => String(v.faults[svc][k]).padStart(10)).join("")}`),
    ...(v.violations.length ? ["", `VIOLATIONS (${v.violations.length}):`, ...v.violations.slice(0, 30).map((x) => `  - ${x}`)] : []),
    "",
    v.ok ? `chaos: no violations (seed ${run.seed}, ${run.seconds.toFixed(0)} s)` : `chaos: ${v.violations.length} violation(s) — seed ${run.seed}; ledger at ${run.ledgerPath}`,
  ];
  return lines.join("\n");
}

function parseArgs(argv: string[]): Partial<ChaosOptions> {
  const get = (name: string) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const num = (name: string) => {
    const v = get(name);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new Error(`${name} needs a number, got "${v}"`);
    return n;
  };
  const out: Partial<ChaosOptions> = {};
  const set = <K extends keyof ChaosOptions>(k: K, v: ChaosOptions[K] | undefined) => {
    if (v !== undefined) out[k] = v;
  };
  set("jobs", num("--jobs"));
  set("minutes", num("--minutes"));
  set("seed", num("--seed"));
  set("workers", num("--workers"));
  set("faultRate", num("--fault-rate"));
  set("leaseSeconds", num("--lease-seconds"));
  set("sweepSeconds", num("--sweep-seconds"));
  set("killEveryMs", num("--kill-every-ms"));
  set("callersPerSecond", num("--callers-per-second"));
  set("hangMs", num("--hang-ms"));
  set("requestTimeoutMs", num("--request-timeout-ms"));
  set("flows", num("--flows"));
  set("flowUnwritten", num("--flow-unwritten"));
  set("keyedShare", num("--keyed-share"));
  set("keyLimit", num("--key-limit"));
  set("scheduleEveryMs", num("--schedule-every-ms"));
  set("priorityShare", num("--priority-share"));
  set("effects", num("--effects"));
  if (argv.includes("--no-save")) out.save = false;
  // Leases alone find dead workers: the recovery before death events.
  if (argv.includes("--no-death-events")) out.deathEvents = false;
  return out;
}

/**
 * The full run from the command line also runs the flows and the controls (DEFAULTS has none, so
 * the benchmarks that call runChaos keep their own mix): 6 evaluations of 60 executions, the
 * first with 10 of its executions' writes refused on the wire; a quarter of the keyable jobs under
 * a concurrency limit of 2; a schedule ticking every 2 s.
 */
export const CLI_DEFAULTS: Partial<ChaosOptions> = { flows: 6, flowUnwritten: 10, keyedShare: 0.25, keyLimit: 2, scheduleEveryMs: 2_000, priorityShare: 0.3, effects: 8 };

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  runChaos({ ...CLI_DEFAULTS, ...parseArgs(process.argv.slice(2)) }).then(
    (run) => {
      console.log(printChaos(run));
      process.exit(run.verdict.ok ? 0 : 1);
    },
    (e) => {
      console.error(e);
      process.exit(2);
    },
  );
}
