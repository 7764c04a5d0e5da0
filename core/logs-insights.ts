/**
 * The cloud's JobLogSource: a CloudWatch Logs Insights query over the workers' log groups, for
 * the lines tagged with one job's id (core/job-log.ts) in the job's time window, oldest first.
 * Insights answers asynchronously: StartQuery, then GetQueryResults until the query is Complete.
 * The API's route waits for it inside API Gateway's 30 s, so the wait is bounded (DEADLINE_MS):
 * a query still running then is stopped and its partial results answered with complete:false.
 */
import {
  CloudWatchLogsClient,
  GetQueryResultsCommand,
  StartQueryCommand,
  StopQueryCommand,
  type GetQueryResultsCommandOutput,
  type ResultField,
} from "@aws-sdk/client-cloudwatch-logs";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { AWS_TIMEOUTS } from "./config.js";
import { parseJobLogLine } from "./job-log.js";
import type { JobLogLine, JobLogQuery, JobLogSource } from "./logs.js";

/** How long one `lines()` may take in all: API Gateway gives up on the route at 30 s. */
export const DEADLINE_MS = 20_000;
/** Insights' own ceiling on a query's results. */
export const MAX_RESULTS = 10_000;
/** Each call's bound; the SDK retries a call that times out, within the deadline. */
const REQUEST_MS = 5_000;
/** Pauses between polls: a short query is answered at once, a long one is not polled hundreds of times. */
const FIRST_POLL_MS = 200;
const MAX_POLL_MS = 1_000;

export interface InsightsOptions {
  /** The workers' log group names (RuntimeConfig.jobLogs.groups). */
  groups: readonly string[];
  client: CloudWatchLogsClient;
  deadlineMs?: number;
  now?: () => number;
}

/** A Logs client bounded like core/aws.ts's; with an endpoint (a test's loopback fake) it signs with dummy credentials. */
export function logsClient(o: { endpoint?: string | undefined; region?: string | undefined } = {}): CloudWatchLogsClient {
  return new CloudWatchLogsClient({
    ...(o.endpoint ? { endpoint: o.endpoint, region: o.region ?? "us-east-1", credentials: { accessKeyId: "local", secretAccessKey: "local" } } : o.region ? { region: o.region } : {}),
    maxAttempts: 3,
    requestHandler: new NodeHttpHandler({ connectionTimeout: AWS_TIMEOUTS.connectMs, requestTimeout: REQUEST_MS, throwOnRequestTimeout: true }),
  });
}

/**
 * A string literal of the Insights query language: double-quoted, with backslashes and quotes
 * escaped. Job ids are ULIDs, but the id comes from a URL: whatever it holds stays inside the
 * literal, so it can only ever filter, never add a command to the query.
 */
export function insightsString(value: string): string {
  // Control characters have no business in an id and no escape every Insights version reads alike.
  const clean = value.replace(/[\u0000-\u001f\u007f]/g, "");
  return `"${clean.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

/** The query for one job's lines: `limit` is one more than asked, to tell a cut-off answer from a whole one. */
export function jobLogQueryString(jobId: string, limit: number): string {
  return [`fields @timestamp, @message`, `filter jobId = ${insightsString(jobId)}`, `sort @timestamp asc`, `limit ${limit}`].join("\n| ");
}

export function insightsLogSource(o: InsightsOptions): JobLogSource {
  const now = o.now ?? Date.now;
  const deadlineMs = o.deadlineMs ?? DEADLINE_MS;
  return {
    name: "cloudwatch",
    async lines(q: JobLogQuery) {
      if (!o.groups.length) throw new Error("no worker log groups are configured (WARDEN_JOB_LOG_GROUPS): the deployment must name them");
      const limit = Math.max(1, Math.min(Math.floor(q.limit), MAX_RESULTS - 1));
      const deadline = now() + deadlineMs;
      const bounded = () => ({ abortSignal: AbortSignal.timeout(Math.max(1, deadline - now())) });
      const started = await o.client.send(
        new StartQueryCommand({
          logGroupNames: [...o.groups],
          // Insights counts in seconds: the window is widened to whole seconds, never narrowed.
          startTime: Math.floor(q.since / 1000),
          endTime: Math.ceil(q.until / 1000),
          queryString: jobLogQueryString(q.jobId, limit + 1),
          limit: limit + 1,
        }),
        bounded(),
      );
      const queryId = started.queryId;
      if (!queryId) throw new Error("Logs Insights started no query (no queryId in its answer)");

      let out: GetQueryResultsCommandOutput | undefined;
      let pause = FIRST_POLL_MS;
      for (;;) {
        try {
          out = await o.client.send(new GetQueryResultsCommand({ queryId }), bounded());
        } catch (e) {
          // The deadline cut the call short: answer what the last poll had.
          if (now() < deadline) throw e;
          break;
        }
        if (out.status !== "Running" && out.status !== "Scheduled") break;
        if (now() + pause >= deadline) break;
        await new Promise((r) => setTimeout(r, pause));
        pause = Math.min(MAX_POLL_MS, pause * 2);
      }
      const status = out?.status;
      if (status === "Failed") throw new Error(`the Logs Insights query ${queryId} failed`);
      if (status !== "Complete") {
        // Still running at the deadline: nobody will read the rest, and running queries count
        // against the account's concurrency limit.
        if (status === "Running" || status === "Scheduled" || status === undefined) {
          await o.client.send(new StopQueryCommand({ queryId }), { abortSignal: AbortSignal.timeout(REQUEST_MS) }).catch(() => undefined);
        }
      }
      const lines = (out?.results ?? []).map(lineOf).filter((l): l is JobLogLine => l !== undefined && l.jobId === q.jobId);
      // Insights sorts by the log event's time; the line's own timestamp (the logger's) decides ties and skews.
      lines.sort((a, b) => a.at.localeCompare(b.at));
      const cut = lines.length > limit;
      return { lines: lines.slice(0, limit), complete: status === "Complete" && !cut };
    },
  };
}

/** One result row: its @message parsed, dated by @timestamp when the line's own is unreadable. */
function lineOf(row: ResultField[]): JobLogLine | undefined {
  const field = (name: string) => row.find((f) => f.field === name)?.value;
  const message = field("@message");
  if (message === undefined) return undefined;
  // Insights prints @timestamp as "2026-05-01 10:00:00.123", in UTC.
  const ts = field("@timestamp");
  const at = ts ? Date.parse(`${ts.replace(" ", "T")}Z`) : NaN;
  return parseJobLogLine(message, Number.isFinite(at) ? at : undefined);
}
