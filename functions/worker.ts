/**
 * The Lambda worker: an SQS event handler that runs each record's job through the runner (the one
 * claim path). A record is reported in `batchItemFailures` only when it could not be processed at
 * all (the store unreachable): a handler's error is recorded on the job, and a message for an
 * unknown, finished or already running job is simply deleted. Before the Lambda deadline the
 * runner checkpoints the job, releases it and rings its doorbell again, so a long job continues in
 * the next invocation instead of dying at the timeout.
 */
import { hostname } from "node:os";
import { lambdaWorkerId } from "../core/death-events.js";
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from "aws-lambda";
import { LAMBDA_WORKER, laneOf, TIMINGS } from "../core/config.js";
import { errorMessage } from "../core/errors.js";
import { memoryGuardFromEnv, type MemoryGuard } from "../core/memory.js";
import { emfMetrics } from "../core/metrics-emf.js";
import { decodeMessage } from "../core/queue.js";
import type { JobLimits, JobLogger } from "../core/registry.js";
import { jsonLogger, powertoolsLogger } from "../core/job-log.js";
import { Runner } from "../core/runner.js";
import { loadRuntime } from "../core/runtime.js";
import { buildServices, type Services } from "../core/services.js";
import { appRegistry } from "./registry.js";

export interface WorkerHandlerOptions {
  workerId?: string;
  /** How long before the Lambda deadline the handler is told to stop and the job is handed back. */
  deadlineMarginMs?: number;
  /** Records of one batch run at once. */
  concurrency?: number;
  limits?: Partial<JobLimits>;
  /** A guard to use; `false` for none. Default: one from the environment (Lambda's memory size). */
  memory?: MemoryGuard | false;
  /** Where the worker's lines go; default: Powertools JSON lines on stdout, each with the invocation's context. */
  log?: JobLogger;
}

export type SqsWorkerHandler = ((event: SQSEvent, context: Context) => Promise<SQSBatchResponse>) & { runner: Runner };

export function makeHandler(services: Services, opts: WorkerHandlerOptions = {}): SqsWorkerHandler {
  // One Powertools logger per handler (one execution environment), so the invocation context it
  // is given below is that environment's own; a caller's logger is used as it is.
  const powertools = opts.log ? undefined : powertoolsLogger();
  const log = opts.log ?? jsonLogger(powertools);
  const margin = opts.deadlineMarginMs ?? LAMBDA_WORKER.deadlineMarginMs;
  const memory = opts.memory === false ? undefined : (opts.memory ?? memoryGuardFromEnv(process.env, { metrics: services.metrics, queue: "default", log }));
  const runner = new Runner(services, {
    // The log stream names the execution environment: a crash logged there names this worker (core/death-events.ts).
    workerId: opts.workerId ?? (process.env.AWS_LAMBDA_LOG_STREAM_NAME ? lambdaWorkerId(process.env.AWS_LAMBDA_LOG_STREAM_NAME) : `lambda:${hostname()}-${process.pid}`),
    kind: "lambda",
    leaseMs: services.cfg.leaseMs,
    deadlineMarginMs: margin,
    ...(opts.limits ? { limits: opts.limits } : {}),
    ...(memory ? { memory } : {}),
    log,
  });
  let started: Promise<void> | undefined;

  /** True when the record is done with (its message may be deleted); false to have SQS deliver it again. */
  const processRecord = async (record: SQSRecord, hostDeadline: number): Promise<boolean> => {
    const msg = decodeMessage(record.body);
    if (!msg) {
      log.warn("not a Warden message; deleting it", { messageId: record.messageId });
      return true;
    }
    try {
      if (hostDeadline - Date.now() <= margin) {
        // Too late in this invocation to start: ring again so the next one takes it.
        await services.queue.send(msg, [msg.jobId]);
        return true;
      }
      const out = await runner.run(msg.jobId, msg.queue, { deadline: hostDeadline });
      if (!out.claimed && out.reason === "not_due" && out.job?.status === "queued" && out.job.runAt !== undefined) {
        // An early duplicate of a job in backoff: ring again for when it is due (beyond SQS's delay the sweeper does).
        const wait = out.job.runAt - services.now();
        if (wait <= TIMINGS.maxMessageDelaySeconds * 1000) await services.queue.send(laneOf(out.job), [msg.jobId], wait);
      }
      return true;
    } catch (e) {
      log.error("could not process the message; SQS will deliver it again", { jobId: msg.jobId, error: errorMessage(e) });
      return false;
    }
  };

  const handler = async (event: SQSEvent, context: Context): Promise<SQSBatchResponse> => {
    // Every line of this invocation names it (request id, cold start, function), beside the job's own tags.
    powertools?.addContext(context);
    started ??= runner.start();
    await started;
    const hostDeadline = Date.now() + context.getRemainingTimeInMillis();
    const failed: string[] = [];
    await eachBounded(event.Records, opts.concurrency ?? LAMBDA_WORKER.batchSize, async (record) => {
      if (!(await processRecord(record, hostDeadline))) failed.push(record.messageId);
    });
    // Lambda freezes the environment once this returns: what it let go of must be written first.
    await Promise.all([services.metrics.flush().catch(() => undefined), runner.flushPresence()]);
    return { batchItemFailures: failed.map((itemIdentifier) => ({ itemIdentifier })) };
  };
  return Object.assign(handler, { runner });
}

/** Runs `fn` over `items` with at most `limit` at once. */
async function eachBounded<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, lane));
}

let lazy: SqsWorkerHandler | undefined;

/** The deployed entry point: services are built from the environment once per container. */
export const handler = (event: SQSEvent, context: Context): Promise<SQSBatchResponse> => {
  if (!lazy) {
    const cfg = loadRuntime();
    lazy = makeHandler(buildServices(cfg, { metrics: emfMetrics(cfg.stage), registry: appRegistry() }));
  }
  return lazy(event, context);
};
