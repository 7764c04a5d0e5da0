/**
 * The whole system on one machine: emulators, then the stand-ins for the AWS glue around the
 * same handlers the cloud runs (API Gateway → functions/api.ts, the SQS event source mapping →
 * functions/worker.ts, ECS → functions/fargate.ts processes, EventBridge → the sweeper, DynamoDB
 * TTL, CloudWatch alarms). `local/main.ts` runs it; the demo and the tests start it too.
 */
import { alarmDefinitions } from "../core/alarms.js";
import type { ApiLog } from "../core/api/jobs.js";
import { laneUrls, loadRuntime } from "../core/runtime.js";
import { buildServices, type Services } from "../core/services.js";
import { Sweeper } from "../core/sweeper.js";
import { makeHandler as makeApiHandler } from "../functions/api.js";
import { makeHandler as makeWorkerHandler } from "../functions/worker.js";
import { AlarmBoard, sourceLabel } from "./alarms.js";
import type { LocalConfig } from "./config.js";
import { startEmulators, type EmulatorOptions, type Emulators } from "./emulators.js";
import { DeathReaper, type WorkerDeath } from "../core/deaths.js";
import { WorkerFleet } from "./fleet.js";
import { LocalJobLogs } from "./job-logs.js";
import { jsonLogger } from "../core/job-log.js";
import { DASHBOARD_DIR, startGateway, type ApiHandler, type Gateway, type LocalRoutes } from "./gateway.js";
import { LambdaPoller, type SqsHandler } from "./poller.js";
import { Recorder } from "./recorder.js";
import { ringQueuedJobs } from "./recovery.js";
import { countByState, queueStats, Series, type QueueStats, type StateCounts } from "./stats.js";
import { EFFECTS_TTL, expireItems } from "./ttl.js";
import { appRegistry } from "../functions/registry.js";

export interface System {
  apiUrl: string;
  dashboardUrl: string;
  emulators: Emulators;
  services: Services;
  recorder: Recorder;
  fleet: WorkerFleet;
  alarms: AlarmBoard;
  stop(): Promise<void>;
}

/** Runs `fn` every `ms`, never overlapping itself; errors are logged, not fatal. */
function every(ms: number, what: string, fn: () => Promise<unknown>, log: (l: string) => void): { stop(): Promise<void> } {
  let timer: NodeJS.Timeout | undefined;
  let current: Promise<unknown> = Promise.resolve();
  let stopped = false;
  const tick = () => {
    current = fn()
      .catch((e: unknown) => log(`${what}: ${String((e as Error)?.message ?? e)}`))
      .finally(() => {
        if (!stopped) timer = setTimeout(tick, ms);
      });
  };
  timer = setTimeout(tick, 0);
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await current;
    },
  };
}

/**
 * The API's log, shortened for a terminal: the dashboard polls several reads a second, so
 * successful reads are left out; every write and every error is shown on one line.
 */
function apiLog(log: (line: string) => void): ApiLog {
  const line = (level: string, message: string, f: Record<string, unknown> = {}) => {
    if (message === "request") {
      if (f.method === "GET" && typeof f.status === "number" && f.status < 400) return;
      return log(`api: ${String(f.method)} ${String(f.path)} → ${String(f.status)} (${String(f.ms)} ms, ${String(f.caller ?? "anonymous")})`);
    }
    log(`api ${level}: ${message} ${JSON.stringify(f)}`);
  };
  return { info: (m, f) => line("info", m, f), warn: (m, f) => line("warn", m, f), error: (m, f) => line("error", m, f) };
}

export interface SystemOptions {
  /**
   * Where DynamoDB and SQS come from (local/emulators.ts): embedded by default; `npm start`
   * passes WARDEN_DYNAMODB_ENDPOINT / WARDEN_SQS_ENDPOINT here. Whatever is used, `emulators.env`
   * names it to the worker processes under those same variables.
   */
  emulators?: Pick<EmulatorOptions, "dynamodb" | "dynamodbEndpoint" | "sqsEndpoint">;
}

export async function startSystem(cfg: LocalConfig, log: (line: string) => void = console.log, opts: SystemOptions = {}): Promise<System> {
  // The ports apply to what is started here: an external endpoint's side starts nothing.
  const emulators = await startEmulators({ ...(cfg.dataDir ? { dataDir: cfg.dataDir } : {}), dynamoPort: cfg.dynamoPort, sqsPort: cfg.sqsPort, ...opts.emulators });
  const env: Record<string, string> = {
    ...emulators.env,
    WARDEN_LEASE_SECONDS: String(cfg.leaseSeconds),
    WARDEN_SWEEP_INTERVAL_SECONDS: String(cfg.sweepIntervalSeconds),
    WARDEN_START_DEADLINE_SECONDS: String(cfg.startDeadlineSeconds),
    WARDEN_CANCEL_GRACE_SECONDS: String(cfg.cancelGraceSeconds),
    WARDEN_WORKER_QUEUE: "large",
    // ECS waits stopTimeout (120 s) before SIGKILL; a laptop's Ctrl-C should not.
    WARDEN_SHUTDOWN_GRACE_MS: "10000",
    // A stopping worker finishes its long poll first (an aborted poll can swallow a message), so
    // short polls keep Ctrl-C quick; idle polling costs nothing on a laptop.
    WARDEN_POLL_WAIT_SECONDS: "2",
  };
  const recorder = new Recorder();
  // Every worker's job lines, kept for GET /jobs/{id}/logs as Logs Insights finds them in the cloud.
  const jobLogs = new LocalJobLogs({ createdAt: async (id) => (await services.store.get(id))?.createdAt });
  const services = buildServices(loadRuntime(env), { metrics: recorder.metrics, registry: appRegistry(env), logs: jobLogs });
  const startedAt = Date.now();
  const stoppers: (() => Promise<void>)[] = [];

  try {
    const api = makeApiHandler(services, { log: apiLog(log) }) as unknown as ApiHandler;
    // One worker per execution environment, as on Lambda, so a timed-out invocation's death
    // event names the environment that was running it, not every local invocation.
    const lambdaIds = Array.from({ length: cfg.lambdaConcurrency }, (_, i) => `lambda:local-${process.pid}-${i + 1}`);
    // Their lines print as on Lambda, and are kept: no pipe carries them to the job log.
    const lambdaLog = jobLogs.tee(jsonLogger());
    const lambdaWorkers = lambdaIds.map((workerId) => makeWorkerHandler(services, { workerId, log: lambdaLog }));
    const reaper = new DeathReaper(services);
    const reap = (death: WorkerDeath) =>
      void reaper
        .onDeath(death)
        .then((r) => log(`[${death.workerId}] died: ${r.requeued.length} job(s) queued again, ${r.ended.length} ended, ${r.untouched.length} already moved on`))
        .catch((e: unknown) => log(`[${death.workerId}] died; reclaiming its jobs failed (their leases will): ${String(e)}`));
    const poller = new LambdaPoller({
      sqs: services.sqs,
      queueUrls: laneUrls(services.cfg.queues.default),
      handler: lambdaWorkers as SqsHandler[], // replaced in place on a timeout, as Lambda starts a new runtime
      concurrency: cfg.lambdaConcurrency,
      timeoutMs: cfg.lambdaTimeoutSeconds * 1000,
      onTimeout: (env) => {
        reap({ workerId: lambdaIds[env]!, at: Date.now(), reason: "Task timed out" });
        // Lambda kills the timed-out runtime; here its handlers are told to stop (their writes are fenced anyway).
        lambdaWorkers[env]!.runner.shutdown();
        lambdaWorkers[env] = makeWorkerHandler(services, { workerId: lambdaIds[env]!, log: lambdaLog });
      },
      onInvocation: (outcome) => {
        recorder.lambda("worker", "Invocations");
        if (outcome !== "ok") recorder.lambda("worker", "Errors");
      },
      log,
    });

    const sweeper = new Sweeper(services);
    const sweepOnce = async () => {
      recorder.lambda("sweeper", "Invocations");
      try {
        return await sweeper.sweep();
      } catch (e) {
        recorder.lambda("sweeper", "Errors");
        throw e;
      }
    };

    const stateHistory = new Series<StateCounts>();
    let queues: QueueStats[] = [];
    // The thresholds follow this run's timings (a short start deadline pages in seconds, not minutes).
    const alarmDefs = alarmDefinitions(services.cfg);
    const alarms = new AlarmBoard(alarmDefs, (s, since) => recorder.read(s, since), { timeScale: cfg.alarmTimeScale, since: startedAt });

    const fleet = new WorkerFleet({
      count: cfg.workers,
      env,
      stopGraceMs: 15_000,
      onLine: (line) => recorder.emfLine(line),
      // The same path as ECS's task-stopped event in the cloud (functions/deaths.ts).
      onDeath: reap,
      // Every line a worker process prints but its EMF records, stdout and stderr alike (warnings
      // and errors go to stderr), comes here as `[worker-id] line`: the job lines are kept.
      log: (line) => {
        jobLogs.take(line);
        log(line);
      },
    });

    const local: LocalRoutes = async (method, path) => {
      if (method === "GET" && path === "/local/alarms") {
        return { status: 200, body: { evaluatedAt: Date.now(), timeScale: cfg.alarmTimeScale, alarms: alarms.current().map((a) => ({ ...a, source: sourceLabel(alarmDefs.find((d) => d.id === a.id)!.source) })) } };
      }
      if (method === "GET" && path === "/local/queues") return { status: 200, body: { queues } };
      if (method === "GET" && path === "/local/history") return { status: 200, body: { states: stateHistory.points } };
      if (method === "GET" && path === "/local/processes") return { status: 200, body: { processes: fleet.list() } };
      return undefined;
    };

    const gateway: Gateway = await startGateway({
      port: cfg.port,
      api,
      auth: { callers: cfg.callers, adminToken: cfg.adminToken },
      local,
      dashboardDir: DASHBOARD_DIR,
      onInvocation: (outcome) => {
        recorder.lambda("api", "Invocations");
        if (outcome === "error") recorder.lambda("api", "Errors");
      },
      log,
    });
    stoppers.push(() => gateway.close());

    // A restart finds the queues empty (fauxqs keeps them in memory) while the table kept its
    // queued jobs: ring each one's doorbell once now rather than wait for its start deadline.
    const rung = await ringQueuedJobs(services);
    if (rung) log(`warden: re-sent the doorbell of ${rung} queued job(s) kept from the last run`);

    await poller.start();
    stoppers.push(async () => {
      // Lambda would let in-flight invocations run to their deadline; locally we cannot wait that
      // long, so the runner aborts its handlers with `shutdown` and they hand their jobs back.
      const stopping = poller.stop();
      for (const w of lambdaWorkers) w.runner.shutdown();
      await stopping;
      await Promise.all(lambdaWorkers.map((w) => w.runner.stop()));
    });
    fleet.start();
    stoppers.push(() => fleet.stop());

    const loops = [
      every(cfg.sweepIntervalSeconds * 1000, "sweeper", sweepOnce, log),
      every(cfg.ttlIntervalSeconds * 1000, "ttl", async () => {
        await expireItems(services.doc, services.cfg.tableName);
        await expireItems(services.doc, emulators.effectsTableName, Date.now(), EFFECTS_TTL);
      }, log),
      every(2000, "stats", async () => stateHistory.add(Date.now(), await countByState(services.doc, services.cfg.tableName)), log),
      every(cfg.alarmIntervalSeconds * 1000, "alarms", async () => {
        queues = await queueStats(services.queue, emulators.sqsEndpoint);
        for (const q of queues) {
          recorder.queue(q.queue, false, "ApproximateNumberOfMessagesVisible", q.visible);
          recorder.queue(q.queue, false, "ApproximateAgeOfOldestMessage", q.oldestAgeSeconds);
          recorder.queue(q.queue, true, "ApproximateNumberOfMessagesVisible", q.dlq.visible);
          recorder.queue(q.queue, true, "ApproximateAgeOfOldestMessage", q.dlq.oldestAgeSeconds);
        }
        const before = new Map(alarms.current().map((a) => [a.id, a.state]));
        for (const a of alarms.evaluate(Date.now())) {
          const was = before.get(a.id);
          if (was && was !== a.state && (a.state === "ALARM" || was === "ALARM")) log(`alarm ${a.id}: ${was} → ${a.state}`);
        }
        recorder.prune();
      }, log),
    ];
    stoppers.push(async () => void (await Promise.all(loops.map((l) => l.stop()))));

    await fleet.ready();

    let stopped: Promise<void> | undefined;
    return {
      apiUrl: gateway.url,
      dashboardUrl: `${gateway.url}/`,
      emulators,
      services,
      recorder,
      fleet,
      alarms,
      stop: () =>
        (stopped ??= (async () => {
          // Stop taking requests first, then the workers hand their jobs back, then the rest.
          for (const stop of stoppers) await stop().catch((e: unknown) => log(`stop: ${String(e)}`));
          services.doc.destroy();
          services.sqs.destroy();
          await emulators.stop();
        })()),
    };
  } catch (e) {
    for (const stop of stoppers) await stop().catch(() => undefined);
    await emulators.stop().catch(() => undefined);
    throw e;
  }
}
