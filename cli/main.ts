/**
 * `warden`: the command line over the typed client. Tables for people, `--json` for scripts,
 * and an exit code a script can branch on (see EXIT).
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import {
  StaleJobError,
  WaitTimeoutError,
  WardenApiError,
  WardenClient,
  WardenError,
  executeApiRegion,
  type ApiJob,
  type Auth,
  type QueueName,
  type Status,
} from "../client/index.js";
import { deadLettersText, jobDetails, jobsTable, progressBar, stuckText, sweepText, workersText } from "./format.js";

export const EXIT = {
  ok: 0,
  /** The job ended failed or cancelled (after --wait). */
  jobFailed: 1,
  /** The command line was wrong. */
  usage: 2,
  /** The API refused the request or could not be reached. */
  apiError: 3,
  /** --wait gave up: the job is stale (its worker died) or the wait timed out. */
  gaveUp: 4,
} as const;

export interface Io {
  stdout: { write(s: string): unknown; isTTY?: boolean };
  stderr: { write(s: string): unknown; isTTY?: boolean };
  env: Record<string, string | undefined>;
  fetch?: typeof fetch;
}

const USAGE = `usage: warden <command> [options]

commands:
  submit TYPE [--input JSON|@file] [--queue Q] [--max-attempts N] [--timeout SECONDS]
              [--run-at ISO] [--idempotency-key KEY] [--wait [--wait-timeout SECONDS]]
  status ID             show one job
  wait ID               wait for a job to finish, with a progress bar
  list [--status S] [--type T] [--limit N] [--all]
  cancel ID
  retry ID
  health
  stuck                 (admin) what the sweeper would act on now
  sweep                 (admin) run one sweep now
  dead-letters [--redrive QUEUE]   (admin) peek at dead letters, or move them back
  workers               (admin) workers seen recently

options:
  --url URL      the API (or WARDEN_URL; default http://127.0.0.1:4000)
  --token TOKEN  bearer token (or WARDEN_TOKEN): npm start's tokens, or a JWT
  --sigv4        sign requests with AWS SigV4 for an IAM-authorized stage (or WARDEN_AUTH=sigv4);
                 credentials from the AWS SDK's default chain (AWS_PROFILE, env, SSO, role)
  --region R     the stage's region for --sigv4 (default: the one in an execute-api URL, else
                 AWS_REGION / AWS_DEFAULT_REGION; a custom domain needs one of these)
  --json         machine-readable output on stdout
  -h, --help

  When the URL is an execute-api URL (https://ID.execute-api.REGION.amazonaws.com) and no token
  is given, requests are SigV4-signed by default. WARDEN_AUTH=bearer turns that off.

exit codes: 0 ok, 1 job failed or cancelled, 2 usage, 3 API error, 4 wait gave up (stale or timed out)
`;

class UsageError extends Error {}

const OPTIONS = {
  url: { type: "string" },
  token: { type: "string" },
  sigv4: { type: "boolean", default: false },
  region: { type: "string" },
  json: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
  input: { type: "string" },
  queue: { type: "string" },
  "max-attempts": { type: "string" },
  timeout: { type: "string" },
  "run-at": { type: "string" },
  "idempotency-key": { type: "string" },
  wait: { type: "boolean", default: false },
  "wait-timeout": { type: "string" },
  status: { type: "string" },
  type: { type: "string" },
  limit: { type: "string" },
  all: { type: "boolean", default: false },
  redrive: { type: "string" },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>["values"];

export async function main(argv: string[], io: Io = { stdout: process.stdout, stderr: process.stderr, env: process.env }): Promise<number> {
  let values: Values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true }));
  } catch (e) {
    io.stderr.write(`warden: ${(e as Error).message}\n\n${USAGE}`);
    return EXIT.usage;
  }
  const [command, ...args] = positionals;
  if (values.help || !command) {
    (values.help ? io.stdout : io.stderr).write(USAGE);
    return values.help ? EXIT.ok : EXIT.usage;
  }
  const out = (human: string, json: unknown): void => {
    io.stdout.write(values.json ? `${JSON.stringify(json, null, 2)}\n` : `${human}\n`);
  };
  try {
    const baseUrl = values.url ?? io.env.WARDEN_URL ?? "http://127.0.0.1:4000";
    const auth = authOf(values, io.env, baseUrl);
    const client = new WardenClient({ baseUrl, ...(auth ? { auth } : {}), ...(io.fetch ? { fetch: io.fetch } : {}) });
    return await run(command, args, values, client, io, out);
  } catch (e) {
    return report(e, io, values.json);
  }
}

async function run(
  command: string,
  args: string[],
  v: Values,
  client: WardenClient,
  io: Io,
  out: (human: string, json: unknown) => void,
): Promise<number> {
  switch (command) {
    case "submit": {
      const type = one(args, "submit needs a job type, e.g. warden submit demo.sleep --input '{\"items\":5}'");
      const { job, created } = await client.submit(type, v.input !== undefined ? parseInput(v.input) : undefined, {
        ...(v.queue ? { queue: v.queue as QueueName } : {}),
        ...(v["max-attempts"] !== undefined ? { maxAttempts: int(v["max-attempts"], "--max-attempts") } : {}),
        ...(v.timeout !== undefined ? { timeoutSeconds: int(v.timeout, "--timeout") } : {}),
        ...(v["run-at"] !== undefined ? { runAt: v["run-at"] } : {}),
        ...(v["idempotency-key"] !== undefined ? { idempotencyKey: v["idempotency-key"] } : {}),
      });
      if (!v.wait) {
        out(`${created ? "submitted" : "already submitted (same idempotency key)"}: ${job.id}  ${job.type} on ${job.queue}, ${job.status}`, { job, created });
        return EXIT.ok;
      }
      io.stderr.write(`${created ? "submitted" : "found"} ${job.id}; waiting…\n`);
      return waitFor(client, job.id, v, io, out);
    }
    case "wait":
      return waitFor(client, one(args, "wait needs a job id"), v, io, out);
    case "status": {
      const job = await client.get(one(args, "status needs a job id"));
      out(jobDetails(job), { job });
      return EXIT.ok;
    }
    case "list": {
      none(args, "list");
      const filter = {
        ...(v.status ? { status: v.status as Status } : {}),
        ...(v.type ? { type: v.type } : {}),
        ...(v.limit !== undefined ? { limit: int(v.limit, "--limit") } : {}),
      };
      if (v.all) {
        const jobs: ApiJob[] = [];
        for await (const page of client.list(filter)) jobs.push(...page);
        out(jobs.length ? jobsTable(jobs) : "no jobs", { jobs, nextCursor: null });
      } else {
        const page = await client.listPage(filter);
        out(
          (page.jobs.length ? jobsTable(page.jobs) : "no jobs") + (page.nextCursor ? "\n(more: use --all)" : ""),
          page,
        );
      }
      return EXIT.ok;
    }
    case "cancel": {
      const job = await client.cancel(one(args, "cancel needs a job id"));
      out(job.status === "cancelled" ? `cancelled ${job.id}` : `cancel requested for ${job.id}; it stops when its worker sees it`, { job });
      return EXIT.ok;
    }
    case "retry": {
      const job = await client.retry(one(args, "retry needs a job id"));
      out(`queued ${job.id} again (attempt budget ${job.maxAttempts})`, { job });
      return EXIT.ok;
    }
    case "health": {
      none(args, "health");
      const h = await client.health();
      out(Object.entries(h.checks).map(([k, s]) => `${k}: ${s}`).join("\n"), h);
      return h.ok ? EXIT.ok : EXIT.apiError;
    }
    case "stuck": {
      none(args, "stuck");
      const r = await client.stuck();
      out(stuckText(r), r);
      return EXIT.ok;
    }
    case "sweep": {
      none(args, "sweep");
      const report = await client.sweep();
      out(sweepText(report), { report });
      return EXIT.ok;
    }
    case "dead-letters": {
      none(args, "dead-letters");
      if (v.redrive !== undefined) {
        const moved = await client.redrive(v.redrive as QueueName);
        out(`moved ${moved} message(s) from ${v.redrive}'s dead-letter queue back to ${v.redrive}`, { moved });
      } else {
        const r = await client.deadLetters();
        out(deadLettersText(r), r);
      }
      return EXIT.ok;
    }
    case "workers": {
      none(args, "workers");
      const workers = await client.workers();
      out(workersText(workers), { workers });
      return EXIT.ok;
    }
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

/** Waits with a progress bar on stderr: redrawn in place on a terminal, a line per change otherwise. */
async function waitFor(client: WardenClient, id: string, v: Values, io: Io, out: (h: string, j: unknown) => void): Promise<number> {
  const tty = io.stderr.isTTY === true;
  let lastLine = "";
  const job = await client.wait(id, {
    timeoutMs: v["wait-timeout"] !== undefined ? int(v["wait-timeout"], "--wait-timeout") * 1000 : 30 * 60_000,
    onProgress: (j) => {
      const line = progressBar(j);
      if (line === lastLine) return;
      lastLine = line;
      io.stderr.write(tty ? `\r\x1b[2K${line}` : `${line}\n`);
    },
  }).finally(() => {
    if (tty && lastLine) io.stderr.write("\n");
  });
  out(jobDetails(job), { job });
  return job.status === "succeeded" ? EXIT.ok : EXIT.jobFailed;
}

/**
 * Flags before environment. An execute-api URL with no token means an IAM stage (the deployed
 * default), so it signs; a stage with a JWT authorizer is reached by giving the token.
 */
export function authOf(v: Pick<Values, "token" | "sigv4" | "region">, env: Io["env"], baseUrl: string): Auth | undefined {
  const mode = env.WARDEN_AUTH?.trim().toLowerCase() || undefined;
  if (mode !== undefined && mode !== "sigv4" && mode !== "bearer") throw new UsageError(`WARDEN_AUTH must be sigv4 or bearer (got ${JSON.stringify(env.WARDEN_AUTH)})`);
  if (v.sigv4 && v.token !== undefined) throw new UsageError("--sigv4 and --token are two ways to authenticate: give one");
  const token = v.token ?? env.WARDEN_TOKEN;
  const sigv4 = v.sigv4 || (v.token === undefined && (mode === "sigv4" || (mode === undefined && !token && executeApiRegion(baseUrl) !== undefined)));
  if (!sigv4) return token ? { kind: "bearer", token } : undefined;
  // An execute-api host names its region; a shell's AWS_REGION may be another one's.
  const region = v.region ?? executeApiRegion(baseUrl) ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION;
  if (!region) throw new UsageError("--sigv4 needs the stage's region: --region, or AWS_REGION");
  return { kind: "sigv4", region };
}

function report(e: unknown, io: Io, json: boolean | undefined): number {
  const code =
    e instanceof UsageError ? EXIT.usage : e instanceof StaleJobError || e instanceof WaitTimeoutError ? EXIT.gaveUp : EXIT.apiError;
  if (json) {
    const job = e instanceof StaleJobError || e instanceof WaitTimeoutError ? e.job : undefined;
    const api = e instanceof WardenApiError ? { status: e.status, code: e.code, details: e.details } : {};
    io.stdout.write(`${JSON.stringify({ error: { name: (e as Error).name, message: (e as Error).message, ...api, ...(job ? { job } : {}) } }, null, 2)}\n`);
  }
  const known = e instanceof WardenError || e instanceof UsageError;
  io.stderr.write(`warden: ${known ? (e as Error).message : `unexpected error: ${String((e as Error)?.message ?? e)}`}\n`);
  if (e instanceof UsageError) io.stderr.write(`\n${USAGE}`);
  return code;
}

function one(args: string[], message: string): string {
  if (args.length !== 1 || !args[0]) throw new UsageError(message);
  return args[0];
}

function none(args: string[], command: string): void {
  if (args.length) throw new UsageError(`${command} takes no arguments (got ${args.join(" ")})`);
}

function int(s: string, flag: string): number {
  if (!/^-?\d+$/.test(s)) throw new UsageError(`${flag} must be a whole number (got ${JSON.stringify(s)})`);
  return Number(s);
}

/** `--input` is JSON, or `@path` to read JSON from a file. */
function parseInput(s: string): unknown {
  let text = s;
  if (s.startsWith("@")) {
    try {
      text = readFileSync(s.slice(1), "utf8");
    } catch (e) {
      throw new UsageError(`cannot read --input file: ${(e as Error).message}`);
    }
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UsageError(`--input is not valid JSON: ${(e as Error).message}`);
  }
}
