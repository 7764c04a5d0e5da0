/**
 * The environment every function and task gets: exactly what `core/runtime.ts` `loadRuntime`
 * reads, so a deployed worker and a local one are configured the same way.
 */
import { RemovalPolicy, Stack } from "aws-cdk-lib";
import type { ITable } from "aws-cdk-lib/aws-dynamodb";
import * as logs from "aws-cdk-lib/aws-logs";
import type { Construct } from "constructs";
import { EFFECTS_TABLE, QUEUE_NAMES, type QueueName } from "../core/config.js";
import { METRIC_NAMESPACE } from "../core/metrics.js";
import type { QueuePair } from "./Queues.js";
import type { StageConfig } from "./stage-config.js";

export function runtimeEnvironment(scope: Construct, stage: string, table: ITable, queues: Record<QueueName, QueuePair>): Record<string, string> {
  const urls = Object.fromEntries(
    QUEUE_NAMES.map((q) => [q, { queue: queues[q].queue.queueUrl, high: queues[q].high.queueUrl, low: queues[q].low.queueUrl, dlq: queues[q].dlq.queueUrl }]),
  );
  return {
    WARDEN_STAGE: stage,
    WARDEN_TABLE: table.tableName,
    // Tokens inside the JSON become an Fn::Join, resolved to real URLs at deploy time.
    WARDEN_QUEUES: Stack.of(scope).toJsonString(urls),
    POWERTOOLS_METRICS_NAMESPACE: METRIC_NAMESPACE,
    POWERTOOLS_SERVICE_NAME: "warden",
  };
}

/** The workers' extra: the demo effects table demo.effects writes to (core/jobs/effects.ts). */
export function effectsEnvironment(effects: ITable): Record<string, string> {
  return { [EFFECTS_TABLE.env]: effects.tableName };
}

/**
 * The API function's extra: the workers' log groups, where `GET /jobs/{id}/logs` queries a job's
 * lines (core/logs-insights.ts). Workers write their lines; they never read them back.
 */
export function jobLogEnvironment(groups: readonly logs.ILogGroup[]): Record<string, string> {
  return { WARDEN_JOB_LOG_GROUPS: groups.map((g) => g.logGroupName).join(",") };
}

const RETENTION: Record<StageConfig["logRetentionDays"], logs.RetentionDays> = {
  7: logs.RetentionDays.ONE_WEEK,
  14: logs.RetentionDays.TWO_WEEKS,
  30: logs.RetentionDays.ONE_MONTH,
  90: logs.RetentionDays.THREE_MONTHS,
  365: logs.RetentionDays.ONE_YEAR,
};

/** An explicit log group, so retention is set without the LogRetention custom resource (and its `*` policy). */
export function logGroup(scope: Construct, id: string, name: string, config: StageConfig): logs.LogGroup {
  return new logs.LogGroup(scope, id, {
    logGroupName: name,
    retention: RETENTION[config.logRetentionDays],
    removalPolicy: config.production ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
  });
}
