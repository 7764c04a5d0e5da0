/**
 * A job's log lines, wherever they are kept: the port `GET /jobs/{id}/logs` reads through. In
 * the cloud the lines are in the workers' CloudWatch log groups and a Logs Insights query finds
 * them; locally the runtime keeps them in its own log. Either way a line is one of the JSON
 * lines a handler's `ctx.log` (or the runner, about that job) wrote, tagged with the job's id,
 * attempt and worker.
 */
export interface JobLogLine {
  /** ISO-8601, UTC. */
  at: string;
  /** The JobLogger method that wrote it: "info", "warn" or "error". */
  level: string;
  message: string;
  jobId: string;
  /** Null on a line a worker wrote about the job outside an attempt (a claim it could not make). */
  attempt: number | null;
  workerId: string | null;
  /** The line's other fields, as the handler logged them (not the envelope, the tags or Lambda's invocation fields). */
  fields: Record<string, unknown>;
}

export interface JobLogQuery {
  jobId: string;
  /** Epoch ms: the job's creation; nothing about it can be older. */
  since: number;
  /** Epoch ms: now, or when it finished plus a margin. */
  until: number;
  limit: number;
}

export interface JobLogSource {
  /** Where the lines come from, for the API's answer (`source`). */
  readonly name: "cloudwatch" | "local";
  /** Oldest first. `complete` is false when the source stopped early (the limit, a query still running at its deadline). */
  lines(q: JobLogQuery): Promise<{ lines: JobLogLine[]; complete: boolean }>;
}
