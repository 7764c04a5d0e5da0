/**
 * Job logs (core/job-log.ts, core/logs.ts): a handler's `ctx.log` lines, and the runner's about
 * the job, come back for that job only, oldest first, tagged with attempt and worker.
 * - Through the local system (local/system.ts, in process so the test can add a job type that
 *   logs on every attempt): the in-process Lambda workers' lines and a worker process's lines
 *   reach the local source (local/job-logs.ts).
 * - The cloud's source (core/logs-insights.ts) against a loopback stand-in for CloudWatch Logs,
 *   which has no emulator: it speaks the service's wire protocol (AWS JSON 1.1,
 *   `X-Amz-Target: Logs_20140328.StartQuery` ...), so the SDK's real serialization, signing,
 *   retries and parsing run; only the service's answers are scripted.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { jobLogger, parseJobLogLine } from "../core/job-log.js";
import { insightsLogSource, jobLogQueryString, logsClient } from "../core/logs-insights.js";
import type { JobLogLine } from "../core/logs.js";
import { defineJob, type JobLogger } from "../core/registry.js";
import { loadRuntime } from "../core/runtime.js";
import { buildServices } from "../core/services.js";
import { loadLocalConfig } from "../local/config.js";
import { LocalJobLogs } from "../local/job-logs.js";
import { startSystem, type System } from "../local/system.js";
import { waitFor } from "./support/emulators.js";

describe("a job's lines through the local system", () => {
  let sys: System;
  let token = "";
  const output: string[] = [];

  /** Logs on every attempt, fails the first: two attempts' lines for one job. */
  const chatty = defineJob<{ tag: string }, { attempt: number }>({
    name: "test.chatty",
    input: z.object({ tag: z.string() }).strict(),
    runsOn: "lambda",
    limits: { backoffBaseMs: 100, backoffMaxMs: 200 },
    async handler(input, ctx) {
      ctx.log.info("working", { tag: input.tag, step: "start" });
      if (ctx.attempt === 1) {
        ctx.log.warn("about to fail", { tag: input.tag });
        throw new Error("first attempt fails on purpose");
      }
      ctx.log.info("done", { tag: input.tag, jobId: "someone-else", level: "forged" });
      return { attempt: ctx.attempt };
    },
  });

  beforeAll(async () => {
    const env = {
      PORT: "0",
      WARDEN_DYNAMODB_PORT: "0",
      WARDEN_SQS_PORT: "0",
      WARDEN_API_TOKENS: "tester:job-logs-token",
      WARDEN_ADMIN_TOKEN: "job-logs-admin",
      WARDEN_LEASE_SECONDS: "3",
      WARDEN_SWEEP_INTERVAL_SECONDS: "1",
    };
    token = "job-logs-token";
    sys = await startSystem(loadLocalConfig(["--memory", "--workers", "1"], env), (l) => output.push(l));
    sys.services.registry.register(chatty);
  }, 90_000);
  afterAll(async () => {
    await sys?.stop();
  }, 60_000);

  const call = async <T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> => {
    const res = await fetch(sys.apiUrl + path, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, body: (await res.json()) as T };
  };
  type Job = { id: string; status: string; createdAt: string };
  const submit = async (body: Record<string, unknown>): Promise<Job> => {
    const r = await call<{ job: Job }>("POST", "/jobs", body);
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    return r.body.job;
  };
  const finished = (id: string) =>
    waitFor(async () => {
      const { body } = await call<{ job: Job }>("GET", `/jobs/${id}`);
      return ["succeeded", "failed", "cancelled"].includes(body.job.status) ? body.job : undefined;
    }, 45_000, `job ${id} to finish`);
  const linesOf = (id: string, limit = 100) => sys.services.logs.lines({ jobId: id, since: Date.now() - 120_000, until: Date.now() + 1_000, limit });

  it("answers a job's ctx.log lines and the runner's, of both attempts, for that job only, oldest first", async () => {
    expect(sys.services.logs.name).toBe("local");
    const [a, b] = await Promise.all([submit({ type: "test.chatty", input: { tag: "a" } }), submit({ type: "test.chatty", input: { tag: "b" } })]);
    for (const j of [a, b]) expect((await finished(j.id)).status).toBe("succeeded");

    const { lines, complete } = await linesOf(a.id);
    expect(complete).toBe(true);
    expect(lines.every((l) => l.jobId === a.id)).toBe(true);
    expect(lines.every((l) => l.fields.tag === undefined || l.fields.tag === "a")).toBe(true);
    expect(lines.map((l) => l.at)).toEqual([...lines.map((l) => l.at)].sort());
    const said = (attempt: number) => lines.filter((l) => l.attempt === attempt).map((l) => `${l.level} ${l.message}`);
    expect(said(1)).toEqual(expect.arrayContaining(["info working", "warn about to fail", "warn the handler failed; retrying if attempts remain"]));
    expect(said(2)).toEqual(expect.arrayContaining(["info working", "info done"]));
    // Every attempt's lines before the next attempt's.
    const attempts = lines.map((l) => l.attempt);
    expect(attempts).toEqual([...attempts].sort());
    // Each attempt names the in-process Lambda worker that ran it, as its history does.
    const { body } = await call<{ job: { history: { attempt: number; worker: string }[] } }>("GET", `/jobs/${a.id}`);
    for (const h of body.job.history) {
      const of = lines.filter((l) => l.attempt === h.attempt);
      expect(of.length, `attempt ${h.attempt}`).toBeGreaterThan(0);
      expect(new Set(of.map((l) => l.workerId))).toEqual(new Set([h.worker]));
      expect(h.worker).toMatch(/^lambda:local-/);
    }
    // The handler's fields are kept; one that would forge the job's tag or the envelope is not obeyed.
    const done = lines.find((l) => l.message === "done")!;
    expect(done.fields).toMatchObject({ tag: "a", _level: "forged" });
    expect(done.level).toBe("info");
    expect(done.jobId).toBe(a.id);

    // The other job's lines are its own.
    const other = await linesOf(b.id);
    expect(other.lines.length).toBeGreaterThan(0);
    expect(other.lines.every((l) => l.jobId === b.id && l.fields.tag !== "a")).toBe(true);
  }, 60_000);

  it("keeps a worker process's lines too (its warnings arrive on stderr)", async () => {
    const job = await submit({ type: "demo.fail", queue: "large", input: { times: 1 } });
    expect((await finished(job.id)).status).toBe("succeeded");
    const { lines } = await waitFor(async () => {
      const r = await linesOf(job.id);
      return r.lines.some((l) => l.attempt === 1) ? r : undefined;
    }, 10_000, "the worker process's line about attempt 1");
    const failed = lines.find((l) => l.attempt === 1 && l.message.startsWith("the handler failed"))!;
    expect(failed).toBeDefined();
    expect(failed.level).toBe("warn");
    expect(failed.workerId).toMatch(/^fargate-/);
    expect(failed.fields.error).toContain("demo.fail: attempt 1 fails on purpose");
  }, 60_000);

  it("says when an answer is cut at its limit", async () => {
    const job = await submit({ type: "test.chatty", input: { tag: "c" } });
    await finished(job.id);
    const all = await linesOf(job.id);
    expect(all.lines.length).toBeGreaterThan(2);
    const cut = await linesOf(job.id, 2);
    expect(cut).toEqual({ lines: all.lines.slice(0, 2), complete: false });
  }, 60_000);
});

describe("the local log's bounds", () => {
  const line = (jobId: string, n: number, at = Date.now()): string =>
    `[w] ${JSON.stringify({ level: "INFO", message: `line ${n}`, timestamp: new Date(at + n).toISOString(), jobId, attempt: 1, workerId: "w", type: "t" })}`;
  const q = (jobId: string) => ({ jobId, since: Date.now() - 60_000, until: Date.now() + 60_000, limit: 1_000 });

  it("keeps a job's latest lines and the most recently written jobs, and says what it lost", async () => {
    const log = new LocalJobLogs({ perJob: 3, maxLines: 6, startedAt: Date.now() - 120_000 });
    for (let n = 0; n < 5; n++) log.take(line("A", n));
    expect(log.take("[w] warden-worker: ready w")).toBe(false);
    expect(log.take(`[w] ${JSON.stringify({ level: "INFO", message: "about no job" })}`)).toBe(false);
    const a = await log.lines(q("A"));
    expect(a.lines.map((l) => l.message)).toEqual(["line 2", "line 3", "line 4"]);
    expect(a.complete).toBe(false);
    for (let n = 0; n < 3; n++) log.take(line("B", n));
    expect(await log.lines(q("B"))).toMatchObject({ complete: true });
    // C pushes the total past 6: A, written to least recently, goes.
    for (let n = 0; n < 3; n++) log.take(line("C", n));
    expect(await log.lines(q("A"))).toEqual({ lines: [], complete: false });
    expect((await log.lines(q("C"))).lines).toHaveLength(3);
  });

  it("calls a job older than this run incomplete", async () => {
    const startedAt = Date.now();
    const log = new LocalJobLogs({ startedAt, createdAt: async (id) => (id === "old" ? startedAt - 10_000 : startedAt + 1) });
    log.take(line("old", 0));
    log.take(line("new", 0));
    expect((await log.lines(q("old"))).complete).toBe(false);
    expect((await log.lines(q("new"))).complete).toBe(true);
  });
});

describe("the job logger", () => {
  it("tags every line, and a handler's fields cannot move it to another job or attempt", () => {
    const got: Record<string, unknown>[] = [];
    const sink: JobLogger = { info: (_m, e) => got.push(e ?? {}), warn: (_m, e) => got.push(e ?? {}), error: (_m, e) => got.push(e ?? {}) };
    const log = jobLogger(sink, { jobId: "J", type: "t", attempt: 2, workerId: "w" });
    log.info("x", { jobId: "K", attempt: 9, message: "m", rows: 3 });
    expect(got).toEqual([{ jobId: "J", type: "t", attempt: 2, workerId: "w", _message: "m", rows: 3 }]);
  });

  it("reads a Powertools line back, Lambda's invocation fields left out", () => {
    const text = JSON.stringify({
      level: "WARN",
      message: "m",
      timestamp: "2026-05-01T10:00:00.000+02:00",
      service: "warden",
      sampling_rate: 0,
      cold_start: true,
      function_request_id: "r",
      rows: 3,
      jobId: "J",
      type: "t",
      attempt: 2,
      workerId: "w",
    });
    expect(parseJobLogLine(text)).toEqual({ at: "2026-05-01T08:00:00.000Z", level: "warn", message: "m", jobId: "J", attempt: 2, workerId: "w", fields: { rows: 3 } });
    expect(parseJobLogLine('{"level":"INFO","message":"no job"}')).toBeUndefined();
    expect(parseJobLogLine("not json {")).toBeUndefined();
  });
});

// ─── CloudWatch Logs Insights, against a loopback stand-in ─────────────────────────────────────

interface Call {
  target: string;
  contentType: string;
  signed: boolean;
  body: Record<string, any>;
}

let server: Server;
let endpoint = "";
let calls: Call[] = [];
/** What GetQueryResults answers, call by call (the last one repeats). */
let answers: { status: string; results: { field: string; value: string }[][] }[] = [];

const JOB = "01J0ZQ3V3N7ZC8R0Q2W6Z9Y8XA";
const row = (at: string, message: Record<string, unknown>) => [
  { field: "@timestamp", value: at },
  { field: "@message", value: JSON.stringify(message) },
  { field: "@ptr", value: "CmAKJwoj" },
];
const jobLine = (n: number, attempt: number, ts: string, jobId = JOB) => ({
  level: "INFO",
  message: `line ${n}`,
  timestamp: ts,
  service: "warden",
  sampling_rate: 0,
  n,
  jobId,
  type: "demo.fail",
  attempt,
  workerId: attempt === 1 ? "lambda:abc" : "ecs:def",
});

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const target = String(req.headers["x-amz-target"]);
      calls.push({
        target,
        contentType: String(req.headers["content-type"]),
        signed: String(req.headers.authorization ?? "").startsWith("AWS4-HMAC-SHA256"),
        body: JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}"),
      });
      const send = (status: number, body: unknown) => {
        res.writeHead(status, { "content-type": "application/x-amz-json-1.1", "x-amzn-requestid": "req" });
        res.end(JSON.stringify(body));
      };
      if (target === "Logs_20140328.StartQuery") return send(200, { queryId: "q-1" });
      if (target === "Logs_20140328.GetQueryResults") {
        const a = answers.length > 1 ? answers.shift()! : answers[0]!;
        return send(200, { status: a.status, results: a.results, statistics: { recordsMatched: a.results.length, recordsScanned: 100, bytesScanned: 1000 } });
      }
      if (target === "Logs_20140328.StopQuery") return send(200, { success: true });
      send(400, { __type: "com.amazonaws.logs#InvalidOperationException", message: `unknown target ${target}` });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
beforeEach(() => {
  calls = [];
  answers = [];
});

describe("the Logs Insights source", () => {
  const groups = ["/aws/lambda/warden-dev-worker", "/warden/dev/large-worker"];
  const since = Date.parse("2026-05-01T10:00:00.250Z");
  const until = Date.parse("2026-05-01T10:05:00.750Z");

  it("queries the workers' log groups for the job's id in its window, and answers its lines oldest first", async () => {
    answers = [
      { status: "Running", results: [] },
      {
        status: "Complete",
        results: [
          row("2026-05-01 10:00:01.000", jobLine(1, 1, "2026-05-01T10:00:01.000Z")),
          // Ingested in one order, written in another: the line's own timestamp decides.
          row("2026-05-01 10:00:03.000", jobLine(3, 2, "2026-05-01T10:00:02.500Z")),
          row("2026-05-01 10:00:02.000", jobLine(2, 1, "2026-05-01T10:00:02.000Z")),
          // A line of another job (a query it should not have matched) is never answered.
          row("2026-05-01 10:00:02.100", jobLine(9, 1, "2026-05-01T10:00:02.100Z", "01J0ZQ3V3N7ZC8R0Q2W6Z9Y8XB")),
        ],
      },
    ];
    // Built as the API's services build it: the config names the groups and the endpoint.
    const services = buildServices(
      loadRuntime({
        WARDEN_TABLE: "t",
        WARDEN_QUEUES: JSON.stringify({ default: { queue: "http://q/d", high: "http://q/dh", low: "http://q/dl", dlq: "http://q/dd" }, large: { queue: "http://q/l", high: "http://q/lh", low: "http://q/ll", dlq: "http://q/ld" } }),
        WARDEN_JOB_LOG_GROUPS: groups.join(","),
        WARDEN_LOGS_ENDPOINT: endpoint,
      }),
    );
    try {
      expect(services.logs.name).toBe("cloudwatch");
      const out = await services.logs.lines({ jobId: JOB, since, until, limit: 50 });
      expect(out.complete).toBe(true);
      expect(out.lines.map((l) => [l.fields.n, l.attempt, l.workerId])).toEqual([
        [1, 1, "lambda:abc"],
        [2, 1, "lambda:abc"],
        [3, 2, "ecs:def"],
      ]);
      expect(out.lines[0]).toEqual<JobLogLine>({ at: "2026-05-01T10:00:01.000Z", level: "info", message: "line 1", jobId: JOB, attempt: 1, workerId: "lambda:abc", fields: { n: 1 } });

      const start = calls.find((c) => c.target === "Logs_20140328.StartQuery")!;
      expect(start.contentType).toBe("application/x-amz-json-1.1");
      expect(start.signed).toBe(true);
      expect(start.body.logGroupNames).toEqual(groups);
      // Seconds, widened to whole seconds around the window.
      expect(start.body.startTime).toBe(Date.parse("2026-05-01T10:00:00Z") / 1000);
      expect(start.body.endTime).toBe(Date.parse("2026-05-01T10:05:01Z") / 1000);
      expect(start.body.queryString).toBe(`fields @timestamp, @message\n| filter jobId = "${JOB}"\n| sort @timestamp asc\n| limit 51`);
      expect(start.body.limit).toBe(51);
      const polls = calls.filter((c) => c.target === "Logs_20140328.GetQueryResults");
      expect(polls).toHaveLength(2);
      expect(polls.every((c) => c.body.queryId === "q-1")).toBe(true);
      expect(calls.some((c) => c.target === "Logs_20140328.StopQuery")).toBe(false);
    } finally {
      services.doc.destroy();
      services.sqs.destroy();
    }
  });

  it("keeps whatever an id holds inside the query's string literal", async () => {
    answers = [{ status: "Complete", results: [] }];
    const source = insightsLogSource({ groups, client: logsClient({ endpoint }) });
    const hostile = 'x" or jobId like /./ | display @message | filter "a\\';
    await source.lines({ jobId: hostile, since, until, limit: 10 });
    const sent = calls.find((c) => c.target === "Logs_20140328.StartQuery")!.body.queryString as string;
    expect(sent).toBe(jobLogQueryString(hostile, 11));
    expect(sent.split("\n")[1]).toBe(String.raw`| filter jobId = "x\" or jobId like /./ | display @message | filter \"a\\"`);
    // Newlines cannot start a command of their own either.
    expect(jobLogQueryString("a\n| stats count()", 1).split("\n")).toHaveLength(4);
  });

  it("stops a query still running at its deadline and answers what it has, incomplete", async () => {
    answers = [{ status: "Running", results: [row("2026-05-01 10:00:01.000", jobLine(1, 1, "2026-05-01T10:00:01.000Z"))] }];
    const source = insightsLogSource({ groups, client: logsClient({ endpoint }), deadlineMs: 700 });
    const started = Date.now();
    const out = await source.lines({ jobId: JOB, since, until, limit: 10 });
    expect(Date.now() - started).toBeLessThan(700 + 1_000);
    expect(out.complete).toBe(false);
    expect(out.lines.map((l) => l.message)).toEqual(["line 1"]);
    const stops = calls.filter((c) => c.target === "Logs_20140328.StopQuery");
    expect(stops.map((c) => c.body)).toEqual([{ queryId: "q-1" }]);
  });

  it("says when the answer is cut at its limit", async () => {
    answers = [
      {
        status: "Complete",
        results: [1, 2, 3].map((n) => row(`2026-05-01 10:00:0${n}.000`, jobLine(n, 1, `2026-05-01T10:00:0${n}.000Z`))),
      },
    ];
    const out = await insightsLogSource({ groups, client: logsClient({ endpoint }) }).lines({ jobId: JOB, since, until, limit: 2 });
    expect(out.lines.map((l) => l.fields.n)).toEqual([1, 2]);
    expect(out.complete).toBe(false);
  });

  it("fails loudly on a failed query, and when no log group is configured", async () => {
    answers = [{ status: "Failed", results: [] }];
    await expect(insightsLogSource({ groups, client: logsClient({ endpoint }) }).lines({ jobId: JOB, since, until, limit: 2 })).rejects.toThrow(/failed/);
    await expect(insightsLogSource({ groups: [], client: logsClient({ endpoint }) }).lines({ jobId: JOB, since, until, limit: 2 })).rejects.toThrow(/WARDEN_JOB_LOG_GROUPS/);
  });
});
