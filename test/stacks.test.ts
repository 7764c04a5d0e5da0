/**
 * The whole stage, synthesized offline by sst.config.ts's own `stacks` and held to the issue's
 * promises with aws-cdk-lib/assertions: DLQs and visibility timeouts, the table's TTL, sparse
 * indexes, PITR and retention, the Fargate worker's stop timeout and scaling, the sweeper's
 * schedule, the death events that reach the deaths function, one alarm per definition in core/,
 * least privilege, the hardening cdk-nag's
 * AwsSolutions and Serverless rule packs ask for (every stage synthesized here passes both, each
 * finding fixed or suppressed beside its construct with a reason), the optional KMS keys, and a
 * snapshot of each stack's resource counts. Every expected value comes from core/ or is stated
 * here, never read back from the stacks' own code.
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { Match } from "aws-cdk-lib/assertions";
import * as sqs from "aws-cdk-lib/aws-sqs";
import { beforeAll, describe, expect, it } from "vitest";
import { ALARMS, notStartingThresholdSeconds } from "../core/alarms.js";
import { LAMBDA_DEATH_TERMS } from "../core/death-events.js";
import { EFFECTS_TABLE, FARGATE_WORKER, LAMBDA_WORKER, laneName, PRIORITIES, QUEUE_NAMES, QUEUES, TABLE, TIMINGS, type QueueName } from "../core/config.js";
import { METRIC_NAMESPACE } from "../core/metrics.js";
import { loadRuntime } from "../core/runtime.js";
import { tableDefinition } from "../core/schema.js";
import { defaultStageConfig, envOverrides, stageConfig } from "../stacks/stage-config.js";
import type { SSTConfig } from "sst";
import sstConfig from "../sst.config.js";
import { STACKS, type StackName } from "../stacks/index.js";
import { ROOT, synthStage, TEST_IMAGE, type CfnTemplate, type Synthesized } from "./support/sst.js";
import { allStatements, resolve, resourceCounts, resourceOf, roleOwner, type Resolved } from "./support/sst-refs.js";

/** The Logs Insights actions of GET /jobs/{id}/logs: StartQuery names log groups, the other two a query id. */
const QUERY_BY_ID = ["logs:GetQueryResults", "logs:StopQuery"];
const JOB_LOG_QUERIES = ["logs:StartQuery", ...QUERY_BY_ID];
/** A WARDEN_QUEUES loadRuntime accepts, for reading other variables through it. */
const QUEUES_ENV = JSON.stringify(Object.fromEntries(QUEUE_NAMES.map((q) => [q, { queue: `https://q/${q}`, high: `https://q/${q}-high`, low: `https://q/${q}-low`, dlq: `https://q/${q}-dlq` }])));

const of = (t: CfnTemplate, type: string) => Object.entries(t.Resources).filter(([, r]) => r.Type === type);
const one = (t: CfnTemplate, type: string, where: (p: Record<string, any>) => boolean = () => true) => {
  const found = of(t, type).filter(([, r]) => where(r.Properties ?? {}));
  expect(found, `exactly one ${type}`).toHaveLength(1);
  return found[0]!;
};

/** A stage's table by its logical name (core/config.ts TABLE.name, EFFECTS_TABLE.name). */
const tableOf = (s: Synthesized, logical: string) => one(s.json.Storage, "AWS::DynamoDB::Table", (p) => String(p.TableName).endsWith(`-${logical}`));
/** Both of a stage's tables: the jobs table and the demo effects table. */
const tablesOf = (s: Synthesized) => {
  const tables = of(s.json.Storage, "AWS::DynamoDB::Table");
  expect(tables.map(([, t]) => String(t.Properties!.TableName).split("-").pop()).sort()).toEqual([EFFECTS_TABLE.name, TABLE.name].sort());
  return tables;
};

/** The StackName ("Storage", ...) of a CloudFormation stack name ("dev-warden-Storage"). */
const stackNameOf = (s: Synthesized, cfnName: string): StackName => (Object.keys(s.stackNames) as StackName[]).find((n) => s.stackNames[n] === cfnName)!;

/** "table", "table/index/due", "table:effects", "queue:default", "queue:large-dlq", "key:Queues" ... for a resolved resource. */
function label(s: Synthesized, stage: string, r: Resolved): string {
  if ("literal" in r) return r.literal;
  const res = resourceOf(s, r);
  if (res.Type === "AWS::KMS::Key") return `key:${stackNameOf(s, r.stack)}`;
  if (res.Type === "AWS::DynamoDB::Table") {
    const logical = String(res.Properties?.TableName).replace(`warden-${stage}-`, "");
    return `${logical === TABLE.name ? "table" : `table:${logical}`}${r.suffix}`;
  }
  if (res.Type === "AWS::SQS::Queue") return `queue:${String(res.Properties?.QueueName).replace(`warden-${stage}-`, "")}${r.suffix}`;
  return `${res.Type}:${r.id}${r.suffix}`;
}

/**
 * `tasks:<cluster>` for an ARN covering every task of one cluster
 * (`arn:<partition>:ecs:<region>:<account>:task/<cluster>/*`), else undefined.
 */
function tasksLabel(s: Synthesized, stack: string, value: unknown): string | undefined {
  const join = (value as { "Fn::Join"?: [string, unknown[]] } | undefined)?.["Fn::Join"];
  if (!join || join[0] !== "") return undefined;
  const resources = s.byStackName[stack]!.Resources;
  const text = join[1]
    .map((p) => {
      if (typeof p === "string") return p;
      const ref = (p as { Ref?: string }).Ref;
      if (ref === "AWS::Partition") return "aws";
      if (ref && resources[ref]?.Type === "AWS::ECS::Cluster") return String(resources[ref]!.Properties?.ClusterName);
      return "?";
    })
    .join("");
  const m = /^arn:aws:ecs:[a-z0-9-]+:\d{12}:task\/([^/?]+)\/\*$/.exec(text);
  return m ? `tasks:${m[1]}` : undefined;
}

/** cdk-nag's packs run in every synthStage: an unsuppressed finding, or any other error or warning annotation, fails. */
function expectNoFindings(s: Synthesized): void {
  expect(s.findings.map((f) => `${f.level} ${f.path}: ${f.message.split("\n")[0]}`)).toEqual([]);
}

/** Every cdk-nag suppression in the stage's templates: `Stack Type RuleId` and its reason. */
function suppressions(s: Synthesized): { where: string; id: string; reason: string }[] {
  return (Object.entries(s.json) as [StackName, CfnTemplate][]).flatMap(([stack, t]) =>
    Object.values(t.Resources).flatMap((r) =>
      ((r as { Metadata?: { cdk_nag?: { rules_to_suppress?: { id: string; reason: string }[] } } }).Metadata?.cdk_nag?.rules_to_suppress ?? []).map((x) => ({
        where: `${stack} ${r.Type}`,
        id: x.id,
        reason: x.reason,
      })),
    ),
  );
}

/** Every `Ref` and `Fn::GetAtt` target in a template. */
function referencedIds(value: unknown, out = new Set<string>()): Set<string> {
  if (Array.isArray(value)) for (const v of value) referencedIds(v, out);
  else if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      if (k === "Ref" && typeof v === "string") out.add(v);
      else if (k === "Fn::GetAtt" && Array.isArray(v)) out.add(String(v[0]));
      else referencedIds(v, out);
    }
  }
  return out;
}

/** Per role owner, `kms:Action key:<Stack>` for every KMS permission its policies hold. */
function kmsGrants(s: Synthesized, stage: string): Record<string, string[]> {
  const got: Record<string, Set<string>> = {};
  for (const st of allStatements(s).filter((x) => x.Effect === "Allow")) {
    const actions = st.Action.filter((a) => a.startsWith("kms:"));
    if (!actions.length) continue;
    for (const role of st.roles) {
      const set = (got[roleOwner(s.byStackName[st.stack]!, role)] ??= new Set());
      for (const r of st.Resource) for (const a of actions) set.add(`${a} ${label(s, stage, resolve(s, st.stack, r))}`);
    }
  }
  return Object.fromEntries(Object.entries(got).map(([k, v]) => [k, [...v].sort()]));
}

/** Every SQS event source mapping of the stage: the queue it consumes and its MaximumConcurrency. */
function lambdaMappings(s: Synthesized): { queue: string; cap: number; m: Record<string, any> }[] {
  return Object.entries(s.byStackName).flatMap(([stack, t]) =>
    of(t, "AWS::Lambda::EventSourceMapping").map(([, m]) => ({
      queue: String(resourceOf(s, resolve(s, stack, m.Properties!.EventSourceArn)).Properties!.QueueName),
      cap: m.Properties!.ScalingConfig?.MaximumConcurrency as number,
      m: m.Properties!,
    })),
  );
}

/** The dashboard's body as JSON, every reference in it written as its label (`queue:default-high`...). */
function dashboardBody(s: Synthesized, stage: string): { widgets: { properties: { title?: string; metrics?: unknown[][] } }[] } {
  const [, dash] = one(s.json.Monitoring, "AWS::CloudWatch::Dashboard");
  const body = dash.Properties!.DashboardBody as { "Fn::Join": [string, unknown[]] } | string;
  if (typeof body === "string") return JSON.parse(body);
  const text = body["Fn::Join"][1]
    .map((x) => {
      if (typeof x === "string") return x;
      const ref = (x as { Ref?: string }).Ref;
      return ref?.startsWith("AWS::") ? ref : label(s, stage, resolve(s, s.stackNames.Monitoring, x));
    })
    .join("");
  return JSON.parse(text);
}

describe("a dev stage, bundled as `sst deploy` bundles it", () => {
  let s: Synthesized;
  beforeAll(async () => {
    s = await synthStage("dev", { bundle: true });
  }, 60_000);

  it("gives each queue a lane per priority sharing its DLQ: the same visibility and retention, all three redriving to it with core's maxReceiveCount; 14-day DLQ retention, SSE and an SSL-only policy on every queue", () => {
    const t = s.json.Queues;
    for (const name of QUEUE_NAMES) {
      const [dlqId, dlq] = one(t, "AWS::SQS::Queue", (p) => p.QueueName === `warden-dev-${name}-dlq`);
      expect(dlq.Properties!.MessageRetentionPeriod).toBe(14 * 24 * 3600);
      for (const priority of PRIORITIES) {
        const [, lane] = one(t, "AWS::SQS::Queue", (p) => p.QueueName === `warden-dev-${laneName(name, priority)}`);
        expect(lane.Properties!.RedrivePolicy).toEqual({ deadLetterTargetArn: { "Fn::GetAtt": [dlqId, "Arn"] }, maxReceiveCount: QUEUES[name].maxReceiveCount });
        expect(lane.Properties!.VisibilityTimeout).toBe(QUEUES[name].visibilityTimeoutSeconds);
        expect(lane.Properties!.MessageRetentionPeriod).toBe(QUEUES[name].retentionSeconds);
      }
    }
    // The normal lane and the DLQ keep the construct ids they had before priorities: a deployed stage keeps its queues.
    for (const q of QUEUE_NAMES) {
      const Q = `${q[0]!.toUpperCase()}${q.slice(1)}`;
      for (const [id, name] of [[`${Q}Queue`, `warden-dev-${q}`], [`${Q}Dlq`, `warden-dev-${q}-dlq`]]) {
        const ids = Object.keys(t.Resources).filter((r) => new RegExp(`^${id}[0-9A-F]{8}$`).test(r));
        expect(ids, id).toHaveLength(1);
        expect(t.Resources[ids[0]!]!.Properties!.QueueName).toBe(name);
      }
    }
    const queues = of(t, "AWS::SQS::Queue");
    expect(queues).toHaveLength((PRIORITIES.length + 1) * QUEUE_NAMES.length);
    for (const [id, q] of queues) {
      expect(q.Properties!.SqsManagedSseEnabled, id).toBe(true);
      s.templates.Queues.hasResourceProperties("AWS::SQS::QueuePolicy", {
        Queues: [{ Ref: id }],
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({ Effect: "Deny", Condition: { Bool: { "aws:SecureTransport": "false" } }, Resource: { "Fn::GetAtt": [id, "Arn"] } }),
          ]),
        },
      });
    }
  });

  it("outputs the URL of each queue's every lane and of its DLQ", () => {
    const t = s.json.Queues;
    for (const q of QUEUE_NAMES) {
      const Q = `${q[0]!.toUpperCase()}${q.slice(1)}`;
      const urls: Record<string, string> = { [`${Q}HighQueueUrl`]: `queue:${q}-high`, [`${Q}QueueUrl`]: `queue:${q}`, [`${Q}LowQueueUrl`]: `queue:${q}-low`, [`${Q}DlqUrl`]: `queue:${q}-dlq` };
      for (const [output, queue] of Object.entries(urls)) {
        const value = t.Outputs?.[output]?.Value;
        expect(value, output).toEqual({ Ref: expect.any(String) }); // a queue's Ref is its URL
        expect(label(s, "dev", resolve(s, s.stackNames.Queues, value)), output).toBe(queue);
      }
    }
  });

  it("maps the Lambda worker to every lane of its queues, each lane's visibility timeout at least six times its timeout, reporting batch item failures", () => {
    const mappings = Object.entries(s.byStackName).flatMap(([stack, t]) => of(t, "AWS::Lambda::EventSourceMapping").map(([, m]) => ({ stack, m })));
    const lambdaQueues = QUEUE_NAMES.filter((q) => QUEUES[q].runsOn === "lambda");
    expect(mappings).toHaveLength(lambdaQueues.length * PRIORITIES.length);
    const consumed: string[] = [];
    for (const { stack, m } of mappings) {
      const p = m.Properties!;
      const queue = resourceOf(s, resolve(s, stack, p.EventSourceArn));
      const fn = resourceOf(s, resolve(s, stack, p.FunctionName));
      expect(queue.Properties!.VisibilityTimeout).toBeGreaterThanOrEqual(6 * fn.Properties!.Timeout);
      expect(p.FunctionResponseTypes).toEqual(["ReportBatchItemFailures"]);
      expect(p.BatchSize).toBe(LAMBDA_WORKER.batchSize);
      expect(p.MaximumBatchingWindowInSeconds).toBe(LAMBDA_WORKER.maxBatchingWindowSeconds);
      expect(p.ScalingConfig).toEqual({ MaximumConcurrency: expect.any(Number) });
      consumed.push(String(queue.Properties!.QueueName));
    }
    expect(consumed.sort()).toEqual(lambdaQueues.flatMap((q) => PRIORITIES.map((p) => `warden-dev-${laneName(q, p)}`)).sort());
  });

  it("caps the Lambda worker at the stage's concurrency in all: its lanes' mappings split the cap, half to normal, a quarter each to high and low", () => {
    const caps = Object.fromEntries(lambdaMappings(s).map(({ queue, cap }) => [queue, cap]));
    // 50 = 12 + 26 + 12: a mapping's cap bounds that mapping alone, so three full caps would be 150.
    expect(caps).toEqual({ "warden-dev-default-high": 12, "warden-dev-default": 26, "warden-dev-default-low": 12 });
    expect(Object.values(caps).reduce((a, b) => a + b, 0)).toBe(LAMBDA_WORKER.maxConcurrency);
    // The function has no reserved concurrency: throttled mappings would hand their messages back for a visibility timeout.
    const [, fn] = one(s.json.Workers, "AWS::Lambda::Function", (p) => p.FunctionName === "warden-dev-worker");
    expect(fn.Properties!.ReservedConcurrentExecutions).toBeUndefined();
  });

  it("runs the Lambda worker on nodejs22.x / arm64 with core's timeout and memory, bundled from functions/worker.ts", () => {
    const [, fn] = one(s.json.Workers, "AWS::Lambda::Function", (p) => p.FunctionName === "warden-dev-worker");
    const p = fn.Properties!;
    expect(p.Runtime).toBe("nodejs22.x");
    expect(p.Architectures).toEqual(["arm64"]);
    expect(p.Timeout).toBe(LAMBDA_WORKER.timeoutSeconds);
    expect(p.MemorySize).toBe(LAMBDA_WORKER.memoryMb);
    // The deferred esbuild build replaced SST's inline placeholder with an S3 asset.
    expect(p.Code).toEqual({ S3Bucket: expect.any(String), S3Key: expect.stringMatching(/\.zip$/) });
    expect(p.Handler).toBe("functions/worker.handler");
    for (const v of ["WARDEN_STAGE", "WARDEN_TABLE", "WARDEN_QUEUES", "POWERTOOLS_METRICS_NAMESPACE"]) expect(p.Environment.Variables).toHaveProperty(v);
    expect(p.Environment.Variables.POWERTOOLS_METRICS_NAMESPACE).toBe(METRIC_NAMESPACE);
    // WARDEN_QUEUES is JSON with every queue's and DLQ's URL, in the shape core/runtime.ts parses.
    const join = p.Environment.Variables.WARDEN_QUEUES["Fn::Join"][1] as unknown[];
    const text = join.map((x) => (typeof x === "string" ? x : `"${label(s, "dev", resolve(s, s.stackNames.Workers, x))}"`)).join("");
    expect(JSON.parse(text.replace(/""/g, '"'))).toEqual(
      Object.fromEntries(QUEUE_NAMES.map((q) => [q, { queue: `queue:${q}`, high: `queue:${q}-high`, low: `queue:${q}-low`, dlq: `queue:${q}-dlq` }])),
    );
  });

  it("builds the table from core's definition: keys, the sparse due, byWorker, byWait and byHold indexes (keys only), INCLUDE listings, TTL on expiresAt, PITR, on demand", () => {
    const def = tableDefinition("warden-dev-jobs");
    const [, table] = tableOf(s, TABLE.name);
    const p = table.Properties!;
    expect(p.TableName).toBe("warden-dev-jobs");
    expect(p.BillingMode).toBe("PAY_PER_REQUEST");
    expect(p.KeySchema).toEqual(def.KeySchema);
    expect(new Set(p.AttributeDefinitions)).toEqual(new Set(def.AttributeDefinitions));
    expect(p.TimeToLiveSpecification).toEqual({ AttributeName: TABLE.ttlAttribute, Enabled: true });
    expect(TABLE.ttlAttribute).toBe("expiresAt");
    expect(p.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
    const gsis = Object.fromEntries((p.GlobalSecondaryIndexes as any[]).map((g) => [g.IndexName, g]));
    expect(Object.keys(gsis).sort()).toEqual([TABLE.dueIndex.name, TABLE.ownerIndex.name, TABLE.statusIndex.name, TABLE.workerIndex.name, TABLE.waitIndex.name, TABLE.holdIndex.name].sort());
    expect(Object.keys(gsis).sort()).toEqual(def.GlobalSecondaryIndexes!.map((g) => g.IndexName).sort());
    expect(gsis[TABLE.dueIndex.name]).toEqual({
      IndexName: "due",
      KeySchema: [
        { AttributeName: "dueShard", KeyType: "HASH" },
        { AttributeName: "dueAt", KeyType: "RANGE" },
      ],
      Projection: { ProjectionType: "KEYS_ONLY" },
    });
    // A death event's one Query: the running jobs a worker holds, by id only.
    expect(gsis[TABLE.workerIndex.name]).toEqual({
      IndexName: "byWorker",
      KeySchema: [{ AttributeName: "workerId", KeyType: "HASH" }],
      Projection: { ProjectionType: "KEYS_ONLY" },
    });
    expect(p.AttributeDefinitions).toContainEqual({ AttributeName: "workerId", AttributeType: "S" });
    // The sweeper's oldest unclaimed job per queue: queued jobs by when they became claimable, by id only.
    expect(gsis[TABLE.waitIndex.name]).toEqual({
      IndexName: "byWait",
      KeySchema: [
        { AttributeName: "waitShard", KeyType: "HASH" },
        { AttributeName: "readyAt", KeyType: "RANGE" },
      ],
      Projection: { ProjectionType: "KEYS_ONLY" },
    });
    expect(p.AttributeDefinitions).toContainEqual({ AttributeName: "readyAt", AttributeType: "N" });
    // A resume's or a freed slot's wake: the jobs held by a pause or a limit, longest held first, by id only.
    expect(gsis[TABLE.holdIndex.name]).toEqual({
      IndexName: "byHold",
      KeySchema: [
        { AttributeName: "holdOn", KeyType: "HASH" },
        { AttributeName: "holdRank", KeyType: "RANGE" },
      ],
      Projection: { ProjectionType: "KEYS_ONLY" },
    });
    for (const g of def.GlobalSecondaryIndexes!) expect(gsis[g.IndexName!]).toEqual({ IndexName: g.IndexName, KeySchema: g.KeySchema, Projection: g.Projection });
  });

  it("builds the demo effects table (a string key id, TTL on expiresAt, PITR, on demand) and names it to the two workers alone", () => {
    const [, table] = tableOf(s, EFFECTS_TABLE.name);
    expect(table.Properties!).toMatchObject({
      TableName: "warden-dev-effects",
      BillingMode: "PAY_PER_REQUEST",
      KeySchema: [{ AttributeName: EFFECTS_TABLE.partitionKey, KeyType: "HASH" }],
      AttributeDefinitions: [{ AttributeName: EFFECTS_TABLE.partitionKey, AttributeType: "S" }],
      TimeToLiveSpecification: { AttributeName: EFFECTS_TABLE.ttlAttribute, Enabled: true },
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
    });
    expect(table.Properties!.GlobalSecondaryIndexes).toBeUndefined();
    const named = (stack: string, value: unknown) => label(s, "dev", resolve(s, stack, value));
    const [, worker] = one(s.json.Workers, "AWS::Lambda::Function", (p) => p.FunctionName === "warden-dev-worker");
    expect(named(s.stackNames.Workers, worker.Properties!.Environment.Variables[EFFECTS_TABLE.env])).toBe(`table:${EFFECTS_TABLE.name}`);
    const [, task] = one(s.json.Workers, "AWS::ECS::TaskDefinition");
    const env = (task.Properties!.ContainerDefinitions as any[])[0].Environment as { Name: string; Value: unknown }[];
    expect(named(s.stackNames.Workers, env.find((e) => e.Name === EFFECTS_TABLE.env)?.Value)).toBe(`table:${EFFECTS_TABLE.name}`);
    // What runs no job is not told of it.
    for (const [stack, t] of Object.entries(s.json)) {
      for (const [id, fn] of of(t, "AWS::Lambda::Function")) {
        if (fn.Properties!.FunctionName === "warden-dev-worker") continue;
        expect(fn.Properties!.Environment?.Variables?.[EFFECTS_TABLE.env], `${stack}/${id}`).toBeUndefined();
      }
    }
  });

  it("destroys the tables and logs of a non-production stage", () => {
    for (const [id, table] of tablesOf(s)) {
      expect(table.DeletionPolicy, id).toBe("Delete");
      expect(table.Properties!.DeletionProtectionEnabled, id).toBe(false);
    }
    for (const t of Object.values(s.json)) for (const [, lg] of of(t, "AWS::Logs::LogGroup")) expect(lg.DeletionPolicy).toBe("Delete");
  });

  it("sizes the Fargate worker as configured: stop timeout, CPU, memory, arm64, CloudWatch logs", () => {
    const [, task] = one(s.json.Workers, "AWS::ECS::TaskDefinition");
    const p = task.Properties!;
    expect(p.Cpu).toBe(String(FARGATE_WORKER.cpu));
    expect(p.Memory).toBe(String(FARGATE_WORKER.memoryMb));
    expect(p.RequiresCompatibilities).toEqual(["FARGATE"]);
    expect(p.RuntimePlatform).toEqual({ CpuArchitecture: "ARM64", OperatingSystemFamily: "LINUX" });
    const [container] = p.ContainerDefinitions as any[];
    expect(FARGATE_WORKER.stopTimeoutSeconds).toBeLessThanOrEqual(120);
    expect(container.StopTimeout).toBe(FARGATE_WORKER.stopTimeoutSeconds);
    expect(container.LogConfiguration.LogDriver).toBe("awslogs");
    const env = Object.fromEntries((container.Environment as { Name: string; Value: unknown }[]).map((e) => [e.Name, e.Value]));
    expect(env.WARDEN_WORKER_QUEUE).toBe("large");
    expect(env.WARDEN_MEMORY_LIMIT_MB).toBe(String(FARGATE_WORKER.memoryMb));
    for (const v of ["WARDEN_STAGE", "WARDEN_TABLE", "WARDEN_QUEUES"]) expect(env).toHaveProperty(v);
    // The worker's grace ends before ECS's SIGKILL.
    expect(FARGATE_WORKER.shutdownGraceMs).toBeLessThan(FARGATE_WORKER.stopTimeoutSeconds * 1000);
  });

  it("scales the Fargate service on the messages visible across the large queue's lanes, out by steps and in to zero when idle", () => {
    const t = s.json.Workers;
    const [targetId, target] = one(t, "AWS::ApplicationAutoScaling::ScalableTarget");
    expect(target.Properties!).toMatchObject({ MinCapacity: 0, MaxCapacity: FARGATE_WORKER.maxTasks, ScalableDimension: "ecs:service:DesiredCount" });
    const policies = Object.fromEntries(of(t, "AWS::ApplicationAutoScaling::ScalingPolicy").map(([id, r]) => [id, r.Properties!]));
    for (const p of Object.values(policies)) expect(p.ScalingTargetId).toEqual({ Ref: targetId });
    const alarms = of(t, "AWS::CloudWatch::Alarm").map(([, a]) => a.Properties!);
    expect(alarms).toHaveLength(2);
    for (const a of alarms) {
      const metrics = a.Metrics as Record<string, any>[];
      expect(metrics.find((m) => m.Expression)?.Expression).toBe("SUM([FILL(high, 0), FILL(normal, 0), FILL(low, 0)])");
      const lanes = metrics.filter((m) => m.MetricStat).map((m) => {
        expect(m.MetricStat.Metric).toMatchObject({ MetricName: "ApproximateNumberOfMessagesVisible", Namespace: "AWS/SQS" });
        return String(resourceOf(s, resolve(s, s.stackNames.Workers, m.MetricStat.Metric.Dimensions[0].Value)).Properties!.QueueName);
      });
      expect(lanes.sort()).toEqual(PRIORITIES.map((p) => `warden-dev-${laneName("large", p)}`).sort());
    }
    const policyOf = (a: Record<string, any>) => policies[a.AlarmActions[0].Ref]!.StepScalingPolicyConfiguration;
    const out = alarms.find((a) => a.ComparisonOperator === "GreaterThanOrEqualToThreshold")!;
    expect(out.Threshold).toBe(1);
    expect(policyOf(out).AdjustmentType).toBe("ChangeInCapacity");
    expect(Math.min(...policyOf(out).StepAdjustments.map((x: any) => x.ScalingAdjustment))).toBeGreaterThan(0);
    const idle = alarms.find((a) => a.ComparisonOperator === "LessThanOrEqualToThreshold")!;
    expect(idle.Threshold).toBe(0);
    expect(idle.EvaluationPeriods).toBe(FARGATE_WORKER.scaleInAfterIdleMinutes);
    expect(policyOf(idle)).toMatchObject({ AdjustmentType: "ExactCapacity", StepAdjustments: [{ ScalingAdjustment: 0, MetricIntervalUpperBound: 0 }] });
  });

  it("runs the sweeper every minute with a timeout under a minute and reserved concurrency 1", () => {
    const [fnId, fn] = one(s.json.Sweeper, "AWS::Lambda::Function", (p) => p.FunctionName === "warden-dev-sweeper");
    expect(fn.Properties!.Timeout).toBe(TIMINGS.sweeperTimeoutSeconds);
    expect(fn.Properties!.Timeout).toBeLessThan(60);
    expect(fn.Properties!.ReservedConcurrentExecutions).toBe(1);
    const [, rule] = one(s.json.Sweeper, "AWS::Events::Rule");
    expect(rule.Properties!.ScheduleExpression).toBe("rate(1 minute)");
    expect(rule.Properties!.Targets).toEqual([expect.objectContaining({ Arn: { "Fn::GetAtt": [fnId, "Arn"] } })]);
  });

  const deathsFunction = () => one(s.json.Workers, "AWS::Lambda::Function", (p) => p.FunctionName === "warden-dev-deaths");

  it("runs the deaths function from functions/deaths.ts beside the workers, with the runtime environment, retried twice within 10 minutes when invoked asynchronously", () => {
    const [fnId, fn] = deathsFunction();
    const p = fn.Properties!;
    expect(p.Handler).toBe("functions/deaths.handler");
    expect(p.Runtime).toBe("nodejs22.x");
    expect(p.Architectures).toEqual(["arm64"]);
    expect(p.Code).toEqual({ S3Bucket: expect.any(String), S3Key: expect.stringMatching(/\.zip$/) });
    // The same environment as the sweeper's: what core/runtime.ts loadRuntime reads.
    const [, sweeper] = one(s.json.Sweeper, "AWS::Lambda::Function", (x) => x.FunctionName === "warden-dev-sweeper");
    expect(Object.keys(p.Environment.Variables).sort()).toEqual(Object.keys(sweeper.Properties!.Environment.Variables).sort());
    for (const v of ["WARDEN_STAGE", "WARDEN_TABLE", "WARDEN_QUEUES", "POWERTOOLS_METRICS_NAMESPACE"]) expect(p.Environment.Variables).toHaveProperty(v);
    expect(p.Environment.Variables.WARDEN_STAGE).toBe("dev");
    const [, invoke] = one(s.json.Workers, "AWS::Lambda::EventInvokeConfig");
    expect(invoke.Properties!).toMatchObject({ FunctionName: { Ref: fnId }, MaximumRetryAttempts: 2, MaximumEventAgeInSeconds: 600 });
  });

  it("sends every STOPPED task of the stage's own cluster to the deaths function, retried twice within 10 minutes, undelivered events to an SSL-only, encrypted DLQ", () => {
    const t = s.json.Workers;
    const [fnId] = deathsFunction();
    const [clusterId, cluster] = one(t, "AWS::ECS::Cluster");
    expect(cluster.Properties!.ClusterName).toBe("warden-dev-cluster");
    const rules = of(t, "AWS::Events::Rule");
    expect(rules).toHaveLength(1);
    const [ruleId, rule] = rules[0]!;
    expect(rule.Properties!.EventPattern).toEqual({
      source: ["aws.ecs"],
      "detail-type": ["ECS Task State Change"],
      detail: { clusterArn: [{ "Fn::GetAtt": [clusterId, "Arn"] }], lastStatus: ["STOPPED"] },
    });
    const targets = rule.Properties!.Targets as any[];
    expect(targets).toHaveLength(1);
    const [target] = targets;
    expect(target.Arn).toEqual({ "Fn::GetAtt": [fnId, "Arn"] });
    expect(target.RetryPolicy).toEqual({ MaximumRetryAttempts: 2, MaximumEventAgeInSeconds: 600 });
    const dlqId = target.DeadLetterConfig.Arn["Fn::GetAtt"][0] as string;
    const dlq = t.Resources[dlqId]!;
    expect(dlq.Type).toBe("AWS::SQS::Queue");
    expect(dlq.Properties).toMatchObject({ QueueName: "warden-dev-death-events-dlq", SqsManagedSseEnabled: true, MessageRetentionPeriod: 14 * 24 * 3600 });
    s.templates.Workers.hasResourceProperties("AWS::SQS::QueuePolicy", {
      Queues: [{ Ref: dlqId }],
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: "Deny", Condition: { Bool: { "aws:SecureTransport": "false" } }, Resource: { "Fn::GetAtt": [dlqId, "Arn"] } }),
          Match.objectLike({
            Effect: "Allow",
            Principal: { Service: "events.amazonaws.com" },
            Action: "sqs:SendMessage",
            Condition: { ArnEquals: { "aws:SourceArn": { "Fn::GetAtt": [ruleId, "Arn"] } } },
          }),
        ]),
      },
    });
    // EventBridge may invoke the function for this rule only.
    const permissions = of(t, "AWS::Lambda::Permission").filter(([, x]) => x.Properties!.Principal === "events.amazonaws.com");
    expect(permissions.map(([, x]) => x.Properties)).toEqual([
      { Action: "lambda:InvokeFunction", FunctionName: { "Fn::GetAtt": [fnId, "Arn"] }, Principal: "events.amazonaws.com", SourceArn: { "Fn::GetAtt": [ruleId, "Arn"] } },
    ]);
  });

  it("sends the Lambda worker's crash and timeout lines (each of core's LAMBDA_DEATH_TERMS) from its own log group to the deaths function, which logs may invoke from that group only", () => {
    const t = s.json.Workers;
    const [fnId] = deathsFunction();
    const [, worker] = one(t, "AWS::Lambda::Function", (p) => p.FunctionName === "warden-dev-worker");
    const groupId = worker.Properties!.LoggingConfig.LogGroup.Ref as string;
    expect(t.Resources[groupId]!.Properties!.LogGroupName).toBe("/aws/lambda/warden-dev-worker");
    const [, filter] = one(t, "AWS::Logs::SubscriptionFilter");
    const p = filter.Properties!;
    expect(p.LogGroupName).toEqual({ Ref: groupId });
    expect(p.DestinationArn).toEqual({ "Fn::GetAtt": [fnId, "Arn"] });
    // Any one term matches: `?"Runtime exited" ?"Task timed out" ?"Runtime.ExitError"`.
    expect(LAMBDA_DEATH_TERMS.length).toBeGreaterThan(0);
    for (const term of LAMBDA_DEATH_TERMS) expect(p.FilterPattern, term).toContain(`?"${term}"`);
    expect(p.FilterPattern).toBe(LAMBDA_DEATH_TERMS.map((term) => `?"${term}"`).join(" "));
    const permissions = of(t, "AWS::Lambda::Permission").filter(([, x]) => x.Properties!.Principal === "logs.amazonaws.com");
    expect(permissions).toHaveLength(1);
    const [permissionId, permission] = permissions[0]!;
    expect(permission.Properties).toEqual({
      Action: "lambda:InvokeFunction",
      FunctionName: { "Fn::GetAtt": [fnId, "Arn"] },
      Principal: "logs.amazonaws.com",
      SourceArn: { "Fn::GetAtt": [groupId, "Arn"] },
    });
    // CloudWatch Logs checks the permission when the filter is created.
    expect((filter as { DependsOn?: string[] }).DependsOn).toContain(permissionId);
  });

  it("lets the API alone query the workers' log groups for a job's lines: StartQuery on exactly those groups, which its environment names", () => {
    const workerGroups = ["/aws/lambda/warden-dev-worker", ...QUEUE_NAMES.filter((q) => QUEUES[q].runsOn === "fargate").map((q) => `/warden/dev/${q}-worker`)].sort();
    const groupName = (stack: string, v: unknown) => {
      const r = resolve(s, stack, v);
      const res = resourceOf(s, r);
      expect(res.Type).toBe("AWS::Logs::LogGroup");
      return String(res.Properties!.LogGroupName);
    };
    const byOwner: Record<string, Set<string>> = {};
    for (const st of allStatements(s).filter((x) => x.Effect === "Allow")) {
      const actions = st.Action.filter((a) => JOB_LOG_QUERIES.includes(a));
      if (!actions.length) continue;
      for (const role of st.roles) {
        const set = (byOwner[roleOwner(s.byStackName[st.stack]!, role)] ??= new Set());
        for (const r of st.Resource) {
          // StartQuery on a group's ARN (its GetAtt Arn); the by-id actions on `*`, having no ARN.
          if (r !== "*") expect((resolve(s, st.stack, r) as { attr?: string }).attr).toBe("Arn");
          const target = r === "*" ? "*" : groupName(st.stack, r);
          for (const a of actions) set.add(`${a} ${target}`);
        }
      }
    }
    expect(Object.keys(byOwner)).toEqual(["warden-dev-api"]);
    expect([...byOwner["warden-dev-api"]!].sort()).toEqual([...workerGroups.map((g) => `logs:StartQuery ${g}`), ...QUERY_BY_ID.map((a) => `${a} *`)].sort());
    // The groups it may query are the groups core/runtime.ts is told to query.
    const [, api] = one(s.json.Api, "AWS::Lambda::Function", (p) => p.FunctionName === "warden-dev-api");
    const value = api.Properties!.Environment.Variables.WARDEN_JOB_LOG_GROUPS as { "Fn::Join": [string, unknown[]] };
    const [sep, parts] = value["Fn::Join"];
    const names = parts.map((part) => (typeof part === "string" ? part : groupName(s.stackNames.Api, part))).join(sep);
    expect(loadRuntime({ WARDEN_TABLE: "t", WARDEN_QUEUES: QUEUES_ENV, WARDEN_JOB_LOG_GROUPS: names }).jobLogs.groups.sort()).toEqual(workerGroups);
    // Workers write their lines and never read them back.
    for (const name of ["warden-dev-worker", "warden-dev-sweeper", "warden-dev-deaths"]) {
      const [, fn] = one(s.json[name === "warden-dev-sweeper" ? "Sweeper" : "Workers"], "AWS::Lambda::Function", (p) => p.FunctionName === name);
      expect(fn.Properties!.Environment.Variables.WARDEN_JOB_LOG_GROUPS, name).toBeUndefined();
    }
  });

  it("has exactly one alarm per definition in core/, each wired to the topic, with its description and missing-data rule", () => {
    const t = s.json.Monitoring;
    const [topicId] = one(t, "AWS::SNS::Topic");
    const alarms = of(t, "AWS::CloudWatch::Alarm").map(([, a]) => a.Properties!);
    expect(alarms).toHaveLength(ALARMS.length);
    expect(alarms.map((a) => a.AlarmName).sort()).toEqual(ALARMS.map((d) => `warden-dev-${d.id}`).sort());
    for (const def of ALARMS) {
      const a = alarms.find((x) => x.AlarmName === `warden-dev-${def.id}`)!;
      expect(a.AlarmActions, def.id).toEqual([{ Ref: topicId }]);
      expect(a.AlarmDescription).toBe(def.description);
      expect(a.Threshold).toBe(def.threshold);
      expect(a.ComparisonOperator).toBe(def.comparison);
      expect(a.EvaluationPeriods).toBe(def.evaluationPeriods);
      expect(a.TreatMissingData).toBe(def.missingData);
      const src = def.source;
      if (src.kind === "queue" && src.dlq) {
        expect(a.MetricName).toBe(src.metric);
        const q = resourceOf(s, resolve(s, s.stackNames.Monitoring, a.Dimensions[0].Value));
        expect(q.Properties!.QueueName).toBe(`warden-dev-${src.queue}-dlq`);
      } else if (src.kind === "queue") {
        // A queue's worst lane: the maximum over its three.
        const metrics = a.Metrics as Record<string, any>[];
        expect(metrics.find((m) => m.Expression)?.Expression).toBe("MAX([FILL(high, 0), FILL(normal, 0), FILL(low, 0)])");
        const lanes = metrics.filter((m) => m.MetricStat).map((m) => {
          expect(m.MetricStat.Metric.MetricName).toBe(src.metric);
          return String(resourceOf(s, resolve(s, s.stackNames.Monitoring, m.MetricStat.Metric.Dimensions[0].Value)).Properties!.QueueName);
        });
        expect(lanes.sort()).toEqual(PRIORITIES.map((p) => `warden-dev-${laneName(src.queue, p)}`).sort());
      } else if (src.kind === "lambda") {
        expect(a.MetricName).toBe(src.metric);
        const fn = resourceOf(s, resolve(s, s.stackNames.Monitoring, a.Dimensions[0].Value));
        expect(fn.Properties!.FunctionName).toBe(`warden-dev-${src.fn}`);
      } else {
        // Either the plain metric (a metric with no dimension but Stage) or a Metrics Insights
        // query over every series of that metric name in the stage.
        const [query] = a.Metrics as any[];
        if (query.MetricStat) {
          expect(query.MetricStat).toEqual({
            Metric: { Namespace: METRIC_NAMESPACE, MetricName: src.metric, Dimensions: [{ Name: "Stage", Value: "dev" }] },
            Period: def.periodSeconds,
            Stat: src.statistic,
          });
        } else {
          const dims = Object.entries(src.dims ?? {}).map(([k, v]) => ` AND ${k} = '${v}'`).join("");
          expect(query.Expression).toBe(`SELECT ${src.statistic === "Sum" ? "SUM" : "MAX"}(${src.metric}) FROM "${METRIC_NAMESPACE}" WHERE Stage = 'dev'${dims}`);
          expect(query.Period).toBe(def.periodSeconds);
        }
      }
    }
    const missing = alarms.find((a) => a.AlarmName === "warden-dev-SweeperMissing")!;
    expect(missing.TreatMissingData).toBe("breaching");
    expect(ALARMS.find((d) => d.id === "SweeperMissing")!.description).toMatch(/sweep/i);
    for (const d of ALARMS.filter((x) => x.id.startsWith("DeadLetters"))) expect(d.description).toContain("warden dead-letters");
    expect(ALARMS.filter((d) => d.description.includes("warden stuck")).length).toBeGreaterThan(0);
    // A frozen queue pages on its own wait: one alarm per queue, at the start deadline's threshold.
    for (const q of QUEUE_NAMES) {
      const a = alarms.find((x) => x.AlarmName === `warden-dev-JobsNotStarting-${q}`)!;
      expect(a.Threshold).toBe(notStartingThresholdSeconds(TIMINGS.startDeadlineMs));
      expect(a.Metrics[0].Expression).toBe(`SELECT MAX(OldestUnclaimedSeconds) FROM "${METRIC_NAMESPACE}" WHERE Stage = 'dev' AND Queue = '${q}'`);
      expect(a.AlarmDescription).toMatch(/warden stuck.*warden why/);
    }
    // No stray alarm anywhere: outside Monitoring, only the Fargate scaling alarms, which act on scaling policies.
    for (const [name, tpl] of Object.entries(s.json)) {
      if (name === "Monitoring") continue;
      for (const [, a] of of(tpl, "AWS::CloudWatch::Alarm")) {
        for (const action of a.Properties!.AlarmActions) expect(tpl.Resources[action.Ref]?.Type).toBe("AWS::ApplicationAutoScaling::ScalingPolicy");
      }
    }
  });

  it("has a dashboard with the job flow, stuck jobs, queue depths, memory and claim conflicts", () => {
    const [, dash] = one(s.json.Monitoring, "AWS::CloudWatch::Dashboard");
    const body = JSON.stringify(dash.Properties!.DashboardBody);
    for (const needle of ["Job flow", "JobsSubmitted", "JobsSucceeded", "JobsFailed", "StuckJobs", "OldestUnclaimedSeconds", "UnhelpedRepairs", "ApproximateNumberOfMessagesVisible", "WorkerMemoryPercent", "ClaimConflicts"]) {
      expect(body, needle).toContain(needle);
    }
  });

  it("graphs every lane's depth and oldest message on the dashboard, and every DLQ's depth", () => {
    const queuesOf = (metric: string) =>
      dashboardBody(s, "dev")
        .widgets.flatMap((w) => w.properties.metrics ?? [])
        .filter((m) => m[0] === "AWS/SQS" && m[1] === metric)
        .map((m) => String(m[m.indexOf("QueueName") + 1]));
    const lanes = QUEUE_NAMES.flatMap((q) => PRIORITIES.map((p) => `queue:${laneName(q, p)}`));
    expect(queuesOf("ApproximateNumberOfMessagesVisible").sort()).toEqual([...lanes, ...QUEUE_NAMES.map((q) => `queue:${q}-dlq`)].sort());
    expect(queuesOf("ApproximateAgeOfOldestMessage").sort()).toEqual([...lanes].sort());
  });

  it("subscribes no email when the stage names none", () => {
    expect(of(s.json.Monitoring, "AWS::SNS::Subscription")).toHaveLength(0);
  });

  it("serves the contract's routes over IAM auth (health open), throttled, with access logs and its URL as an output", () => {
    const t = s.json.Api;
    const routes: Record<string, Record<string, any>> = Object.fromEntries(of(t, "AWS::ApiGatewayV2::Route").map(([, r]) => [r.Properties!.RouteKey, r.Properties!]));
    expect(Object.keys(routes).sort()).toEqual(
      [
        "GET /health",
        "POST /jobs",
        "GET /jobs",
        "GET /jobs/{id}",
        "POST /jobs/{id}/cancel",
        "POST /jobs/{id}/retry",
        "GET /jobs/{id}/attempts",
        "GET /jobs/{id}/logs",
        "GET /jobs/{id}/why",
        "GET /jobs/{id}/children",
        "GET /admin/stuck",
        "POST /admin/sweep",
        "GET /admin/dead-letters",
        "POST /admin/dead-letters/redrive",
        "GET /admin/workers",
        "GET /admin/queues",
        "POST /admin/jobs/retry",
        "POST /admin/jobs/cancel",
        "GET /admin/controls",
        "POST /admin/pauses/{target}",
        "DELETE /admin/pauses/{target}",
        "PUT /admin/limits/{key}",
        "DELETE /admin/limits/{key}",
        "POST /schedules",
        "GET /schedules",
        "GET /schedules/{id}",
        "PUT /schedules/{id}",
        "DELETE /schedules/{id}",
        "POST /schedules/{id}/pause",
        "POST /schedules/{id}/resume",
      ].sort(),
    );
    for (const [key, r] of Object.entries(routes)) expect(r.AuthorizationType, key).toBe(key === "GET /health" ? "NONE" : "AWS_IAM");
    const [, stage] = one(t, "AWS::ApiGatewayV2::Stage");
    const cfg = defaultStageConfig("dev");
    expect(stage.Properties!.DefaultRouteSettings).toMatchObject({ ThrottlingRateLimit: cfg.api.throttleRate, ThrottlingBurstLimit: cfg.api.throttleBurst });
    expect(stage.Properties!.AccessLogSettings.DestinationArn).toBeDefined();
    expect(t.Outputs?.ApiUrl).toBeDefined();
    // Every integration targets the one API function.
    const fns = new Set(of(t, "AWS::ApiGatewayV2::Integration").map(([, i]) => JSON.stringify(i.Properties!.IntegrationUri)));
    expect(fns.size).toBe(1);
  });

  it("grants no IAM `*` action, and `*` resources only where AWS has no resource ARN", () => {
    const statements = allStatements(s).filter((st) => st.Effect === "Allow");
    expect(statements.length).toBeGreaterThan(0);
    for (const st of statements) {
      for (const a of st.Action) expect(a, `${st.stack}/${st.policyId}`).not.toContain("*");
      if (st.Resource.includes("*")) {
        // A Logs Insights query's results and its stop name the query's id, not a log group.
        for (const a of st.Action) expect(["cloudwatch:PutMetricData", "ecr:GetAuthorizationToken", ...QUERY_BY_ID], `${st.policyId}: ${a} on *`).toContain(a);
      }
    }
  });

  it("scopes each function's and the task role's DynamoDB, SQS and ECS permissions to exactly its own table, indexes, queues and tasks", () => {
    const got: Record<string, Set<string>> = {};
    for (const st of allStatements(s).filter((x) => x.Effect === "Allow")) {
      const actions = st.Action.filter((a) => a.startsWith("dynamodb:") || a.startsWith("sqs:") || a.startsWith("ecs:"));
      if (!actions.length) continue;
      for (const role of st.roles) {
        const owner = roleOwner(s.byStackName[st.stack]!, role);
        const set = (got[owner] ??= new Set());
        for (const r of st.Resource) {
          const target = tasksLabel(s, st.stack, r) ?? label(s, "dev", resolve(s, st.stack, r));
          for (const a of actions) set.add(`${a} ${target}`);
        }
      }
    }
    const on = (target: string, ...actions: string[]) => actions.map((a) => `${a} ${target}`);
    // A queue's actions hold on each of its lanes.
    const onLanes = (queue: QueueName, ...actions: string[]) => PRIORITIES.flatMap((p) => on(`queue:${laneName(queue, p)}`, ...actions));
    const consume = ["sqs:ReceiveMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueUrl", "sqs:DeleteMessage", "sqs:GetQueueAttributes"];
    const jobWrites = on("table", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:BatchGetItem");
    // The overdue jobs by the due index, and each queue's oldest unclaimed job by the wait index.
    // A job that leaves running hands its concurrency slot to the longest-held job of its key, found by the held index.
    const wakes = on("table/index/byHold", "dynamodb:Query");
    // demo.effects' fenced row per step, read back in a batch: the workers' only access to another table.
    const demoEffects = on(`table:${EFFECTS_TABLE.name}`, "dynamodb:PutItem", "dynamodb:BatchGetItem");
    const sweep = [...jobWrites, ...on("table/index/due", "dynamodb:Query"), ...on("table/index/byWait", "dynamodb:Query"), ...wakes];
    const expected: Record<string, string[]> = {
      "warden-dev-worker": [
        ...jobWrites,
        ...wakes,
        ...demoEffects,
        ...onLanes("default", ...consume, "sqs:SendMessage"),
        ...onLanes("large", "sqs:SendMessage"),
      ],
      "task:warden-dev-large-worker": [
        ...jobWrites,
        ...wakes,
        ...demoEffects,
        ...onLanes("large", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:SendMessage"),
        // Scale-in protection while it holds jobs, on its own cluster's tasks only.
        ...on("tasks:warden-dev-cluster", "ecs:UpdateTaskProtection"),
      ],
      "warden-dev-sweeper": [
        ...sweep,
        ...onLanes("default", "sqs:SendMessage"),
        ...onLanes("large", "sqs:SendMessage"),
        ...on("queue:default-dlq", "sqs:GetQueueAttributes"),
        ...on("queue:large-dlq", "sqs:GetQueueAttributes"),
      ],
      // The deaths function: the dead worker's jobs by the byWorker index, each read and
      // reclaimed, the worker marked dead in the directory, the doorbells of the requeued rung;
      // a child it ends counts in its parent's fan-in, read back in a batch.
      "warden-dev-deaths": [
        ...on("table", "dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:BatchGetItem"),
        ...on("table/index/byWorker", "dynamodb:Query"),
        ...wakes,
        ...onLanes("default", "sqs:SendMessage"),
        ...onLanes("large", "sqs:SendMessage"),
      ],
      "warden-dev-api": [
        ...sweep,
        ...on("table", "dynamodb:PutItem", "dynamodb:BatchGetItem", "dynamodb:DeleteItem"),
        ...on("table/index/byOwner", "dynamodb:Query"),
        ...on("table/index/byStatus", "dynamodb:Query"),
        ...QUEUE_NAMES.flatMap((q) => [
          ...onLanes(q, "sqs:SendMessage", "sqs:GetQueueAttributes"),
          ...on(`queue:${q}-dlq`, "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"),
        ]),
      ],
    };
    expect(Object.keys(got).sort()).toEqual(Object.keys(expected).sort());
    for (const [owner, perms] of Object.entries(expected)) expect([...got[owner]!].sort(), owner).toEqual([...new Set(perms)].sort());
  });

  it("passes cdk-nag's AwsSolutions and Serverless rule packs, each remaining finding suppressed beside its construct with a reason docs/deploy.md repeats", () => {
    expectNoFindings(s);
    const all = suppressions(s);
    // The suppressions this stage carries (review any change here, and in docs/deploy.md).
    expect([...new Set(all.map((x) => `${x.where} ${x.id}`))].sort()).toEqual(
      [
        "Api AWS::ApiGatewayV2::Route AwsSolutions-APIG4",
        // logs:GetQueryResults and logs:StopQuery on `*` (they take no resource ARN).
        "Api AWS::IAM::Policy AwsSolutions-IAM5",
        "Api AWS::IAM::Role AwsSolutions-IAM5",
        "Api AWS::Lambda::Function AwsSolutions-L1",
        "Api AWS::Lambda::Function Serverless-LambdaDLQ",
        "Api AWS::Lambda::Function Serverless-LambdaLatestVersion",
        "Api AWS::Lambda::Function Serverless-LambdaTracing",
        "Queues AWS::SQS::Queue Serverless-SQSRedrivePolicy",
        "Sweeper AWS::Events::Rule Serverless-EventBusDLQ",
        "Sweeper AWS::Lambda::Function AwsSolutions-L1",
        "Sweeper AWS::Lambda::Function Serverless-LambdaDLQ",
        "Sweeper AWS::Lambda::Function Serverless-LambdaLatestVersion",
        "Sweeper AWS::Lambda::Function Serverless-LambdaTracing",
        "Workers AWS::ECS::TaskDefinition AwsSolutions-ECS2",
        "Workers AWS::IAM::Policy AwsSolutions-IAM5",
        "Workers AWS::IAM::Role AwsSolutions-IAM5",
        "Workers AWS::Lambda::EventInvokeConfig Serverless-LambdaAsyncFailureDestination",
        "Workers AWS::Lambda::EventSourceMapping Serverless-LambdaEventSourceMappingDestination",
        "Workers AWS::Lambda::Function AwsSolutions-L1",
        "Workers AWS::Lambda::Function Serverless-LambdaDLQ",
        "Workers AWS::Lambda::Function Serverless-LambdaLatestVersion",
        "Workers AWS::Lambda::Function Serverless-LambdaTracing",
        "Workers AWS::SQS::Queue AwsSolutions-SQS3",
        "Workers AWS::SQS::Queue Serverless-SQSRedrivePolicy",
      ].sort(),
    );
    // Only the DLQs (the two job queues' and the death events') skip a redrive policy, and only the public route skips authorization.
    expect(all.filter((x) => x.id === "Serverless-SQSRedrivePolicy")).toHaveLength(QUEUE_NAMES.length + 1);
    expect(all.filter((x) => x.id === "AwsSolutions-SQS3")).toHaveLength(1);
    expect(all.filter((x) => x.id === "AwsSolutions-APIG4")).toHaveLength(1);
    const doc = readFileSync(path.join(ROOT, "docs/deploy.md"), "utf8");
    for (const x of all) {
      expect(x.reason.length, `${x.where} ${x.id}`).toBeGreaterThan(60);
      expect(doc, `docs/deploy.md lists ${x.id}`).toContain(`\`${x.id}\``);
    }
  });

  it("turns Container Insights on for the cluster", () => {
    const [, cluster] = one(s.json.Workers, "AWS::ECS::Cluster");
    expect(cluster.Properties!.ClusterSettings).toEqual([{ Name: "containerInsights", Value: "enabled" }]);
  });

  it("logs every flow of the VPC to a CloudWatch log group with the stage's retention", () => {
    const t = s.json.Workers;
    const [vpcId] = one(t, "AWS::EC2::VPC");
    const [, flow] = one(t, "AWS::EC2::FlowLog");
    expect(flow.Properties!).toMatchObject({ ResourceType: "VPC", ResourceId: { Ref: vpcId }, TrafficType: "ALL", LogDestinationType: "cloud-watch-logs" });
    const group = t.Resources[flow.Properties!.LogGroupName.Ref]!;
    expect(group.Type).toBe("AWS::Logs::LogGroup");
    expect(group.Properties).toMatchObject({ LogGroupName: "/warden/dev/vpc-flow-log", RetentionInDays: defaultStageConfig("dev").logRetentionDays });
    // The delivery role may write to that group only.
    const roleId = flow.Properties!.DeliverLogsPermissionArn["Fn::GetAtt"][0];
    const statements = allStatements(s).filter((st) => st.stack === s.stackNames.Workers && st.roles.includes(roleId));
    expect(statements.flatMap((st) => st.Resource)).toEqual(statements.map(() => ({ "Fn::GetAtt": [flow.Properties!.LogGroupName.Ref, "Arn"] })));
  });

  it("runs the Fargate container as the image's node user (1000:1000) on a read-only root filesystem, with a writable /tmp volume", () => {
    const [, task] = one(s.json.Workers, "AWS::ECS::TaskDefinition");
    const [container] = task.Properties!.ContainerDefinitions as any[];
    expect(container.ReadonlyRootFilesystem).toBe(true);
    expect(container.User).toBe("1000:1000");
    expect(container.Privileged).toBeUndefined();
    // Fargate has no tmpfs: /tmp is a bind mount on the task's ephemeral storage (no host path, no EFS).
    expect(container.MountPoints).toEqual([{ ContainerPath: "/tmp", ReadOnly: false, SourceVolume: "scratch" }]);
    expect(task.Properties!.Volumes).toEqual([{ Name: "scratch" }]);
    // 1000:1000 is the `node` user of the official node images the Dockerfile builds on, and the
    // image declares /tmp a volume, so ECS fills the mount from it and it keeps /tmp's 1777 mode.
    const dockerfile = readFileSync(path.join(ROOT, "Dockerfile"), "utf8");
    expect(dockerfile).toMatch(/^FROM node:22-slim$/m);
    expect(dockerfile).toMatch(/^USER node$/m);
    expect(dockerfile).toMatch(/^VOLUME \["\/tmp"\]$/m);
  });

  it("gives each function a role of its own that may write only to its own log group, and no role an AWS-managed policy", () => {
    const all = Object.values(s.byStackName);
    for (const t of all) for (const [id, role] of of(t, "AWS::IAM::Role")) expect(role.Properties!.ManagedPolicyArns, id).toBeUndefined();
    expect(JSON.stringify(all)).not.toContain("AWSLambdaBasicExecutionRole");
    const fns = Object.values(s.stackNames).flatMap((stack) => of(s.byStackName[stack]!, "AWS::Lambda::Function").map(([, fn]) => ({ stack, fn })));
    // Warden's four functions and nothing else: SST's unused CustomResourceHandler is gone from every stack.
    expect(fns.map(({ fn }) => fn.Properties!.FunctionName).sort()).toEqual(["warden-dev-api", "warden-dev-deaths", "warden-dev-sweeper", "warden-dev-worker"]);
    const roles = new Set<string>();
    for (const { stack, fn } of fns) {
      const p = fn.Properties!;
      const roleId = p.Role["Fn::GetAtt"][0] as string;
      roles.add(`${stack}/${roleId}`);
      const groupId = p.LoggingConfig.LogGroup.Ref as string;
      expect(s.byStackName[stack]!.Resources[groupId]!.Properties!.LogGroupName).toBe(`/aws/lambda/${p.FunctionName}`);
      // Writes: the API's Logs Insights queries (a read, asserted below) are not counted here.
      const logs = allStatements(s).filter((st) => st.stack === stack && st.roles.includes(roleId) && st.Action.some((a) => a.startsWith("logs:") && !JOB_LOG_QUERIES.includes(a)));
      expect(logs, p.FunctionName).toHaveLength(1);
      expect([...logs[0]!.Action].sort()).toEqual(["logs:CreateLogStream", "logs:PutLogEvents"]);
      expect(logs[0]!.Resource).toEqual([{ "Fn::GetAtt": [groupId, "Arn"] }]);
    }
    expect(roles.size).toBe(fns.length);
  });

  it("leaves no reference to a resource a template lacks (the dropped handlers included)", () => {
    for (const [stack, t] of Object.entries(s.byStackName)) {
      const known = new Set([...Object.keys(t.Resources), ...Object.keys((t as { Parameters?: object }).Parameters ?? {})]);
      for (const id of referencedIds(t)) if (!id.startsWith("AWS::")) expect(known.has(id), `${stack} refers to ${id}`).toBe(true);
    }
  });

  it("writes the API's access log as JSON that is valid before substitution too", () => {
    const [, stage] = one(s.json.Api, "AWS::ApiGatewayV2::Stage");
    const format = JSON.parse(stage.Properties!.AccessLogSettings.Format);
    expect(format).toMatchObject({ requestId: "$context.requestId", routeKey: "$context.routeKey", status: "$context.status", principal: "$context.identity.userArn" });
  });

  it("creates no KMS key without the stage's kms option: the tables, queues and topic use AWS's own keys", () => {
    for (const t of Object.values(s.json)) expect(of(t, "AWS::KMS::Key")).toHaveLength(0);
    for (const [id, table] of tablesOf(s)) expect(table.Properties!.SSESpecification, id).toBeUndefined();
    for (const [, q] of of(s.json.Queues, "AWS::SQS::Queue")) expect(q.Properties!.KmsMasterKeyId).toBeUndefined();
    const [, topic] = one(s.json.Monitoring, "AWS::SNS::Topic");
    expect(topic.Properties!.KmsMasterKeyId).toBeUndefined();
    expect(Object.keys(kmsGrants(s, "dev"))).toEqual([]);
  });

  // Since the rule packs: each stack lost SST's unused CustomResourceHandler (a function and its
  // role); Workers gained the VPC flow log (its log group, role and policy), then the deaths
  // function (its role, policy, log group and async-invoke config), the task-stopped rule and its
  // DLQ (with the queue's policy), the worker's subscription filter, and a permission each for
  // EventBridge and CloudWatch Logs to invoke it. Monitoring gained JobsNotStarting-<queue>.
  // Storage gained the demo effects table.
  it("keeps each stack's resource counts (review any change here)", () => {
    const counts = Object.fromEntries(Object.entries(s.json).map(([name, t]) => [name, resourceCounts(t)]));
    expect(counts).toMatchInlineSnapshot(`
      {
        "Api": {
          "AWS::ApiGatewayV2::Api": 1,
          "AWS::ApiGatewayV2::Integration": 30,
          "AWS::ApiGatewayV2::Route": 30,
          "AWS::ApiGatewayV2::Stage": 1,
          "AWS::IAM::Policy": 1,
          "AWS::IAM::Role": 1,
          "AWS::Lambda::Function": 1,
          "AWS::Lambda::Permission": 30,
          "AWS::Logs::LogGroup": 2,
          "AWS::SSM::Parameter": 2,
        },
        "Monitoring": {
          "AWS::CloudWatch::Alarm": 20,
          "AWS::CloudWatch::Dashboard": 1,
          "AWS::SNS::Topic": 1,
          "AWS::SNS::TopicPolicy": 1,
        },
        "Queues": {
          "AWS::SQS::Queue": 8,
          "AWS::SQS::QueuePolicy": 8,
        },
        "Storage": {
          "AWS::DynamoDB::Table": 2,
        },
        "Sweeper": {
          "AWS::Events::Rule": 1,
          "AWS::IAM::Policy": 1,
          "AWS::IAM::Role": 1,
          "AWS::Lambda::Function": 1,
          "AWS::Lambda::Permission": 1,
          "AWS::Logs::LogGroup": 1,
          "AWS::SSM::Parameter": 1,
        },
        "Workers": {
          "AWS::ApplicationAutoScaling::ScalableTarget": 1,
          "AWS::ApplicationAutoScaling::ScalingPolicy": 2,
          "AWS::CloudWatch::Alarm": 2,
          "AWS::EC2::FlowLog": 1,
          "AWS::EC2::InternetGateway": 1,
          "AWS::EC2::Route": 2,
          "AWS::EC2::RouteTable": 2,
          "AWS::EC2::SecurityGroup": 1,
          "AWS::EC2::Subnet": 2,
          "AWS::EC2::SubnetRouteTableAssociation": 2,
          "AWS::EC2::VPC": 1,
          "AWS::EC2::VPCGatewayAttachment": 1,
          "AWS::ECS::Cluster": 1,
          "AWS::ECS::Service": 1,
          "AWS::ECS::TaskDefinition": 1,
          "AWS::Events::Rule": 1,
          "AWS::IAM::Policy": 5,
          "AWS::IAM::Role": 6,
          "AWS::Lambda::EventInvokeConfig": 1,
          "AWS::Lambda::EventSourceMapping": 3,
          "AWS::Lambda::Function": 2,
          "AWS::Lambda::Permission": 2,
          "AWS::Logs::LogGroup": 4,
          "AWS::Logs::SubscriptionFilter": 1,
          "AWS::SQS::Queue": 1,
          "AWS::SQS::QueuePolicy": 1,
          "AWS::SSM::Parameter": 2,
        },
      }
    `);
  });
});

describe("a prod stage", () => {
  let s: Synthesized;
  beforeAll(async () => {
    s = await synthStage("prod");
  }, 60_000);

  it("passes cdk-nag's AwsSolutions and Serverless rule packs, and creates no KMS key (the option is off)", () => {
    expectNoFindings(s);
    for (const t of Object.values(s.json)) expect(of(t, "AWS::KMS::Key")).toHaveLength(0);
  });

  it("retains the tables with deletion protection and PITR, and keeps its logs", () => {
    expect(tableOf(s, TABLE.name)[1].Properties!.TableName).toBe("warden-prod-jobs");
    expect(tableOf(s, EFFECTS_TABLE.name)[1].Properties!.TableName).toBe("warden-prod-effects");
    for (const [id, table] of tablesOf(s)) {
      expect(table.DeletionPolicy, id).toBe("Retain");
      expect(table.UpdateReplacePolicy, id).toBe("Retain");
      expect(table.Properties!.DeletionProtectionEnabled, id).toBe(true);
      expect(table.Properties!.PointInTimeRecoverySpecification, id).toEqual({ PointInTimeRecoveryEnabled: true });
    }
    for (const t of Object.values(s.json)) for (const [, lg] of of(t, "AWS::Logs::LogGroup")) expect(lg.DeletionPolicy).toBe("Retain");
  });

  it("applies prod's overrides: a warm Fargate task, more Lambda concurrency, higher API limits", () => {
    const cfg = stageConfig("prod");
    expect(cfg.production).toBe(true);
    const [, target] = one(s.json.Workers, "AWS::ApplicationAutoScaling::ScalableTarget");
    expect(target.Properties!).toMatchObject({ MinCapacity: cfg.fargate.minTasks, MaxCapacity: cfg.fargate.maxTasks });
    // prod's 100, split over the default queue's lanes.
    expect(cfg.worker.maxConcurrency).toBe(100);
    expect(Object.fromEntries(lambdaMappings(s).map(({ queue, cap }) => [queue, cap]))).toEqual({ "warden-prod-default-high": 25, "warden-prod-default": 50, "warden-prod-default-low": 25 });
    const [, stage] = one(s.json.Api, "AWS::ApiGatewayV2::Stage");
    expect(stage.Properties!.DefaultRouteSettings).toMatchObject({ ThrottlingRateLimit: cfg.api.throttleRate });
  });
});

describe("a stage with a JWT issuer, an alarm email, admins and bigger workers", () => {
  let s: Synthesized;
  const issuer = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Example";
  beforeAll(async () => {
    s = await synthStage("team", {
      overrides: {
        jwt: { issuer, audience: ["warden-cli"] },
        alarmEmail: "oncall@example.com",
        adminPrincipals: ["arn:aws:iam::123456789012:role/ops"],
        worker: { memoryMb: 2048, maxConcurrency: 10 },
        fargate: { cpu: 2048, memoryMb: 8192, minTasks: 0, maxTasks: 3 },
      },
    });
  }, 60_000);

  it("passes cdk-nag's AwsSolutions and Serverless rule packs (the email subscription's missing DLQ suppressed with a reason)", () => {
    expectNoFindings(s);
    expect(suppressions(s).filter((x) => x.where === "Monitoring AWS::SNS::Subscription").map((x) => x.id)).toEqual(["Serverless-SNSRedrivePolicy"]);
  });

  it("uses a JWT authorizer on every route but health", () => {
    const [authId, auth] = one(s.json.Api, "AWS::ApiGatewayV2::Authorizer");
    expect(auth.Properties!).toMatchObject({ AuthorizerType: "JWT", JwtConfiguration: { Issuer: issuer, Audience: ["warden-cli"] } });
    for (const [, r] of of(s.json.Api, "AWS::ApiGatewayV2::Route")) {
      const p = r.Properties!;
      if (p.RouteKey === "GET /health") expect(p.AuthorizationType).toBe("NONE");
      else expect(p).toMatchObject({ AuthorizationType: "JWT", AuthorizerId: { Ref: authId } });
    }
    const [, fn] = one(s.json.Api, "AWS::Lambda::Function", (p) => p.FunctionName === "warden-team-api");
    expect(fn.Properties!.Environment.Variables.WARDEN_ADMIN_PRINCIPALS).toBe("arn:aws:iam::123456789012:role/ops");
  });

  it("subscribes the alarm email to the topic", () => {
    const [topicId] = one(s.json.Monitoring, "AWS::SNS::Topic");
    s.templates.Monitoring.hasResourceProperties("AWS::SNS::Subscription", { Protocol: "email", Endpoint: "oncall@example.com", TopicArn: { Ref: topicId } });
  });

  it("sizes the workers from the stage config", () => {
    const [, fn] = one(s.json.Workers, "AWS::Lambda::Function", (p) => p.FunctionName === "warden-team-worker");
    expect(fn.Properties!.MemorySize).toBe(2048);
    // 10 in all: high and low keep Lambda's minimum of 2 each, normal takes the rest.
    expect(Object.fromEntries(lambdaMappings(s).map(({ queue, cap }) => [queue, cap]))).toEqual({ "warden-team-default-high": 2, "warden-team-default": 6, "warden-team-default-low": 2 });
    const [, task] = one(s.json.Workers, "AWS::ECS::TaskDefinition");
    expect(task.Properties!).toMatchObject({ Cpu: "2048", Memory: "8192" });
    const [, target] = one(s.json.Workers, "AWS::ApplicationAutoScaling::ScalableTarget");
    expect(target.Properties!).toMatchObject({ MinCapacity: 0, MaxCapacity: 3 });
  });
});

describe("a production stage with customer-managed KMS keys (`kms`, WARDEN_KMS=true)", () => {
  let s: Synthesized;
  beforeAll(async () => {
    s = await synthStage("vault", { overrides: { kms: true, production: true } });
  }, 60_000);

  const keyOf = (stack: StackName) => {
    const [id, key] = one(s.json[stack], "AWS::KMS::Key");
    return { id, key, arn: { "Fn::GetAtt": [id, "Arn"] } };
  };

  it("passes cdk-nag's AwsSolutions and Serverless rule packs", () => {
    expectNoFindings(s);
  });

  it("has one rotated key per stack that holds data, each with its alias, retained with the production table", () => {
    const keys = (Object.keys(STACKS) as StackName[]).filter((n) => of(s.json[n], "AWS::KMS::Key").length > 0);
    expect(keys.sort()).toEqual(["Monitoring", "Queues", "Storage"]);
    for (const [stack, purpose] of [["Storage", "table"], ["Queues", "queues"], ["Monitoring", "alarms"]] as const) {
      const { id, key } = keyOf(stack);
      expect(key.Properties!.EnableKeyRotation, stack).toBe(true);
      expect(key.DeletionPolicy, stack).toBe("Retain");
      s.templates[stack].hasResourceProperties("AWS::KMS::Alias", { AliasName: `alias/warden-vault-${purpose}`, TargetKeyId: { "Fn::GetAtt": [id, "Arn"] } });
    }
  });

  it("encrypts the tables, every queue and DLQ, and the alarm topic with their stack's key", () => {
    for (const [id, table] of tablesOf(s)) expect(table.Properties!.SSESpecification, id).toEqual({ SSEEnabled: true, SSEType: "KMS", KMSMasterKeyId: keyOf("Storage").arn });
    const queues = of(s.json.Queues, "AWS::SQS::Queue");
    expect(queues).toHaveLength((PRIORITIES.length + 1) * QUEUE_NAMES.length);
    for (const [id, q] of queues) {
      expect(q.Properties!.KmsMasterKeyId, id).toEqual(keyOf("Queues").arn);
      expect(q.Properties!.SqsManagedSseEnabled, id).toBeUndefined();
    }
    const [, topic] = one(s.json.Monitoring, "AWS::SNS::Topic");
    expect(topic.Properties!.KmsMasterKeyId).toEqual(keyOf("Monitoring").arn);
  });

  it("lets CloudWatch use the topic's key for this stage's alarms only", () => {
    const statements = keyOf("Monitoring").key.Properties!.KeyPolicy.Statement as any[];
    const cw = statements.filter((st) => st.Principal?.Service === "cloudwatch.amazonaws.com");
    expect(cw).toHaveLength(1);
    expect(cw[0].Action).toEqual(["kms:Decrypt", "kms:GenerateDataKey*"]);
    expect(cw[0].Condition.StringEquals).toEqual({ "aws:SourceAccount": "123456789012" });
    expect(JSON.stringify(cw[0].Condition.ArnLike["aws:SourceArn"])).toContain(":cloudwatch:us-east-1:123456789012:alarm:warden-vault-*");
    // The other keys name no service: only the account's IAM policies grant their use.
    for (const stack of ["Storage", "Queues"] as const) {
      for (const st of keyOf(stack).key.Properties!.KeyPolicy.Statement as any[]) expect(st.Principal, stack).toEqual({ AWS: expect.anything() });
    }
  });

  it("grants each principal exactly the key actions its table and queue access needs, on those keys only", () => {
    const table = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"].map((a) => `${a} key:Storage`);
    // Every principal both sends to a queue (GenerateDataKey + Decrypt) and receives from one or reads the table.
    const queues = ["kms:Decrypt", "kms:GenerateDataKey"].map((a) => `${a} key:Queues`);
    const expected = [...table, ...queues].sort();
    expect(kmsGrants(s, "vault")).toEqual({
      "warden-vault-worker": expected,
      "warden-vault-api": expected,
      "warden-vault-sweeper": expected,
      "warden-vault-deaths": expected,
      "task:warden-vault-large-worker": expected,
    });
    for (const st of allStatements(s)) for (const a of st.Action) expect(a, st.policyId).not.toContain("*");
  });
});

describe("a Lambda worker cap too small for its lanes", () => {
  it("is refused at synthesis below 2 per lane mapping (Lambda's minimum), and at exactly that gives each lane 2", async () => {
    // Refused by the stage's validation, before any construct: the message says what the cap must be.
    await expect(synthStage("tiny", { overrides: { worker: { memoryMb: 1024, maxConcurrency: 5 } } })).rejects.toThrow(/maxConcurrency 5 cannot be split over the 3 priority lanes' event source mappings, each at least 2: give 6 or more/);
    expect(() => stageConfig("dev", { env: { WARDEN_WORKER_MAX_CONCURRENCY: "4" } })).toThrow(/give 6 or more/);
    const s = await synthStage("small", { overrides: { worker: { memoryMb: 1024, maxConcurrency: 6 } } });
    expect(Object.fromEntries(lambdaMappings(s).map(({ queue, cap }) => [queue, cap]))).toEqual({ "warden-small-default-high": 2, "warden-small-default": 2, "warden-small-default-low": 2 });
    expectNoFindings(s);
  }, 60_000);
});

describe("the rule packs", () => {
  it("do run on every synthesis: a queue with no DLQ, no TLS policy and no encryption is reported", async () => {
    const s = await synthStage("canary", {
      stacks: async (app) => {
        await sstConfig.stacks(app);
        const queues = app.node.findChild(app.logicalPrefixedName("Queues"));
        new sqs.Queue(queues, "Careless", { encryption: sqs.QueueEncryption.UNENCRYPTED });
      },
    });
    const rules = new Set(s.findings.filter((f) => f.path.includes("/Careless/")).map((f) => f.message.split(/[[:]/)[0]));
    expect([...rules].sort()).toEqual(expect.arrayContaining(["AwsSolutions-SQS3", "AwsSolutions-SQS4", "Serverless-SQSRedrivePolicy"]));
    expect(s.findings.every((f) => f.path.includes("/Careless/"))).toBe(true);
  }, 60_000);
});

describe("the Fargate image", () => {
  it("synthesizes from a Dockerfile as an ECR asset without running Docker", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "warden-image-"));
    writeFileSync(path.join(dir, "Dockerfile"), "FROM public.ecr.aws/docker/library/node:22-slim\n");
    const s = await synthStage("img", { overrides: { fargate: { image: { kind: "asset", directory: dir, file: "Dockerfile" } } } });
    const [, task] = one(s.json.Workers, "AWS::ECS::TaskDefinition");
    const image = JSON.stringify((task.Properties!.ContainerDefinitions as any[])[0].Image);
    expect(image).toContain("cdk-hnb659fds-container-assets-123456789012-us-east-1");
    // Pulling a private asset image is the one `*`-resource grant ECR requires.
    const pull = allStatements(s).filter((st) => st.Action.includes("ecr:GetAuthorizationToken"));
    expect(pull).toHaveLength(1);
    expect(roleOwner(s.byStackName[pull[0]!.stack]!, pull[0]!.roles[0]!)).toBe("execution:warden-img-large-worker");
    // That `*` is the one the rule packs are told about (AwsSolutions-IAM5 on the execution role).
    expectNoFindings(s);
  });

  it("defaults to the repository's Dockerfile", () => {
    expect(defaultStageConfig("dev").fargate.image).toEqual({ kind: "asset", directory: ".", file: "Dockerfile" });
  });
});

describe("sst.config.ts through SST's own loader", () => {
  it("bundles with esbuild as `sst deploy` does and builds every stack from the environment's stage config", async () => {
    const { load } = await import("sst/stacks/build.js");
    const [, config] = (await load(path.join(ROOT, "sst.config.ts"), false)) as [unknown, SSTConfig];
    expect(await config.config({})).toMatchObject({ name: "warden" });
    // The loaded bundle carries its own copy of stacks/, so its stage config comes from WARDEN_* only.
    const saved = process.env.WARDEN_FARGATE_IMAGE;
    process.env.WARDEN_FARGATE_IMAGE = TEST_IMAGE.image;
    try {
      const s = await synthStage("viacli", { stacks: config.stacks });
      expect(Object.values(s.stackNames).sort()).toEqual(["Api", "Monitoring", "Queues", "Storage", "Sweeper", "Workers"].map((n) => `viacli-warden-${n}`).sort());
      expect(of(s.json.Monitoring, "AWS::CloudWatch::Alarm")).toHaveLength(ALARMS.length);
      expectNoFindings(s);
    } finally {
      if (saved === undefined) delete process.env.WARDEN_FARGATE_IMAGE;
      else process.env.WARDEN_FARGATE_IMAGE = saved;
    }
  }, 60_000);
});

describe("stage configuration", () => {
  it("leaves KMS keys off unless the stage or WARDEN_KMS asks for them", () => {
    expect(stageConfig("dev").kms).toBe(false);
    expect(stageConfig("prod").kms).toBe(false);
    expect(stageConfig("dev", { env: { WARDEN_KMS: "true" } }).kms).toBe(true);
    expect(stageConfig("dev", { env: { WARDEN_KMS: "false" } }).kms).toBe(false);
    expect(stageConfig("dev", { overrides: { kms: true } }).kms).toBe(true);
  });

  it("marks prod as production and other stages as disposable", () => {
    expect(stageConfig("prod").production).toBe(true);
    expect(stageConfig("dev").production).toBe(false);
    expect(stageConfig("staging", { env: { WARDEN_PRODUCTION: "true" } }).production).toBe(true);
  });

  it("reads overrides from WARDEN_* variables", () => {
    const c = stageConfig("dev", {
      env: {
        WARDEN_ALARM_EMAIL: "a@b.co",
        WARDEN_JWT_ISSUER: "https://issuer.example",
        WARDEN_JWT_AUDIENCE: "x, y",
        WARDEN_WORKER_MEMORY_MB: "1536",
        WARDEN_FARGATE_MIN_TASKS: "1",
        WARDEN_ADMIN_PRINCIPALS: "arn:a,arn:b",
        WARDEN_FARGATE_IMAGE: "example.com/warden:1",
      },
    });
    expect(c.alarmEmail).toBe("a@b.co");
    expect(c.jwt).toEqual({ issuer: "https://issuer.example", audience: ["x", "y"] });
    expect(c.worker.memoryMb).toBe(1536);
    expect(c.worker.maxConcurrency).toBe(LAMBDA_WORKER.maxConcurrency);
    expect(c.fargate.minTasks).toBe(1);
    expect(c.fargate.image).toEqual({ kind: "registry", image: "example.com/warden:1" });
    expect(c.adminPrincipals).toEqual(["arn:a", "arn:b"]);
    expect(envOverrides({})).toEqual({});
  });

  it("refuses what AWS would refuse at deploy time", () => {
    expect(() => stageConfig("dev", { overrides: { fargate: { cpu: 1024, memoryMb: 512 } } })).toThrow(/no task size/);
    expect(() => stageConfig("dev", { overrides: { worker: { maxConcurrency: 1 } } })).toThrow(/maxConcurrency/);
    expect(() => stageConfig("dev", { overrides: { fargate: { minTasks: 5, maxTasks: 2 } } })).toThrow(/minTasks/);
    expect(() => stageConfig("dev", { env: { WARDEN_JWT_ISSUER: "https://x" } })).toThrow(/AUDIENCE/);
    expect(() => stageConfig("dev", { env: { WARDEN_WORKER_MEMORY_MB: "lots" } })).toThrow(/whole number/);
    expect(() => stageConfig("dev", { overrides: { alarmEmail: "nope" } })).toThrow(/email/);
  });
});

