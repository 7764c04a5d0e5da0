/**
 * The Fargate worker: a long-running process that long-polls a queue (`large` by default) and
 * runs jobs through the runner (the one claim path) with a configurable concurrency. It deletes a
 * message as soon as its job is claimed: from then on the lease, not the message, guards the job,
 * so a job may run longer than SQS's 12-hour visibility limit. Because a running job is then no
 * longer a visible message, the service's queue-depth scaling cannot see it: while the worker holds
 * a job it keeps its task's ECS scale-in protection on (core/ecs-protection.ts), so a scale-in does
 * not stop it mid-job.
 *
 * On SIGTERM (an ECS stop, a deploy) it stops receiving, aborts its handlers with `shutdown`,
 * waits for them to checkpoint within the grace period, releases their jobs and exits 0. A second
 * SIGTERM, or the grace running out, settles every job at once, still releasing each lease before
 * the process exits.
 *
 * Environment: the runtime's (WARDEN_TABLE, WARDEN_QUEUES, ...), plus WARDEN_WORKER_ID (default
 * host-pid), WARDEN_WORKER_QUEUE or `--queue` (default `large`), WARDEN_WORKER_CONCURRENCY,
 * WARDEN_SHUTDOWN_GRACE_MS, WARDEN_POLL_WAIT_SECONDS, WARDEN_ABORT_GRACE_MS, WARDEN_MEMORY_*, and
 * ECS_AGENT_URI (set by ECS; without it there is no scale-in protection), and WARDEN_PARENT_PID
 * (set by the local spawners: the worker stops within ~2.5 s of that process's death).
 * It prints `warden-worker: ready <id>` once it polls.
 */
import { hostname } from "node:os";
import { resolve as resolvePath } from "node:path";
import { pathToFileURL } from "node:url";
import { FARGATE_WORKER, QUEUE_NAMES, type QueueName } from "../core/config.js";
import { fargateWorkerId } from "../core/death-events.js";
import { errorMessage } from "../core/errors.js";
import { ScaleInProtection, type ScaleInProtectionOptions } from "../core/ecs-protection.js";
import { pause } from "../core/jobs/abort.js";
import { memoryGuardFromEnv, type MemoryGuard } from "../core/memory.js";
import { emfMetrics } from "../core/metrics-emf.js";
import type { ReceivedMessage } from "../core/queue.js";
import type { JobLimits, JobLogger } from "../core/registry.js";
import { defaultLogger } from "../core/job-log.js";
import { Runner } from "../core/runner.js";
import { loadRuntime } from "../core/runtime.js";
import { buildServices, type Services } from "../core/services.js";
import { exitWhenOrphaned, guardStdio, quietly } from "./parent-watch.js";
import { appRegistry } from "./registry.js";

export interface FargateWorkerOptions {
  workerId?: string;
  queue?: QueueName;
  concurrency?: number;
  shutdownGraceMs?: number;
  /** The idle long poll's wait (FARGATE_WORKER.idlePollSeconds); shorter in tests so a stop comes sooner. */
  pollWaitSeconds?: number;
  leaseMs?: number;
  heartbeatMs?: number;
  limits?: Partial<JobLimits>;
  memory?: MemoryGuard;
  log?: JobLogger;
  /** Task scale-in protection while jobs run; without `agentUri` (the default) none. */
  protection?: ScaleInProtectionOptions;
  /** Called once the worker polls (the CLI prints its ready line here). */
  onReady?: (id: string) => void;
  pid?: number;
}

export interface FargateWorker {
  readonly id: string;
  readonly runner: Runner;
  /** Starts the graceful stop (or, with `force`, settles every job now); resolves once every lease is released. */
  stop(opts?: { force?: boolean }): Promise<void>;
  /** Resolves when the worker has stopped. */
  readonly done: Promise<void>;
}

/** How long the forced stop after an uncaught exception may take before the process exits anyway. */
const UNCAUGHT_EXIT_BOUND_MS = 10_000;

/** SQS's largest visibility timeout: a message for a job in backoff can be hidden this long. */
const MAX_VISIBILITY_SECONDS = 12 * 3600;

export function startFargateWorker(services: Services, opts: FargateWorkerOptions = {}): FargateWorker {
  const id = opts.workerId ?? `${hostname()}-${process.pid}`;
  const queue = opts.queue ?? "large";
  const concurrency = Math.max(1, opts.concurrency ?? FARGATE_WORKER.concurrency);
  const graceMs = opts.shutdownGraceMs ?? FARGATE_WORKER.shutdownGraceMs;
  const log = opts.log ?? defaultLogger();
  const runner = new Runner(services, {
    workerId: id,
    kind: "fargate",
    leaseMs: opts.leaseMs ?? services.cfg.leaseMs,
    ...(opts.heartbeatMs ? { heartbeatMs: opts.heartbeatMs } : {}),
    ...(opts.limits ? { limits: opts.limits } : {}),
    ...(opts.memory ? { memory: opts.memory } : {}),
    ...(opts.pid !== undefined ? { pid: opts.pid } : {}),
    log,
  });
  const protection = new ScaleInProtection({ log, now: services.now, ...opts.protection });
  /** Jobs claimed and not yet settled: what scale-in protection follows. */
  let holding = 0;
  const polling = new AbortController();
  const inflight = new Set<Promise<void>>();
  let graceTimer: NodeJS.Timeout | undefined;
  let stopRequested!: () => void;
  const stopping = new Promise<void>((resolve) => (stopRequested = resolve));

  const handOver = (m: ReceivedMessage, seconds: number) =>
    services.queue.changeVisibility(m.lane, m.receiptHandle, seconds).catch((e) => log.warn("could not change a message's visibility", { error: errorMessage(e) }));

  const handle = async (m: ReceivedMessage): Promise<void> => {
    let deleted = false;
    const del = async () => {
      if (deleted) return;
      deleted = true;
      await services.queue.delete(m.lane, m.receiptHandle).catch((e) => log.warn("could not delete a message; a later delivery will find the job claimed", { error: errorMessage(e) }));
    };
    if (!m.jobId) return del();
    let claimed = false;
    const onClaimed = () => {
      claimed = true;
      protection.hold(++holding);
      return del();
    };
    try {
      const out = await runner.run(m.jobId, queue, { onClaimed });
      if (out.claimed) return;
      if (out.reason === "shutting_down") return handOver(m, 0);
      if (out.reason === "not_due" && out.job?.status === "queued" && out.job.runAt !== undefined) {
        // A job in backoff: hide its message until it is due rather than losing it.
        const seconds = Math.ceil((out.job.runAt - services.now()) / 1000);
        return handOver(m, Math.max(1, Math.min(MAX_VISIBILITY_SECONDS, seconds)));
      }
      await del();
    } catch (e) {
      // The store could not be reached: keep the message; it comes back after its visibility timeout.
      log.error("could not claim the job; its message will be delivered again", { jobId: m.jobId, error: errorMessage(e) });
    } finally {
      if (claimed) protection.hold(--holding);
    }
  };

  const loop = async (): Promise<void> => {
    await runner.start();
    opts.onReady?.(id);
    while (!polling.signal.aborted) {
      if (inflight.size >= concurrency) {
        await Promise.race([...inflight, stopping]);
        continue;
      }
      let messages: ReceivedMessage[];
      try {
        // Higher lanes first, and only as many as there are free slots: a message taken is
        // claimed at once, so a high job that rings later waits for no normal one held here.
        messages = await services.queue.receiveByPriority(queue, {
          max: concurrency - inflight.size,
          // Never aborted mid-poll: SQS (and fauxqs) may still hand a message to a poll whose
          // caller left, hiding it for the visibility timeout. A stop waits for the poll instead.
          idleWaitSeconds: opts.pollWaitSeconds ?? FARGATE_WORKER.idlePollSeconds,
        });
      } catch (e) {
        if (polling.signal.aborted) break;
        log.warn("receive failed; polling again shortly", { queue, error: errorMessage(e) });
        await pause(1_000, polling.signal);
        continue;
      }
      if (polling.signal.aborted) {
        await Promise.all(messages.map((m) => handOver(m, 0)));
        break;
      }
      for (const m of messages) {
        const p: Promise<void> = handle(m).finally(() => inflight.delete(p));
        inflight.add(p);
      }
    }
  };

  const looped = loop().catch((e) => log.error("the polling loop failed", { error: errorMessage(e) }));
  const done = (async () => {
    await stopping;
    await looped;
    await runner.idle();
    await Promise.all(inflight);
    if (graceTimer) clearTimeout(graceTimer);
    await protection.stop();
    await runner.stop();
    await services.metrics.flush().catch(() => undefined);
  })();

  const stop = (o: { force?: boolean } = {}): Promise<void> => {
    if (!polling.signal.aborted) {
      log.info("stopping: no new jobs; handing running jobs back", { workerId: id, jobs: runner.active(), graceMs });
      polling.abort();
      runner.shutdown();
      graceTimer = setTimeout(() => runner.abandonAll(), graceMs);
      stopRequested();
    }
    if (o.force) runner.abandonAll();
    return done;
  };

  return { id, runner, stop, done };
}

/** The process's entry point: ECS runs it (and the local runtime spawns it). */
/**
 * On ECS, the worker's id names its task (core/death-events.ts fargateWorkerId), so the task's
 * `STOPPED` event finds the jobs it held. The task metadata endpoint answers locally, at once.
 */
async function taskWorkerId(metadataUri: string | undefined, log: JobLogger): Promise<string | undefined> {
  if (!metadataUri) return undefined;
  try {
    const res = await fetch(`${metadataUri}/task`, { signal: AbortSignal.timeout(2_000) });
    const arn = ((await res.json()) as { TaskARN?: string }).TaskARN;
    if (arn) return fargateWorkerId(arn);
  } catch (e) {
    log.warn("task metadata unreachable: this worker's death event will not name it (its lease still will)", { error: errorMessage(e) });
  }
  return undefined;
}

export async function main(argv = process.argv.slice(2), env = process.env): Promise<void> {
  // A write into a closed log pipe (the local parent died) must not become an uncaught exception.
  guardStdio();
  const queue = parseQueue(flag(argv, "--queue") ?? env.WARDEN_WORKER_QUEUE ?? "large");
  const cfg = loadRuntime(env);
  const metrics = emfMetrics(cfg.stage);
  const services = buildServices(cfg, { metrics, registry: appRegistry() });
  await loadExtraJobs(env.WARDEN_EXTRA_JOBS, services);
  // Powertools JSON lines on stdout/stderr: the awslogs driver sends them to the worker's log group.
  const log = defaultLogger();
  const memory = memoryGuardFromEnv(env, { metrics, queue, log });
  const abortGraceMs = positive(env.WARDEN_ABORT_GRACE_MS);
  const worker = startFargateWorker(services, {
    queue,
    pid: process.pid,
    log,
    protection: { agentUri: env.ECS_AGENT_URI },
    workerId: env.WARDEN_WORKER_ID ?? (await taskWorkerId(env.ECS_CONTAINER_METADATA_URI_V4, log)) ?? `${hostname()}-${process.pid}`,
    ...optional("concurrency", positive(flag(argv, "--concurrency") ?? env.WARDEN_WORKER_CONCURRENCY)),
    ...optional("shutdownGraceMs", positive(env.WARDEN_SHUTDOWN_GRACE_MS)),
    ...optional("pollWaitSeconds", positive(env.WARDEN_POLL_WAIT_SECONDS)),
    ...(abortGraceMs ? { limits: { abortGraceMs } } : {}),
    ...(memory ? { memory } : {}),
    onReady: (id) => console.log(`warden-worker: ready ${id}`),
  });
  const flusher = setInterval(() => void metrics.flush().catch(() => undefined), 10_000);
  flusher.unref();

  let signals = 0;
  const onSignal = (signal: string) => {
    signals++;
    log.info(signals === 1 ? "signal received; shutting down gracefully" : "second signal; settling every job now", { signal });
    void worker.stop({ force: signals > 1 });
  };
  process.on("SIGTERM", () => onSignal("SIGTERM"));
  process.on("SIGINT", () => onSignal("SIGINT"));
  // A stray rejection from some job's background work must not take every other job down with it.
  process.on("unhandledRejection", (e) => log.error("unhandled rejection (ignored)", { error: errorMessage(e) }));
  let fatal = false;
  process.on("uncaughtException", (e) => {
    // Another one while settling (or one raised by the settling itself): exit at once rather
    // than re-enter, which could loop for ever.
    if (fatal) process.exit(1);
    fatal = true;
    // The process may be in a bad state: hand every job back, then exit and let ECS replace it.
    // Bounded: a store that cannot be reached must not keep a broken process alive.
    quietly(() => log.error("uncaught exception; releasing every job and exiting", { error: errorMessage(e), stack: e.stack }));
    setTimeout(() => process.exit(1), UNCAUGHT_EXIT_BOUND_MS);
    void worker.stop({ force: true }).finally(() => process.exit(1));
  });
  // Started by a local parent (local/fleet.ts, the chaos run) that has died: the emulators it ran
  // most likely died with it, so the graceful stop gets ~2 s before the process exits anyway.
  exitWhenOrphaned({ stop: () => worker.stop(), name: `warden-worker ${worker.id}`, env });

  await worker.done;
  clearInterval(flusher);
  log.info("stopped", { workerId: worker.id });
  process.exit(0);
}

/**
 * WARDEN_EXTRA_JOBS=path/to/module.ts (local and test runs, e.g. the chaos run's local/chaos-jobs.ts):
 * the module's `setup(services)` runs before the worker starts, to register extra job types in
 * services.registry. Unset in the cloud.
 */
async function loadExtraJobs(path: string | undefined, services: Services): Promise<void> {
  if (!path) return;
  const mod = (await import(pathToFileURL(resolvePath(path)).href)) as { setup?: (s: Services) => void | Promise<void> };
  if (typeof mod.setup !== "function") throw new Error(`WARDEN_EXTRA_JOBS module ${path} exports no setup(services)`);
  await mod.setup(services);
}

function flag(argv: string[], name: string): string | undefined {
  const i = argv.findIndex((a) => a === name || a.startsWith(`${name}=`));
  if (i < 0) return undefined;
  const a = argv[i]!;
  return a.includes("=") ? a.slice(a.indexOf("=") + 1) : argv[i + 1];
}

function parseQueue(v: string): QueueName {
  if (!(QUEUE_NAMES as string[]).includes(v)) throw new Error(`unknown queue "${v}"; use one of ${QUEUE_NAMES.join(", ")}`);
  return v as QueueName;
}

const positive = (v: string | undefined): number | undefined => {
  const n = Number(v);
  return v !== undefined && v !== "" && Number.isFinite(n) && n > 0 ? n : undefined;
};

const optional = <K extends string>(key: K, v: number | undefined): Partial<Record<K, number>> =>
  (v === undefined ? {} : { [key]: v }) as Partial<Record<K, number>>;

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isMain) {
  main().catch((e) => {
    console.error(`warden-worker: failed to start: ${errorMessage(e)}`);
    process.exit(1);
  });
}
