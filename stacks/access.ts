/**
 * Least privilege, declared once per principal: which table, index and queue actions each part
 * of Warden performs. The stacks turn these into IAM statements scoped to the stage's own
 * resources; the synthesis tests hold the policies to them. When a part starts using another
 * DynamoDB, SQS or ECS operation, it is added here and nowhere else. When the stage encrypts the
 * table or the queues with its own KMS keys (`kms`), the same declaration decides which key actions
 * each principal gets: those its table and queue actions need, on that key only.
 */
import type { ITable } from "aws-cdk-lib/aws-dynamodb";
import type * as ecs from "aws-cdk-lib/aws-ecs";
import * as iam from "aws-cdk-lib/aws-iam";
import type * as kms from "aws-cdk-lib/aws-kms";
import type * as logs from "aws-cdk-lib/aws-logs";
import { TABLE, type QueueName } from "../core/config.js";
import { METRIC_NAMESPACE } from "../core/metrics.js";
import { lanesOf, type QueuePair } from "./Queues.js";

export type TableAction = "GetItem" | "PutItem" | "UpdateItem" | "BatchGetItem" | "DeleteItem";
export type IndexName = (typeof TABLE)["dueIndex" | "ownerIndex" | "statusIndex" | "workerIndex" | "waitIndex" | "holdIndex"]["name"];
export type QueueAction = "SendMessage" | "ReceiveMessage" | "DeleteMessage" | "ChangeMessageVisibility" | "GetQueueAttributes";
export type TaskAction = "UpdateTaskProtection";

export interface Access {
  table: TableAction[];
  /** Indexes the principal queries. */
  indexes: IndexName[];
  queues: Partial<Record<QueueName, QueueAction[]>>;
  dlqs: Partial<Record<QueueName, QueueAction[]>>;
  /** PutMetricData, limited by condition to Warden's namespace (the action has no resource ARN). */
  putMetricData: boolean;
  /** ECS actions on the tasks of the principal's own cluster (a task's ARN is only known at run time). */
  tasks: TaskAction[];
  /** Logs Insights queries over the workers' log groups, for a job's lines (core/logs-insights.ts). */
  queriesJobLogs: boolean;
  /** Actions on the demo effects table (core/config.ts EFFECTS_TABLE): demo.effects' fenced rows. */
  effects: TableAction[];
}

/**
 * A query's actions. StartQuery names the log groups it reads, so it is granted on the workers'
 * groups only; GetQueryResults and StopQuery name a query id and take no resource ARN (`*`), so
 * they can read or stop only queries whose id StartQuery returned on those groups.
 */
export const JOB_LOG_QUERY = { onGroups: ["logs:StartQuery"], onQueries: ["logs:GetQueryResults", "logs:StopQuery"] } as const;

export type Principal = "worker" | "fargate" | "api" | "sweeper" | "reaper";

/**
 * Reading and writing jobs (core/store.ts): a record is read with GetItem and written with a
 * conditional UpdateItem; its large values (core/values.ts) are put once with PutItem and read in
 * batches with BatchGetItem.
 */
const JOB_WRITES: TableAction[] = ["GetItem", "PutItem", "UpdateItem", "BatchGetItem"];

/** The due index's keys, then the overdue records in a batch; a resend may copy an input that would expire (PutItem). */
const SWEEP: Pick<Access, "table" | "indexes"> = { table: JOB_WRITES, indexes: [TABLE.dueIndex.name, TABLE.waitIndex.name, TABLE.holdIndex.name] };

/**
 * A job that leaves running gives its concurrency slot back and wakes the longest-held job of its
 * key (core/controls.ts): a Query of the keys-only byHold index. Every principal that ends or
 * requeues running jobs needs it.
 */
const WAKES = TABLE.holdIndex.name;

/** demo.effects (core/jobs/effects.ts) puts a fenced row per step, then reads its rows back in a batch; it runs on either worker. */
const DEMO_EFFECTS: TableAction[] = ["PutItem", "BatchGetItem"];

export const ACCESS: Record<Principal, Access> = {
  // Claims, heartbeats and finishes (JOB_WRITES), the worker directory, and
  // re-enqueues: a retry on its own queue, a memory abort onto `large`. Receiving and deleting
  // `default` messages is the event source mapping's, which grants its own consume actions.
  worker: {
    table: JOB_WRITES,
    indexes: [WAKES],
    queues: { default: ["SendMessage"], large: ["SendMessage"] },
    dlqs: {},
    putMetricData: false,
    tasks: [],
    queriesJobLogs: false,
    effects: DEMO_EFFECTS,
  },
  // Polls `large` itself, deletes a message once its job is claimed, extends visibility while it
  // claims, re-enqueues retries. Its metrics are EMF lines in its log (functions/fargate.ts), which
  // CloudWatch Logs turns into metrics, so it needs no PutMetricData; set `putMetricData` if it
  // ever publishes through core/metrics-cloudwatch.ts instead. While it holds a job it keeps its
  // task's scale-in protection on through the ECS agent's endpoint, which calls
  // UpdateTaskProtection with the task role's credentials (core/ecs-protection.ts); it never reads
  // the protection back, so it needs no GetTaskProtection.
  fargate: {
    table: JOB_WRITES,
    indexes: [WAKES],
    queues: { large: ["ReceiveMessage", "DeleteMessage", "ChangeMessageVisibility", "SendMessage"] },
    dlqs: {},
    putMetricData: false,
    tasks: ["UpdateTaskProtection"],
    queriesJobLogs: false,
    effects: DEMO_EFFECTS,
  },
  // Submits (conditional PutItem), reads, lists (index Query + BatchGetItem), cancels and retries;
  // the admin routes run a sweep (the sweeper's access), peek at dead letters (receive, then make
  // visible again) and redrive them (receive, send to the source queue, delete); /health reads the
  // worker directory's item and every queue's attributes; GET /jobs/{id}/logs queries the
  // workers' log groups. Schedules are items beside the jobs: made and changed with a conditional
  // PutItem, listed from their due-index partition, and deleted (DeleteItem, the schedules' only).
  api: {
    table: ["GetItem", "PutItem", "UpdateItem", "BatchGetItem", "DeleteItem"],
    indexes: [TABLE.ownerIndex.name, TABLE.statusIndex.name, TABLE.dueIndex.name, TABLE.waitIndex.name, WAKES],
    queues: { default: ["SendMessage", "GetQueueAttributes"], large: ["SendMessage", "GetQueueAttributes"] },
    dlqs: {
      default: ["ReceiveMessage", "DeleteMessage", "ChangeMessageVisibility", "GetQueueAttributes"],
      large: ["ReceiveMessage", "DeleteMessage", "ChangeMessageVisibility", "GetQueueAttributes"],
    },
    putMetricData: false,
    tasks: [],
    queriesJobLogs: true,
    effects: [],
  },
  // Queries the due index, repairs with conditional updates, re-sends lost doorbells, and counts
  // dead letters for its report.
  sweeper: {
    ...SWEEP,
    queues: { default: ["SendMessage"], large: ["SendMessage"] },
    dlqs: { default: ["GetQueueAttributes"], large: ["GetQueueAttributes"] },
    putMetricData: false,
    tasks: [],
    queriesJobLogs: false,
    effects: [],
  },
  // The deaths function (core/deaths.ts): finds a dead worker's jobs with one Query of the
  // keys-only byWorker index, reads each record and reclaims it with a conditional UpdateItem
  // (the record alone: its values stay where they are, so no PutItem), marks the
  // worker dead in the directory (UpdateItem), and rings the doorbells of the jobs queued again.
  // Its metrics are EMF lines in its log, so no PutMetricData.
  // A job it ends that is a child counts in its parent's fan-in (core/flows.ts): an UpdateItem,
  // then, for the child that completes the round, a BatchGetItem of the fan-in items and a
  // conditional UpdateItem that resumes the parent.
  reaper: {
    table: ["GetItem", "UpdateItem", "BatchGetItem"],
    indexes: [TABLE.workerIndex.name, WAKES],
    queues: { default: ["SendMessage"], large: ["SendMessage"] },
    dlqs: {},
    putMetricData: false,
    tasks: [],
    queriesJobLogs: false,
    effects: [],
  },
};

/** The resources a principal's access is scoped to; a principal that needs one that is absent throws. */
export interface Resources {
  table: ITable;
  queues: Record<QueueName, QueuePair>;
  /** The cluster its tasks run in, for `tasks` actions. */
  cluster?: ecs.Cluster;
  /** The workers' log groups, for `queriesJobLogs`. */
  jobLogGroups?: readonly logs.ILogGroup[];
  /** The demo effects table, for `effects` actions. */
  effects?: ITable;
}

/** Adds the IAM statements `access` describes to `grantee`'s role, scoped to `on`'s resources. */
export function grantAccess(grantee: iam.IGrantable, access: Access, on: Resources): void {
  const { table, queues, cluster, jobLogGroups } = on;
  const statements: iam.PolicyStatement[] = tableStatements(table, access.table, access.indexes);
  if (access.effects.length) {
    if (!on.effects) throw new Error("grantAccess: effects actions need the effects table");
    statements.push(...tableStatements(on.effects, access.effects, []));
  }
  // SQS with a KMS key: a producer needs GenerateDataKey and Decrypt, a consumer Decrypt.
  const queueKeys = new Map<kms.IKey, Set<string>>();
  for (const [kind, byQueue] of [["queue", access.queues], ["dlq", access.dlqs]] as const) {
    for (const [name, actions] of Object.entries(byQueue) as [QueueName, QueueAction[]][]) {
      if (!actions.length) continue;
      // A queue's actions hold on each of its lanes (a doorbell rings on its job's lane).
      const targets = kind === "queue" ? lanesOf(queues[name]) : [queues[name].dlq];
      statements.push(new iam.PolicyStatement({ actions: actions.map((a) => `sqs:${a}`), resources: targets.map((t) => t.queueArn) }));
      const key = targets[0]!.encryptionMasterKey;
      if (!key) continue;
      const needs = queueKeys.get(key) ?? new Set<string>();
      if (actions.includes("SendMessage")) needs.add("kms:GenerateDataKey").add("kms:Decrypt");
      if (actions.includes("ReceiveMessage")) needs.add("kms:Decrypt");
      if (needs.size) queueKeys.set(key, needs);
    }
  }
  for (const [key, actions] of queueKeys) statements.push(keyStatement(key, [...actions].sort()));
  if (access.putMetricData) {
    statements.push(
      new iam.PolicyStatement({
        actions: ["cloudwatch:PutMetricData"],
        // PutMetricData has no resource-level permissions; the condition confines it to Warden's namespace.
        resources: ["*"],
        conditions: { StringEquals: { "cloudwatch:namespace": METRIC_NAMESPACE } },
      }),
    );
  }
  if (access.tasks.length) {
    if (!cluster) throw new Error("grantAccess: ECS task actions need the cluster whose tasks they act on");
    statements.push(new iam.PolicyStatement({ actions: access.tasks.map((a) => `ecs:${a}`), resources: [cluster.arnForTasks("*")] }));
  }
  if (access.queriesJobLogs) {
    if (!jobLogGroups?.length) throw new Error("grantAccess: querying job logs needs the workers' log groups");
    statements.push(new iam.PolicyStatement({ actions: [...JOB_LOG_QUERY.onGroups], resources: jobLogGroups.map((g) => g.logGroupArn) }));
    statements.push(new iam.PolicyStatement({ actions: [...JOB_LOG_QUERY.onQueries], resources: ["*"] }));
  }
  for (const s of statements) grantee.grantPrincipal.addToPrincipalPolicy(s);
}

/**
 * A table's actions, the indexes it queries, and, when the table has its own KMS key, the key
 * actions they need: DynamoDB decrypts with the caller's permission on reads and encrypts on
 * writes (CDK's own table grants, with their `ReEncrypt*`/`GenerateDataKey*` narrowed to what a
 * write uses).
 */
function tableStatements(table: ITable, actions: TableAction[], indexes: IndexName[]): iam.PolicyStatement[] {
  const statements: iam.PolicyStatement[] = [];
  if (actions.length) statements.push(new iam.PolicyStatement({ actions: actions.map((a) => `dynamodb:${a}`), resources: [table.tableArn] }));
  if (indexes.length) statements.push(new iam.PolicyStatement({ actions: ["dynamodb:Query"], resources: indexes.map((i) => `${table.tableArn}/index/${i}`) }));
  if (table.encryptionKey && statements.length) {
    const writes = actions.some((a) => a === "PutItem" || a === "UpdateItem");
    statements.push(keyStatement(table.encryptionKey, ["kms:Decrypt", "kms:DescribeKey", ...(writes ? ["kms:Encrypt", "kms:GenerateDataKey"] : [])]));
  }
  return statements;
}

const keyStatement = (key: kms.IKey, actions: string[]): iam.PolicyStatement => new iam.PolicyStatement({ actions, resources: [key.keyArn] });
