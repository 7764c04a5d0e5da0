/**
 * The composition root: everything an entry point needs, built once from the runtime config.
 * Entry points (functions/, local/) call `buildServices()`; tests pass overrides (a fault-
 * injecting client, a manual clock, an in-memory metrics sink).
 */
import type { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import type { SQSClient } from "@aws-sdk/client-sqs";
import { dynamoClient, reportThrottles, sqsClient } from "./aws.js";
import { builtinRegistry } from "./jobs/index.js";
import type { JobLogSource } from "./logs.js";
import { noMetrics, type Metrics } from "./metrics.js";
import { JobQueue } from "./queue.js";
import type { Registry } from "./registry.js";
import { loadRuntime, type RuntimeConfig } from "./runtime.js";
import { JobStore } from "./store.js";
import { WorkerDirectory } from "./workers.js";

export interface Services {
  cfg: RuntimeConfig;
  doc: DynamoDBDocumentClient;
  sqs: SQSClient;
  store: JobStore;
  queue: JobQueue;
  registry: Registry;
  metrics: Metrics;
  workers: WorkerDirectory;
  /** A job's log lines: Logs Insights over the workers' log groups; the local runtime's own log locally. */
  logs: JobLogSource;
  now: () => number;
}

export interface ServiceOverrides {
  doc?: DynamoDBDocumentClient;
  sqs?: SQSClient;
  registry?: Registry;
  metrics?: Metrics;
  logs?: JobLogSource;
  now?: () => number;
}

export function buildServices(cfg: RuntimeConfig = loadRuntime(), o: ServiceOverrides = {}): Services {
  const now = o.now ?? Date.now;
  const doc = o.doc ?? dynamoClient(cfg.endpoints);
  const sqs = o.sqs ?? sqsClient(cfg.endpoints);
  const metrics = o.metrics ?? noMetrics;
  reportThrottles(doc, () => metrics.emit("StoreThrottled", 1));
  const queue = new JobQueue(sqs, cfg.queues);
  return {
    cfg,
    doc,
    sqs,
    now,
    store: new JobStore(doc, {
      tableName: cfg.tableName,
      now,
      startDeadlineMs: cfg.startDeadlineMs,
      cancelGraceMs: cfg.cancelGraceMs,
      // A flow rings the jobs it queues: children it writes, a parent it resumes.
      doorbell: queue,
    }),
    queue,
    registry: o.registry ?? builtinRegistry(),
    metrics,
    workers: new WorkerDirectory(doc, cfg.tableName, { now }),
    logs: o.logs ?? lazyInsights(cfg),
  };
}

/**
 * The cloud's log source, its module and client loaded on the first query: only the API reads job
 * logs, on a rare route, so no function's cold start pays for the Logs client (and a worker never
 * holds sockets for one). Its deadline is the wall clock's (API Gateway's is), never a test's
 * manual clock.
 */
function lazyInsights(cfg: RuntimeConfig): JobLogSource {
  let source: Promise<JobLogSource> | undefined;
  const load = async (): Promise<JobLogSource> => {
    const { insightsLogSource, logsClient } = await import("./logs-insights.js");
    return insightsLogSource({ groups: cfg.jobLogs.groups, client: logsClient({ endpoint: cfg.jobLogs.endpoint, region: cfg.endpoints.region }) });
  };
  return {
    name: "cloudwatch",
    lines: async (q) => {
      // A load that failed is tried again on the next query, not remembered.
      source ??= load().catch((e: unknown) => {
        source = undefined;
        throw e;
      });
      return (await source).lines(q);
    },
  };
}
