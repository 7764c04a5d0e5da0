/**
 * The whole stage, synthesized offline by sst.config.ts's own `stacks` and held to the issue's
 * promises with aws-cdk-lib/assertions: DLQs and visibility timeouts, the table's TTL, sparse
 * index, PITR and retention, the Fargate worker's stop timeout and scaling, the sweeper's
 * schedule, one alarm per definition in core/, least privilege, and a snapshot of each stack's
 * resource counts. Every expected value comes from core/ or is stated here, never read back from
 * the stacks' own code.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { Match } from "aws-cdk-lib/assertions";
import { beforeAll, describe, expect, it } from "vitest";
import { ALARMS } from "../core/alarms.js";
import { FARGATE_WORKER, LAMBDA_WORKER, QUEUE_NAMES, QUEUES, TABLE, TIMINGS } from "../core/config.js";
import { METRIC_NAMESPACE } from "../core/metrics.js";
import { tableDefinition } from "../core/schema.js";
import { defaultStageConfig, envOverrides, stageConfig } from "../stacks/stage-config.js";
import type { SSTConfig } from "sst";
import { ROOT, synthStage, TEST_IMAGE, type CfnTemplate, type Synthesized } from "./support/sst.js";
import { allStatements, resolve, resourceCounts, resourceOf, roleOwner, type Resolved } from "./support/sst-refs.js";

const of = (t: CfnTemplate, type: string) => Object.entries(t.Resources).filter(([, r]) => r.Type === type);
const one = (t: CfnTemplate, type: string, where: (p: Record<string, any>) => boolean = () => true) => {
  const found = of(t, type).filter(([, r]) => where(r.Properties ?? {}));
  expect(found, `exactly one ${type}`).toHaveLength(1);
  return found[0]!;
};

/** "table", "table/index/due", "queue:default", "queue:large-dlq" ... for a resolved resource. */
function label(s: Synthesized, stage: string, r: Resolved): string {
  if ("literal" in r) return r.literal;
  const res = resourceOf(s, r);
  if (res.Type === "AWS::DynamoDB::Table") return `table${r.suffix}`;
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

describe("a dev stage, bundled as `sst deploy` bundles it", () => {
  let s: Synthesized;
  beforeAll(async () => {
    s = await synthStage("dev", { bundle: true });
  }, 60_000);

  it("gives every queue a DLQ with core's maxReceiveCount, 14-day DLQ retention, SSE and an SSL-only policy", () => {
    const t = s.json.Queues;
    for (const name of QUEUE_NAMES) {
      const [, queue] = one(t, "AWS::SQS::Queue", (p) => p.QueueName === `warden-dev-${name}`);
      const [dlqId, dlq] = one(t, "AWS::SQS::Queue", (p) => p.QueueName === `warden-dev-${name}-dlq`);
      expect(queue.Properties!.RedrivePolicy).toEqual({ deadLetterTargetArn: { "Fn::GetAtt": [dlqId, "Arn"] }, maxReceiveCount: QUEUES[name].maxReceiveCount });
      expect(dlq.Properties!.MessageRetentionPeriod).toBe(14 * 24 * 3600);
      expect(queue.Properties!.VisibilityTimeout).toBe(QUEUES[name].visibilityTimeoutSeconds);
    }
    const queues = of(t, "AWS::SQS::Queue");
    expect(queues).toHaveLength(2 * QUEUE_NAMES.length);
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

  it("keeps every consumed queue's visibility timeout at least six times its consumer's timeout, reporting batch item failures", () => {
    const mappings = Object.entries(s.byStackName).flatMap(([stack, t]) => of(t, "AWS::Lambda::EventSourceMapping").map(([, m]) => ({ stack, m })));
    const lambdaQueues = QUEUE_NAMES.filter((q) => QUEUES[q].runsOn === "lambda");
    expect(mappings).toHaveLength(lambdaQueues.length);
    const consumed: string[] = [];
    for (const { stack, m } of mappings) {
      const p = m.Properties!;
      const queue = resourceOf(s, resolve(s, stack, p.EventSourceArn));
      const fn = resourceOf(s, resolve(s, stack, p.FunctionName));
      expect(queue.Properties!.VisibilityTimeout).toBeGreaterThanOrEqual(6 * fn.Properties!.Timeout);
      expect(p.FunctionResponseTypes).toEqual(["ReportBatchItemFailures"]);
      expect(p.BatchSize).toBe(LAMBDA_WORKER.batchSize);
      expect(p.MaximumBatchingWindowInSeconds).toBe(LAMBDA_WORKER.maxBatchingWindowSeconds);
      expect(p.ScalingConfig).toEqual({ MaximumConcurrency: LAMBDA_WORKER.maxConcurrency });
      consumed.push(String(queue.Properties!.QueueName));
    }
    expect(consumed.sort()).toEqual(lambdaQueues.map((q) => `warden-dev-${q}`).sort());
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
      Object.fromEntries(QUEUE_NAMES.map((q) => [q, { queue: `queue:${q}`, dlq: `queue:${q}-dlq` }])),
    );
  });

  it("builds the table from core's definition: keys, the sparse due index (ALL), INCLUDE listings, TTL on expiresAt, PITR, on demand", () => {
    const def = tableDefinition("warden-dev-jobs");
    const [, table] = one(s.json.Storage, "AWS::DynamoDB::Table");
    const p = table.Properties!;
    expect(p.TableName).toBe("warden-dev-jobs");
    expect(p.BillingMode).toBe("PAY_PER_REQUEST");
    expect(p.KeySchema).toEqual(def.KeySchema);
    expect(new Set(p.AttributeDefinitions)).toEqual(new Set(def.AttributeDefinitions));
    expect(p.TimeToLiveSpecification).toEqual({ AttributeName: TABLE.ttlAttribute, Enabled: true });
    expect(TABLE.ttlAttribute).toBe("expiresAt");
    expect(p.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
    const gsis = Object.fromEntries((p.GlobalSecondaryIndexes as any[]).map((g) => [g.IndexName, g]));
    expect(Object.keys(gsis).sort()).toEqual([TABLE.dueIndex.name, TABLE.ownerIndex.name, TABLE.statusIndex.name].sort());
    expect(gsis[TABLE.dueIndex.name]).toEqual({
      IndexName: "due",
      KeySchema: [
        { AttributeName: "dueShard", KeyType: "HASH" },
        { AttributeName: "dueAt", KeyType: "RANGE" },
      ],
      Projection: { ProjectionType: "ALL" },
    });
    for (const g of def.GlobalSecondaryIndexes!) expect(gsis[g.IndexName!]).toEqual({ IndexName: g.IndexName, KeySchema: g.KeySchema, Projection: g.Projection });
  });

  it("destroys the table and logs of a non-production stage", () => {
    const [, table] = one(s.json.Storage, "AWS::DynamoDB::Table");
    expect(table.DeletionPolicy).toBe("Delete");
    expect(table.Properties!.DeletionProtectionEnabled).toBe(false);
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

  it("scales the Fargate service on the large queue's visible messages, out by steps and in to zero when idle", () => {
    const t = s.json.Workers;
    const [targetId, target] = one(t, "AWS::ApplicationAutoScaling::ScalableTarget");
    expect(target.Properties!).toMatchObject({ MinCapacity: 0, MaxCapacity: FARGATE_WORKER.maxTasks, ScalableDimension: "ecs:service:DesiredCount" });
    const policies = Object.fromEntries(of(t, "AWS::ApplicationAutoScaling::ScalingPolicy").map(([id, r]) => [id, r.Properties!]));
    for (const p of Object.values(policies)) expect(p.ScalingTargetId).toEqual({ Ref: targetId });
    const alarms = of(t, "AWS::CloudWatch::Alarm").map(([, a]) => a.Properties!);
    expect(alarms).toHaveLength(2);
    for (const a of alarms) {
      expect(a.MetricName).toBe("ApproximateNumberOfMessagesVisible");
      expect(a.Namespace).toBe("AWS/SQS");
      const q = resourceOf(s, resolve(s, s.stackNames.Workers, a.Dimensions[0].Value));
      expect(q.Properties!.QueueName).toBe("warden-dev-large");
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
      if (src.kind === "queue") {
        expect(a.MetricName).toBe(src.metric);
        const q = resourceOf(s, resolve(s, s.stackNames.Monitoring, a.Dimensions[0].Value));
        expect(q.Properties!.QueueName).toBe(`warden-dev-${src.queue}${src.dlq ? "-dlq" : ""}`);
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
          expect(query.Expression).toBe(`SELECT ${src.statistic === "Sum" ? "SUM" : "MAX"}(${src.metric}) FROM "${METRIC_NAMESPACE}" WHERE Stage = 'dev'`);
          expect(query.Period).toBe(def.periodSeconds);
        }
      }
    }
    const missing = alarms.find((a) => a.AlarmName === "warden-dev-SweeperMissing")!;
    expect(missing.TreatMissingData).toBe("breaching");
    expect(ALARMS.find((d) => d.id === "SweeperMissing")!.description).toMatch(/sweep/i);
    for (const d of ALARMS.filter((x) => x.id.startsWith("DeadLetters"))) expect(d.description).toContain("warden dead-letters");
    expect(ALARMS.filter((d) => d.description.includes("warden stuck")).length).toBeGreaterThan(0);
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
    for (const needle of ["Job flow", "JobsSubmitted", "JobsSucceeded", "JobsFailed", "StuckJobs", "ApproximateNumberOfMessagesVisible", "WorkerMemoryPercent", "ClaimConflicts"]) {
      expect(body, needle).toContain(needle);
    }
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
        "GET /admin/stuck",
        "POST /admin/sweep",
        "GET /admin/dead-letters",
        "POST /admin/dead-letters/redrive",
        "GET /admin/workers",
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
        for (const a of st.Action) expect(["cloudwatch:PutMetricData", "ecr:GetAuthorizationToken"], `${st.policyId}: ${a} on *`).toContain(a);
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
    const consume = ["sqs:ReceiveMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueUrl", "sqs:DeleteMessage", "sqs:GetQueueAttributes"];
    const sweep = [...on("table", "dynamodb:GetItem", "dynamodb:UpdateItem"), ...on("table/index/due", "dynamodb:Query")];
    const expected: Record<string, string[]> = {
      "warden-dev-worker": [
        ...on("table", "dynamodb:GetItem", "dynamodb:UpdateItem"),
        ...on("queue:default", ...consume, "sqs:SendMessage"),
        ...on("queue:large", "sqs:SendMessage"),
      ],
      "task:warden-dev-large-worker": [
        ...on("table", "dynamodb:GetItem", "dynamodb:UpdateItem"),
        ...on("queue:large", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:SendMessage"),
        // Scale-in protection while it holds jobs, on its own cluster's tasks only.
        ...on("tasks:warden-dev-cluster", "ecs:UpdateTaskProtection"),
      ],
      "warden-dev-sweeper": [
        ...sweep,
        ...on("queue:default", "sqs:SendMessage"),
        ...on("queue:large", "sqs:SendMessage"),
        ...on("queue:default-dlq", "sqs:GetQueueAttributes"),
        ...on("queue:large-dlq", "sqs:GetQueueAttributes"),
      ],
      "warden-dev-api": [
        ...sweep,
        ...on("table", "dynamodb:PutItem", "dynamodb:BatchGetItem"),
        ...on("table/index/byOwner", "dynamodb:Query"),
        ...on("table/index/byStatus", "dynamodb:Query"),
        ...QUEUE_NAMES.flatMap((q) => [
          ...on(`queue:${q}`, "sqs:SendMessage", "sqs:GetQueueAttributes"),
          ...on(`queue:${q}-dlq`, "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"),
        ]),
      ],
    };
    expect(Object.keys(got).sort()).toEqual(Object.keys(expected).sort());
    for (const [owner, perms] of Object.entries(expected)) expect([...got[owner]!].sort(), owner).toEqual([...new Set(perms)].sort());
  });

  it("keeps each stack's resource counts (review any change here)", () => {
    const counts = Object.fromEntries(Object.entries(s.json).map(([name, t]) => [name, resourceCounts(t)]));
    expect(counts).toMatchInlineSnapshot(`
      {
        "Api": {
          "AWS::ApiGatewayV2::Api": 1,
          "AWS::ApiGatewayV2::Integration": 11,
          "AWS::ApiGatewayV2::Route": 11,
          "AWS::ApiGatewayV2::Stage": 1,
          "AWS::IAM::Policy": 1,
          "AWS::IAM::Role": 2,
          "AWS::Lambda::Function": 2,
          "AWS::Lambda::Permission": 11,
          "AWS::Logs::LogGroup": 2,
          "AWS::SSM::Parameter": 2,
        },
        "Monitoring": {
          "AWS::CloudWatch::Alarm": 16,
          "AWS::CloudWatch::Dashboard": 1,
          "AWS::IAM::Role": 1,
          "AWS::Lambda::Function": 1,
          "AWS::SNS::Topic": 1,
          "AWS::SNS::TopicPolicy": 1,
        },
        "Queues": {
          "AWS::IAM::Role": 1,
          "AWS::Lambda::Function": 1,
          "AWS::SQS::Queue": 4,
          "AWS::SQS::QueuePolicy": 4,
        },
        "Storage": {
          "AWS::DynamoDB::Table": 1,
          "AWS::IAM::Role": 1,
          "AWS::Lambda::Function": 1,
        },
        "Sweeper": {
          "AWS::Events::Rule": 1,
          "AWS::IAM::Policy": 1,
          "AWS::IAM::Role": 2,
          "AWS::Lambda::Function": 2,
          "AWS::Lambda::Permission": 1,
          "AWS::Logs::LogGroup": 1,
          "AWS::SSM::Parameter": 1,
        },
        "Workers": {
          "AWS::ApplicationAutoScaling::ScalableTarget": 1,
          "AWS::ApplicationAutoScaling::ScalingPolicy": 2,
          "AWS::CloudWatch::Alarm": 2,
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
          "AWS::IAM::Policy": 3,
          "AWS::IAM::Role": 5,
          "AWS::Lambda::EventSourceMapping": 1,
          "AWS::Lambda::Function": 2,
          "AWS::Logs::LogGroup": 2,
          "AWS::SSM::Parameter": 1,
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

  it("retains the table with deletion protection and PITR, and keeps its logs", () => {
    const [, table] = one(s.json.Storage, "AWS::DynamoDB::Table");
    expect(table.Properties!.TableName).toBe("warden-prod-jobs");
    expect(table.DeletionPolicy).toBe("Retain");
    expect(table.UpdateReplacePolicy).toBe("Retain");
    expect(table.Properties!.DeletionProtectionEnabled).toBe(true);
    expect(table.Properties!.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
    for (const t of Object.values(s.json)) for (const [, lg] of of(t, "AWS::Logs::LogGroup")) expect(lg.DeletionPolicy).toBe("Retain");
  });

  it("applies prod's overrides: a warm Fargate task, more Lambda concurrency, higher API limits", () => {
    const cfg = stageConfig("prod");
    expect(cfg.production).toBe(true);
    const [, target] = one(s.json.Workers, "AWS::ApplicationAutoScaling::ScalableTarget");
    expect(target.Properties!).toMatchObject({ MinCapacity: cfg.fargate.minTasks, MaxCapacity: cfg.fargate.maxTasks });
    const [, mapping] = one(s.json.Workers, "AWS::Lambda::EventSourceMapping");
    expect(mapping.Properties!.ScalingConfig).toEqual({ MaximumConcurrency: cfg.worker.maxConcurrency });
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
    const [, mapping] = one(s.json.Workers, "AWS::Lambda::EventSourceMapping");
    expect(mapping.Properties!.ScalingConfig).toEqual({ MaximumConcurrency: 10 });
    const [, task] = one(s.json.Workers, "AWS::ECS::TaskDefinition");
    expect(task.Properties!).toMatchObject({ Cpu: "2048", Memory: "8192" });
    const [, target] = one(s.json.Workers, "AWS::ApplicationAutoScaling::ScalableTarget");
    expect(target.Properties!).toMatchObject({ MinCapacity: 0, MaxCapacity: 3 });
  });
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
    } finally {
      if (saved === undefined) delete process.env.WARDEN_FARGATE_IMAGE;
      else process.env.WARDEN_FARGATE_IMAGE = saved;
    }
  }, 60_000);
});

describe("stage configuration", () => {
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

