/**
 * Job logs, written and read back. A handler's `ctx.log`, and the runner's own lines about a job
 * ("aborting the handler", "lease lost", "the handler failed"), are one JSON line per call,
 * written through Powertools Logger and tagged with the job's id, type, attempt and worker: the
 * tags are what finds one job's lines among every worker's, by a Logs Insights query in the cloud
 * (core/logs-insights.ts) and in the local runtime's log (local/job-logs.ts). Both read the lines
 * back into the port's JobLogLine (core/logs.ts) with `jobLogLineOf`, defined here beside the
 * writer so the two cannot drift.
 *
 *   {"level":"INFO","message":"imported","timestamp":"2026-05-01T10:00:00.000Z","service":"warden",
 *    "sampling_rate":0,"rows":120,"jobId":"01J…","type":"import","attempt":2,"workerId":"ecs:4f2…"}
 *
 * Lambda-specific parts (the invocation's context on every line) stay in functions/worker.ts.
 */
import { Logger } from "@aws-lambda-powertools/logger";
import type { JobLogLine } from "./logs.js";
import type { JobLogger } from "./registry.js";

/** What every line about one attempt of a job carries. */
export interface JobTags {
  jobId: string;
  type: string;
  attempt: number;
  workerId: string;
}

const TAG_KEYS: readonly string[] = ["jobId", "type", "attempt", "workerId"] satisfies (keyof JobTags)[];

/**
 * Keys Powertools writes itself. A call's field under one of these names would be dropped by
 * Powertools (with an untagged warning line of its own), so it is kept under `_<name>` instead.
 */
const ENVELOPE_KEYS: readonly string[] = ["level", "message", "timestamp", "service", "sampling_rate"];
/** What Powertools adds about a Lambda invocation (functions/worker.ts gives it the context): not the handler's fields. */
const LAMBDA_KEYS: readonly string[] = ["cold_start", "function_arn", "function_memory_size", "function_name", "function_request_id", "xray_trace_id", "tenant_id"];

/** The service name on every line: the stacks set POWERTOOLS_SERVICE_NAME, a local run may not. */
export const LOG_SERVICE = "warden";

/** A Powertools Logger printing Warden's lines: INFO and up, one compact JSON object per line. */
export function powertoolsLogger(env: Record<string, string | undefined> = process.env): Logger {
  return new Logger(env.POWERTOOLS_SERVICE_NAME ? {} : { serviceName: LOG_SERVICE });
}

/** A JobLogger over a Powertools Logger: one JSON line per call, the call's fields beside the envelope. */
export function jsonLogger(logger: Logger = powertoolsLogger()): JobLogger {
  return {
    info: (message, extra) => logger.info(message, { ...extra }),
    warn: (message, extra) => logger.warn(message, { ...extra }),
    error: (message, extra) => logger.error(message, { ...extra }),
  };
}

/** One logger for the process's lines that are about no job in particular (and the default of every runner). */
let shared: JobLogger | undefined;
export const defaultLogger = (): JobLogger => (shared ??= jsonLogger());

/**
 * `base` with the job's tags on every line. The tags win over a field of the same name: a
 * handler must not be able to file its lines under another job (or another attempt).
 */
export function jobLogger(base: JobLogger, tags: JobTags): JobLogger {
  const fields = (extra: Record<string, unknown> | undefined): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(extra ?? {})) out[ENVELOPE_KEYS.includes(k) ? `_${k}` : k] = v;
    return { ...out, ...tags };
  };
  return {
    info: (m, e) => base.info(m, fields(e)),
    warn: (m, e) => base.warn(m, fields(e)),
    error: (m, e) => base.error(m, fields(e)),
  };
}

/**
 * The job line a printed line holds, or undefined for any other line (an EMF record, a worker's
 * ready line, a line about no job). The JSON may follow a prefix (the local fleet's `[worker] `).
 * `fallbackAt` (epoch ms) dates a line whose own timestamp is missing or unreadable.
 */
export function parseJobLogLine(text: string, fallbackAt?: number): JobLogLine | undefined {
  const start = text.indexOf("{");
  if (start < 0) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text.slice(start));
  } catch {
    return undefined;
  }
  return jobLogLineOf(value, fallbackAt);
}

/** The port's JobLogLine for one written record (a parsed JSON line), or undefined if it is about no job. */
export function jobLogLineOf(value: unknown, fallbackAt?: number): JobLogLine | undefined {
  if (!value || typeof value !== "object" || Array.isArray(value)) return undefined;
  const r = value as Record<string, unknown>;
  if (typeof r.jobId !== "string" || r.jobId === "") return undefined;
  const own = typeof r.timestamp === "string" || typeof r.timestamp === "number" ? new Date(r.timestamp).getTime() : NaN;
  const at = Number.isFinite(own) ? own : fallbackAt;
  if (at === undefined || !Number.isFinite(at)) return undefined;
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(r)) {
    if (!ENVELOPE_KEYS.includes(k) && !TAG_KEYS.includes(k) && !LAMBDA_KEYS.includes(k)) fields[k] = v;
  }
  return {
    at: new Date(at).toISOString(),
    // Powertools writes INFO/WARN/ERROR; the port speaks the JobLogger's method names.
    level: typeof r.level === "string" ? r.level.toLowerCase() : "info",
    message: typeof r.message === "string" ? r.message : JSON.stringify(r.message ?? ""),
    jobId: r.jobId,
    attempt: typeof r.attempt === "number" && Number.isInteger(r.attempt) ? r.attempt : null,
    workerId: typeof r.workerId === "string" ? r.workerId : null,
    fields,
  };
}
