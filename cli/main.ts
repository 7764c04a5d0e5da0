/**
 * `warden`: the command line over the typed client. Tables for people, `--json` for scripts,
 * and an exit code a script can branch on (see EXIT). The command line is parsed by commander:
 * per-command help, did-you-mean, and every mistake reported as one line plus a hint.
 */
import { readFileSync } from "node:fs";
import { Command, CommanderError, Option } from "commander";
import type { RESUME_WAKE_MAX } from "../core/api/controls.js";
import type { MAX_LOG_LINES } from "../core/api/requests.js";
import {
  StaleJobError,
  WaitTimeoutError,
  WardenApiError,
  WardenClient,
  WardenError,
  bulkTotalOf,
  executeApiRegion,
  type ApiJob,
  type Auth,
  type BulkTotal,
  type ChainStep,
  type ChildRequest,
  type FlowPolicy,
  type JobWhy,
  type LimitSettings,
  type Priority,
  type QueueName,
  type Schedule,
  type ScheduleSettings,
  type Status,
} from "../client/index.js";
import {
  HOLD_REASONS,
  bulkText,
  controlsText,
  deadLettersText,
  detailsText,
  jobDetails,
  jobsTable,
  limitText,
  logLines,
  logsNote,
  pausedText,
  progressBar,
  queuesText,
  scheduleLine,
  scheduleText,
  schedulesText,
  showText,
  stuckText,
  sweepText,
  treeText,
  whyLine,
  wokenText,
  workersText,
  type JobTree,
  type TreeOptions,
} from "./format.js";

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

/** The options every command takes (before or after the command's name). */
export interface GlobalOptions {
  url?: string;
  token?: string;
  sigv4?: boolean;
  region?: string;
  json?: boolean;
}

/** A wrong command line: exit 2, one line, and a pointer to the help of `command` (or the program's). */
export class UsageError extends Error {
  override name = "UsageError";
  constructor(
    message: string,
    readonly command?: string,
  ) {
    super(message);
  }
}

const VERSION = (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }).version;

// Written as records so that tsc fails here when a status or a queue is added or renamed.
const STATUSES = Object.keys({ queued: 1, running: 1, waiting: 1, succeeded: 1, failed: 1, cancelled: 1 } satisfies Record<Status, 1>) as Status[];
const QUEUES = Object.keys({ default: 1, large: 1 } satisfies Record<QueueName, 1>) as QueueName[];
const PRIORITY_LEVELS = Object.keys({ high: 1, normal: 1, low: 1 } satisfies Record<Priority, 1>) as Priority[];
const POLICIES = Object.keys({ collect: 1, failFast: 1 } satisfies Record<FlowPolicy, 1>) as FlowPolicy[];
const OVERLAPS = Object.keys({ skip: 1, allow: 1, cancelPrevious: 1 } satisfies Record<Schedule["overlap"], 1>) as Schedule["overlap"][];
const CATCH_UPS = Object.keys({ none: 1, one: 1, all: 1 } satisfies Record<Schedule["catchUp"], 1>) as Schedule["catchUp"][];

const LIST_MAX = 100;
/** The API's most lines per answer; typed off the server's constant, so tsc fails here when it changes. */
const LOGS_MAX: typeof MAX_LOG_LINES = 1000;
/** Held jobs a resume (or a removed limit) wakes in its own call; the sweeper wakes the rest. Typed off the server's constant. */
const WAKE_MAX: typeof RESUME_WAKE_MAX = 1_000;
const RETRY_STATUSES = ["failed", "cancelled"] as const satisfies readonly Status[];
const CANCEL_STATUSES = ["queued", "running"] as const satisfies readonly Status[];
const DEFAULT_WAIT_SECONDS = 30 * 60;
/** `warden tree`: levels below the job, and children per parent, unless told; the children route's page is at most LIST_MAX. */
const TREE_DEPTH = 5;
const TREE_DEPTH_MAX = 50;
const TREE_LIMIT = 50;
const TREE_LIMIT_MAX = 1000;
/** One tree reads at most this many jobs, whatever --depth and --limit multiply to. */
const TREE_MAX_JOBS = 5000;
/** Parents whose children are read at once. */
const TREE_CONCURRENCY = 8;
/** How often `--wait` looks at a running job; a queued one backs off (see `waitFor`). */
export const RUNNING_POLL_MS = 1_000;
const QUEUED_POLL_MAX_MS = 5_000;

const GLOBAL_HELP = `
Environment: WARDEN_URL, WARDEN_TOKEN, WARDEN_AUTH (sigv4 or bearer); for --sigv4 the AWS SDK's
default credential chain (AWS_PROFILE, AWS_ACCESS_KEY_ID…, SSO, a role) and AWS_REGION.

When the URL is an execute-api URL (https://ID.execute-api.REGION.amazonaws.com) and no token
is given, requests are SigV4-signed by default. WARDEN_AUTH=bearer turns that off.

Exit codes: 0 ok, 1 job failed or cancelled, 2 usage, 3 API error, 4 wait gave up (stale or timed out)

Run 'warden help COMMAND' (or 'warden COMMAND --help') for a command's options.
`;

const SUBMIT_HELP = `
--children FILE holds a JSON array of children, [{"type": T, "input": {...}, "key": K}, ...] (1 to
10,000; input and key optional, and "concurrencyKey" to count a child under that key's limits):
the job starts waiting and runs once they have all ended.
--after FILE holds a chain's steps, [{"type": T, "input": {...}}, {"type": U}, ...]: they run first,
in order, each on the result of the one before, and the job runs on the last one's result (so only
the first step has an input, and the job none). FILE may be - for stdin.

Examples:
  warden submit demo.sleep --input '{"items":8,"msPerItem":200}' --wait
  warden submit junit.import --input @report-input.json --idempotency-key nightly-2024-05-01
  warden submit demo.combine --input '{}' --children chunks.json --policy failFast --wait
  warden submit demo.transcribe --after steps.json      (steps.json: [{"type":"demo.download","input":{"url":"https://…"}}])
`;

const TREE_HELP = `
Each line is a job: its place among its parent's children (#index), id, type, status, key (when
its spawn named it), and its result or error, cut short. A parent's line ends with its children's
counts. A chain is a nested tree: each step waits on the step before it.

Examples:
  warden tree 01JOBID
  warden tree 01JOBID --limit 200 --depth 1
  warden tree 01JOBID --json | jq '.tree.children[] | select(.job.status == "failed") | .job.id'
`;

const PAUSE_HELP = (verb: "pause" | "resume"): string => `
A pause names a queue or a job type: queue:<queue> (${QUEUES.join(", ")}) or type:<job type>.
Its queued jobs are held: they stay queued, spend no attempt, and start once it is resumed (the
resume wakes them); a job already running runs on. Pausing twice is one pause.
'warden limits' lists the pauses with the jobs each holds.

Examples:
${
  verb === "pause"
    ? "  warden pause type:report.render\n  warden pause queue:large"
    : "  warden resume type:report.render\n  warden resume queue:large"
}
`;

const LIMITS_HELP = `
A limit names a job type or a concurrency key: type:<job type>, or key:<key> for the jobs
submitted with --concurrency-key <key> (a tenant, a downstream API). A job counts under its
type's limits and its key's. One over a limit is held: it stays queued, spends no attempt, and
starts when a running one ends (concurrency) or its window has room (rate).
With no command, lists every pause and limit with the jobs running under it and held by it.

Examples:
  warden limits
  warden limits set key:tenant-acme --concurrency 5
  warden limits set type:report.render --concurrency 20 --rate 10/1s
  warden limits rm key:tenant-acme
`;

const LIMITS_SET_HELP = `
--rate STARTS/SECONDSs: at most STARTS starts in any window of SECONDS seconds, e.g. 10/1s,
100/60s, 5/0.5s. The API checks the ranges (concurrency 1 to 10,000; 1 to 1,000 starts per
0.1 s to a day) and refuses the rest with a 400 that writes nothing.
A set replaces the key's limit: give --concurrency and --rate together to keep both.

Examples:
  warden limits set key:tenant-acme --concurrency 5
  warden limits set type:report.render --concurrency 20 --rate 10/1s
  warden limits set key:geocoder-api --rate 100/60s
`;

const SCHEDULES_HELP = `
A schedule submits a job of its type, with its input, on a cron in a time zone or at a fixed rate.
Each tick's job is made once, however many sweeps see the tick. The sweeper fires the ticks that
have come, every few seconds. A schedule is yours (the admin sees and changes everyone's).
With no command, lists your schedules: cadence, overlap/catch-up, next run, and how many ticks
fired, were skipped (the previous run still live) and were missed.

Examples:
  warden schedules
  warden schedules add nightly-report report.render --cron '30 2 * * *' --tz Europe/Paris --input '{"template":"daily"}'
  warden schedules add heartbeat demo.sleep --every 5m --overlap allow
  warden schedules show nightly-report
  warden schedules pause nightly-report
  warden schedules rm heartbeat
`;

const SCHEDULE_SET_HELP = (verb: "add" | "set"): string => `
--cron EXPR: 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first,
in the zone --tz names (an IANA name, e.g. Europe/Paris; default UTC). --every N: a fixed rate,
5m, 1h, 1d or 90s, its first tick N after the schedule is made.
--overlap: when a tick comes while the previous run is still live, skip it (the default), allow
a second run, or cancelPrevious. --catch-up: the ticks that came while nothing fired them (the
sweeper was down, say): none fires them, one fires the newest (the default), all fires every
one, at most --catch-up-max (default 100).
${
  verb === "add"
    ? "The API checks the cron, the zone and the ranges (how often a schedule may fire, among them),\nand refuses the rest with a 400 that writes nothing."
    : "set replaces the schedule's settings: what is not given goes back to its default (it stays paused\nor running: --paused pauses it). Its runs and counts stay; a new cadence counts from now."
}

Examples:
${
  verb === "add"
    ? "  warden schedules add nightly-report report.render --cron '30 2 * * *' --tz Europe/Paris\n  warden schedules add sync-acme crm.sync --every 15m --input '{\"tenant\":\"acme\"}' --concurrency-key acme --catch-up none"
    : "  warden schedules set nightly-report report.render --cron '0 3 * * 1-5' --tz Europe/Paris\n  warden schedules set sync-acme crm.sync --every 1h --overlap cancelPrevious"
}
`;

const DASHBOARD_HELP = `
The page runs in your browser; its calls go to this process, which forwards them to the stage
signed with your AWS credentials (SigV4) or with --token, so the browser never holds a credential.

Examples:
  warden dashboard --url https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com
  warden dashboard --url https://api.example.com --token "$JWT" --port 4100 --no-open
`;

/** What a missing argument means, per command (commander would say "missing required argument 'id'"). */
const MISSING: Record<string, string> = {
  submit: `submit needs a job type, e.g. warden submit demo.sleep --input '{"items":5}'`,
  status: "status needs a job id",
  show: "show needs a job id",
  why: "why needs a job id",
  logs: "logs needs a job id",
  wait: "wait needs a job id",
  cancel: "cancel needs a job id",
  retry: "retry needs a job id",
  tree: "tree needs a job id",
  pause: "pause needs what to pause: type:<job type> or queue:<queue>, e.g. warden pause type:demo.sleep",
  resume: "resume needs what to resume: type:<job type> or queue:<queue>, e.g. warden resume type:demo.sleep",
  "limits set": "limits set needs a limit key: type:<job type> or key:<concurrency key>, e.g. warden limits set key:tenant-acme --concurrency 5",
  "limits rm": "limits rm needs a limit key: type:<job type> or key:<concurrency key>, e.g. warden limits rm key:tenant-acme",
  "schedules show": "schedules show needs a schedule id (warden schedules lists them)",
  "schedules add": "schedules add needs an id and a job type, e.g. warden schedules add nightly-report report.render --cron '30 2 * * *' --tz Europe/Paris",
  "schedules set": "schedules set needs an id and a job type, e.g. warden schedules set nightly-report report.render --every 1h",
  "schedules rm": "schedules rm needs a schedule id",
  "schedules pause": "schedules pause needs a schedule id",
  "schedules resume": "schedules resume needs a schedule id",
};

const LIST_HELP = `
--since and --until take an ISO time (2024-05-01, 2024-05-01T09:00:00Z) or an age: 30s, 15m, 2h, 3d, 1w ago.

Examples:
  warden list --status failed --type junit.import --since 2h
  warden list --queue large --since 2024-05-01T00:00:00Z --until 2024-05-02T00:00:00Z --all
  warden list --owner arn:aws:iam::123456789012:user/ci     (admin)
`;

const BULK_HELP = (verb: "retry" | "cancel", statuses: readonly string[], dflt: string): string => `
With --all (admin), ${verb} every job matching --type and/or --queue, and --status (${statuses.join(" or ")}; default ${dflt}).
Try it with --dry-run first: it says how many jobs match and changes nothing.

Examples:
  warden ${verb} 01JOBID
  warden ${verb} --all --type junit.import --dry-run
  warden ${verb} --all --type junit.import --queue large${verb === "retry" ? " --status cancelled" : " --status queued"}
`;

/** `schedules add` and `schedules set`: what the schedule fires, and when. */
function scheduleOptions(c: Command, command: string): Command {
  return c
    .option("--cron <expr>", "fire on this cron expression, e.g. '30 2 * * *' (02:30 every day)")
    .option("--tz <zone>", "with --cron: the IANA time zone its times are in, e.g. Europe/Paris (default UTC)")
    .addOption(new Option("--every <interval>", "fire at a fixed rate: 5m, 1h, 1d, 90s").argParser(every("--every", command)))
    .option("--input <json>", "each job's input as JSON, or @path to read it from a file")
    .addOption(new Option("--overlap <policy>", "a tick while the previous run is live: skip it (default), allow it, or cancelPrevious").choices(OVERLAPS).argParser(choice("--overlap", OVERLAPS, command)))
    .addOption(new Option("--catch-up <policy>", "the ticks missed while nothing fired them: fire none, one (default, the newest) or all").choices(CATCH_UPS).argParser(choice("--catch-up", CATCH_UPS, command)))
    .addOption(new Option("--catch-up-max <n>", "with --catch-up all: fire at most this many missed ticks, the newest (default 100)").argParser(whole("--catch-up-max", 1, undefined, command)))
    .addOption(new Option("--queue <queue>", "the queue its jobs run on (default: the type's)").choices(QUEUES).argParser(choice("--queue", QUEUES, command)))
    .addOption(new Option("--max-attempts <n>", "each job's attempts before it fails").argParser(whole("--max-attempts", 1, undefined, command)))
    .addOption(new Option("--timeout <seconds>", "each job's time limit for one attempt").argParser(whole("--timeout", 1, undefined, command)))
    .option("--concurrency-key <key>", "count its jobs under this key's limits (warden limits set key:<key> …), beside their type's")
    .addOption(new Option("--priority <level>", "its jobs' priority on their queue: high, normal (default) or low").choices(PRIORITY_LEVELS).argParser(choice("--priority", PRIORITY_LEVELS, command)))
    .option("--paused", "make it paused: no tick fires until `warden schedules resume ID`");
}

/**
 * The schedule's settings from `add` and `set`'s options. Which flags go together is the command
 * line's to check (a cron or a rate, not both; --tz only with a cron); the cron itself, the zone
 * and the ranges are the API's, whose 400 says what is wrong.
 */
function scheduleArgs(command: string, type: string, o: Record<string, unknown>): ScheduleSettings {
  if (o.cron !== undefined && o.every !== undefined) throw new UsageError("give --cron or --every, not both: a schedule fires on a cron or at a fixed rate", command);
  if (o.cron === undefined && o.every === undefined) throw new UsageError(`${command} needs --cron EXPR (with --tz ZONE) or --every INTERVAL (5m, 1h, 1d)`, command);
  if (o.tz !== undefined && o.cron === undefined) throw new UsageError("--tz goes with --cron (a fixed rate is the same in every zone)", command);
  if (o.catchUpMax !== undefined && o.catchUp !== "all") throw new UsageError("--catch-up-max goes with --catch-up all (the most missed ticks it fires)", command);
  return {
    type,
    ...(o.input !== undefined ? { input: parseInput(String(o.input), command) } : {}),
    ...(o.cron !== undefined ? { cron: String(o.cron) } : {}),
    ...(o.tz !== undefined ? { timeZone: String(o.tz) } : {}),
    ...(o.every !== undefined ? { everySeconds: o.every as number } : {}),
    ...(o.overlap !== undefined ? { overlap: o.overlap as Schedule["overlap"] } : {}),
    ...(o.catchUp !== undefined ? { catchUp: o.catchUp as Schedule["catchUp"] } : {}),
    ...(o.catchUpMax !== undefined ? { catchUpMax: o.catchUpMax as number } : {}),
    ...(o.queue !== undefined ? { queue: o.queue as QueueName } : {}),
    ...(o.maxAttempts !== undefined ? { maxAttempts: o.maxAttempts as number } : {}),
    ...(o.timeout !== undefined ? { timeoutSeconds: o.timeout as number } : {}),
    ...(o.concurrencyKey !== undefined ? { concurrencyKey: String(o.concurrencyKey) } : {}),
    ...(o.priority !== undefined ? { priority: o.priority as Priority } : {}),
    ...(o.paused ? { paused: true } : {}),
  };
}

/** The --all form's options, the same for cancel and retry but for the statuses each takes. */
function bulkOptions(c: Command, verb: "retry" | "cancel", statuses: readonly string[], statusHelp: string, dflt: string): Command {
  return c
    .option("--all", `(admin) ${verb} every job matching --type and/or --queue`)
    .option("--type <type>", "with --all: jobs of this type")
    .addOption(new Option("--queue <queue>", "with --all: jobs on this queue").choices(QUEUES).argParser(choice("--queue", QUEUES, verb)))
    .addOption(new Option("--status <status>", `with --all: ${statusHelp} (default ${dflt})`).choices(statuses).argParser(choice("--status", statuses, verb)))
    .option("--dry-run", "with --all: say how many jobs match, and change nothing")
    .addHelpText("after", BULK_HELP(verb, statuses, dflt));
}

type Out = (human: string, json: unknown) => void;

interface Ctx {
  client: WardenClient;
  io: Io;
  out: Out;
  /** The global options, wherever on the command line they were given. */
  g: GlobalOptions;
}

export async function main(argv: string[], io: Io = { stdout: process.stdout, stderr: process.stderr, env: process.env }): Promise<number> {
  let code: number = EXIT.ok;
  /** The subcommand being parsed, for the hint after a usage error. */
  let command: string | undefined;
  let json = argv.includes("--json");
  const program = buildProgram(io, (name) => (command = name), async (g, body) => {
    json = g.json === true;
    const out: Out = (human, j) => {
      io.stdout.write(g.json ? `${JSON.stringify(j, null, 2)}\n` : `${human}\n`);
    };
    code = await body({ client: clientFor(g, io), io, out, g });
  });
  try {
    await program.parseAsync(argv, { from: "user" });
    return code;
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help and --version come this way too, having printed what was asked.
      if (e.code === "commander.helpDisplayed" || e.code === "commander.version" || e.code === "commander.help") {
        return e.exitCode === 0 ? EXIT.ok : EXIT.usage;
      }
      const hint = e.code === "commander.unknownCommand" ? undefined : command;
      return report(new UsageError(commanderMessage(e, command), hint), io, json);
    }
    return report(e instanceof UsageError && !e.command && command ? new UsageError(e.message, command) : e, io, json);
  }
}

type Action = (g: GlobalOptions, body: (ctx: Ctx) => Promise<number>) => Promise<void>;

function buildProgram(io: Io, entering: (command: string) => void, act: Action): Command {
  const program = new Command("warden")
    .description("Run and watch Warden's background jobs through its HTTP API.")
    .usage("<command> [options]")
    .version(VERSION, "-V, --version", "print the version")
    .helpOption("-h, --help", "show help")
    .helpCommand(false)
    .option("--url <url>", "the API (or WARDEN_URL; default http://127.0.0.1:4000)")
    .option("--token <token>", "bearer token (or WARDEN_TOKEN): npm start's tokens, or a JWT")
    .option("--sigv4", "sign requests with AWS SigV4 for an IAM-authorized stage (or WARDEN_AUTH=sigv4)")
    .option("--region <region>", "the stage's region for --sigv4 (default: the one in an execute-api URL, else AWS_REGION)")
    .option("--json", "machine-readable output on stdout")
    .addHelpText("after", GLOBAL_HELP)
    .showSuggestionAfterError(true)
    .configureHelp({ showGlobalOptions: true, sortSubcommands: false })
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
      // Errors are printed by `report`, in one line with a hint; help is not dumped after them.
      outputError: () => undefined,
    })
    .exitOverride()
    .hook("preSubcommand", (_program, sub) => entering(sub.name()));

  const cmd = (spec: string, description: string): Command => program.command(spec).description(description).helpOption("-h, --help", "show help for this command");
  const run =
    (body: (ctx: Ctx, args: string[], opts: Record<string, unknown>) => Promise<number>) =>
    async (...params: unknown[]): Promise<void> => {
      const self = params.at(-1) as Command;
      const opts = params.at(-2) as Record<string, unknown>;
      const args = params.slice(0, -2) as string[];
      await act(self.optsWithGlobals<GlobalOptions>(), (ctx) => body(ctx, args, opts));
    };

  cmd("submit <type>", "submit a job of this type (and optionally wait for it)")
    .option("--input <json>", "the job's input as JSON, or @path to read it from a file")
    .addOption(new Option("--queue <queue>", "the queue to run on").choices(QUEUES).argParser(choice("--queue", QUEUES, "submit")))
    .addOption(new Option("--max-attempts <n>", "attempts before the job fails").argParser(whole("--max-attempts", 1, undefined, "submit")))
    .addOption(new Option("--timeout <seconds>", "time limit for one attempt").argParser(whole("--timeout", 1, undefined, "submit")))
    .option("--run-at <iso>", "run no earlier than this time (ISO 8601 with an offset, e.g. 2030-01-01T09:00:00Z)")
    .option("--idempotency-key <key>", "a repeated submit with the same key answers with the first job")
    .option("--concurrency-key <key>", "count the job under this key's limits (warden limits set key:<key> …), beside its type's")
    .addOption(new Option("--priority <level>", "which of its queue's waiting jobs starts first: high, normal (default) or low").choices(PRIORITY_LEVELS).argParser(choice("--priority", PRIORITY_LEVELS, "submit")))
    .option("--children <file>", "fan-out: a JSON file (or - for stdin) of the children, [{type, input?, key?}, …]; the job runs once they have all ended")
    .addOption(new Option("--policy <policy>", "with --children: collect (wait for every child; the default) or failFast (fail at the first failed child)").choices(POLICIES).argParser(choice("--policy", POLICIES, "submit")))
    .option("--after <file>", "a chain: a JSON file (or - for stdin) of steps to run first, [{type, input?}, …]; the job takes the last one's result as its input")
    .option("--wait", "wait for the job to finish, with a progress bar on stderr")
    .addOption(new Option("--wait-timeout <seconds>", `with --wait: give up after this long (default ${DEFAULT_WAIT_SECONDS})`).argParser(whole("--wait-timeout", 1, undefined, "submit")))
    .addHelpText("after", SUBMIT_HELP)
    .action(
      run(async ({ client, io, out }, [type], o) => {
        if (o.waitTimeout !== undefined && !o.wait) {
          throw new UsageError("--wait-timeout needs --wait (or use 'warden wait ID --wait-timeout SECONDS')", "submit");
        }
        const flow = flowArgs(o);
        const input = o.input !== undefined ? parseInput(String(o.input)) : undefined;
        const { job, created } = await client.submit(type!, input, {
          ...(o.queue !== undefined ? { queue: o.queue as QueueName } : {}),
          ...(o.maxAttempts !== undefined ? { maxAttempts: o.maxAttempts as number } : {}),
          ...(o.timeout !== undefined ? { timeoutSeconds: o.timeout as number } : {}),
          ...(o.runAt !== undefined ? { runAt: String(o.runAt) } : {}),
          ...(o.idempotencyKey !== undefined ? { idempotencyKey: String(o.idempotencyKey) } : {}),
          ...(o.concurrencyKey !== undefined ? { concurrencyKey: String(o.concurrencyKey) } : {}),
          ...(o.priority !== undefined ? { priority: o.priority as Priority } : {}),
          ...flow,
        });
        if (!o.wait) {
          const kids = job.children ? ` (${job.children.total} ${job.children.total === 1 ? "child" : "children"}; warden tree ${job.id} shows them)` : "";
          out(`${created ? "submitted" : "already submitted (same idempotency key)"}: ${job.id}  ${job.type} on ${job.queue}, ${job.status}${kids}`, { job, created });
          return EXIT.ok;
        }
        io.stderr.write(`${created ? "submitted" : "found"} ${job.id}; waiting…\n`);
        return waitFor(client, job.id, o.waitTimeout as number | undefined, io, out);
      }),
    );

  cmd("status <id>", "show one job").action(
    run(async ({ client, out }, [id]) => {
      const job = await client.get(id!);
      out(jobDetails(job), { job });
      return EXIT.ok;
    }),
  );

  cmd("show <id>", "everything about one job: input, result, why it waits, every attempt with its error and stack, who acted on it").action(
    run(async ({ client, out }, [id]) => {
      const job = await client.get(id!);
      // The job first: an unknown id is one 404, not three.
      const unfinished = job.status === "queued" || job.status === "running" || job.status === "waiting";
      const [attempts, why] = await Promise.all([client.attempts(id!), unfinished ? client.why(id!) : Promise.resolve(undefined)]);
      out(showText(job, attempts, why, Date.now()), { job, attempts, why: why ?? null });
      return EXIT.ok;
    }),
  );

  cmd("tree <id>", "a job and its children as an indented tree, into children that are parents themselves (chains)")
    .addOption(new Option("--depth <n>", `levels of children below the job, 0 to ${TREE_DEPTH_MAX} (default ${TREE_DEPTH})`).argParser(whole("--depth", 0, TREE_DEPTH_MAX, "tree")))
    .addOption(new Option("--limit <n>", `children shown per parent, 1 to ${TREE_LIMIT_MAX} (default ${TREE_LIMIT})`).argParser(whole("--limit", 1, TREE_LIMIT_MAX, "tree")))
    .addHelpText("after", TREE_HELP)
    .action(
      run(async ({ client, out }, [id], o) => {
        const opts: TreeOptions = { depth: (o.depth as number | undefined) ?? TREE_DEPTH, limit: (o.limit as number | undefined) ?? TREE_LIMIT, maxLimit: TREE_LIMIT_MAX, maxJobs: TREE_MAX_JOBS };
        const tree = await readTree(client, id!, opts);
        out(treeText(tree, opts), { tree });
        return EXIT.ok;
      }),
    );

  cmd("why <id>", "why a job is not running now (or how it ended), in one line").action(
    run(async ({ client, out }, [id]) => {
      const why: JobWhy = await client.why(id!);
      // A held job's why names its pause or limit only in its message: the job's `held` has the key.
      const held = HOLD_REASONS.has(why.reason) ? (await client.get(id!)).held : undefined;
      out(whyLine(why, id!, Date.now(), held), { why });
      return EXIT.ok;
    }),
  );

  cmd("logs <id>", "a job's log lines, oldest first: its ctx.log lines and the runner's about it")
    .addOption(new Option("--limit <n>", `at most this many lines, 1 to ${LOGS_MAX} (default: the API's)`).argParser(whole("--limit", 1, LOGS_MAX, "logs")))
    .action(
      run(async ({ client, io, out }, [id], o) => {
        const logs = await client.logs(id!, o.limit !== undefined ? { limit: o.limit as number } : {});
        // The note goes to stderr, so the lines alone can be piped to grep.
        out(logLines(logs), logs);
        io.stderr.write(`${logsNote(logs, id!)}\n`);
        return EXIT.ok;
      }),
    );

  cmd("wait <id>", "wait for a job to finish, with a progress bar on stderr")
    .addOption(new Option("--wait-timeout <seconds>", `give up after this long (default ${DEFAULT_WAIT_SECONDS})`).argParser(whole("--wait-timeout", 1, undefined, "wait")))
    .action(run(async ({ client, io, out }, [id], o) => waitFor(client, id!, o.waitTimeout as number | undefined, io, out)));

  cmd("list", "list your jobs (the admin: everyone's), newest first")
    .addOption(new Option("--status <status>", "only jobs in this status").choices(STATUSES).argParser(choice("--status", STATUSES, "list")))
    .option("--type <type>", "only jobs of this type")
    .addOption(new Option("--queue <queue>", "only jobs on this queue").choices(QUEUES).argParser(choice("--queue", QUEUES, "list")))
    .option("--owner <caller>", "(admin) only this caller's jobs (a JWT subject or an IAM principal)")
    .addOption(new Option("--since <time>", "created at or after this time: ISO, or an age such as 2h").argParser(instant("--since", "list")))
    .addOption(new Option("--until <time>", "created before this time: ISO, or an age such as 30m").argParser(instant("--until", "list")))
    .option("--id <id>", "just this job (none when you may not read it)")
    .addOption(new Option("--limit <n>", `jobs per page, 1 to ${LIST_MAX}`).argParser(whole("--limit", 1, LIST_MAX, "list")))
    .option("--all", "follow every page, not only the first")
    .addHelpText("after", LIST_HELP)
    .action(
      run(async ({ client, out }, _args, o) => {
        const since = o.since as Instant | undefined;
        const until = o.until as Instant | undefined;
        if (since && until && since.ms >= until.ms) {
          throw new UsageError(`--since (${since.iso}) must be before --until (${until.iso})`, "list");
        }
        const filter = {
          ...(o.status !== undefined ? { status: o.status as Status } : {}),
          ...(o.type !== undefined ? { type: String(o.type) } : {}),
          ...(o.queue !== undefined ? { queue: o.queue as QueueName } : {}),
          ...(o.owner !== undefined ? { owner: String(o.owner) } : {}),
          ...(since ? { createdAfter: since.iso } : {}),
          ...(until ? { createdBefore: until.iso } : {}),
          ...(o.id !== undefined ? { id: String(o.id) } : {}),
          ...(o.limit !== undefined ? { limit: o.limit as number } : {}),
        };
        if (o.all) {
          const jobs: ApiJob[] = [];
          for await (const page of client.list(filter)) jobs.push(...page);
          out(jobs.length ? jobsTable(jobs) : "no jobs", { jobs, nextCursor: null });
        } else {
          const page = await client.listPage(filter);
          out((page.jobs.length ? jobsTable(page.jobs) : "no jobs") + (page.nextCursor ? "\n(more: use --all)" : ""), page);
        }
        return EXIT.ok;
      }),
    );

  bulkOptions(cmd("cancel [id]", "cancel a job (a running one stops when its worker sees it), or with --all every matching job (admin)"), "cancel", CANCEL_STATUSES, "only queued or only running jobs", "both")
    .action(
      run(async ({ client, io, out }, [id], o) => {
        const bulk = bulkArgs("cancel", id, o);
        if (bulk) {
          const status = o.status as (typeof CANCEL_STATUSES)[number] | undefined;
          const total = await sayHowFar(io, "cancel", client.bulkCancel({ ...bulk.filter, ...(status ? { status } : {}) }, { onPage: progressNote(io) }));
          const note = status === "queued" ? undefined : "a running one stops when its worker sees it";
          out(bulkText("cancel", total, `${status ?? "queued or running"} job(s)${bulk.what}`, note), total);
          return EXIT.ok;
        }
        const job = await client.cancel(id!);
        out(job.status === "cancelled" ? `cancelled ${job.id}` : `cancel requested for ${job.id}; it stops when its worker sees it`, { job });
        return EXIT.ok;
      }),
    );

  bulkOptions(cmd("retry [id]", "queue a failed or cancelled job again with a fresh attempt budget, or with --all every matching job (admin)"), "retry", RETRY_STATUSES, "failed or cancelled jobs", "failed")
    .action(
      run(async ({ client, io, out }, [id], o) => {
        const bulk = bulkArgs("retry", id, o);
        if (bulk) {
          const status = (o.status as (typeof RETRY_STATUSES)[number] | undefined) ?? "failed";
          const total = await sayHowFar(io, "retry", client.bulkRetry({ ...bulk.filter, status }, { onPage: progressNote(io) }));
          out(bulkText("retry", total, `${status} job(s)${bulk.what}`), total);
          return EXIT.ok;
        }
        const job = await client.retry(id!);
        out(`queued ${job.id} again (attempt budget ${job.maxAttempts})`, { job });
        return EXIT.ok;
      }),
    );

  cmd("health", "check the API and what it depends on (exit 3 when something is down)").action(
    run(async ({ client, out }) => {
      const h = await client.health();
      out(Object.entries(h.checks).map(([k, s]) => `${k}: ${s}`).join("\n"), h);
      return h.ok ? EXIT.ok : EXIT.apiError;
    }),
  );

  cmd("stuck", "(admin) what the sweeper would act on now").action(
    run(async ({ client, out }) => {
      const r = await client.stuck();
      out(stuckText(r), r);
      return EXIT.ok;
    }),
  );

  cmd("sweep", "(admin) run one sweep now").action(
    run(async ({ client, out }) => {
      const report = await client.sweep();
      out(sweepText(report), { report });
      return EXIT.ok;
    }),
  );

  cmd("dead-letters", "(admin) peek at dead letters, or move them back with --redrive")
    .addOption(new Option("--redrive <queue>", "move this queue's dead letters back onto it").choices(QUEUES).argParser(choice("--redrive", QUEUES, "dead-letters")))
    .action(
      run(async ({ client, out }, _args, o) => {
        if (o.redrive !== undefined) {
          const queue = o.redrive as QueueName;
          const moved = await client.redrive(queue);
          out(`moved ${moved} message(s) from ${queue}'s dead-letter queue back to ${queue}`, { moved });
        } else {
          const r = await client.deadLetters();
          out(deadLettersText(r), r);
        }
        return EXIT.ok;
      }),
    );

  cmd("workers", "(admin) workers seen recently, the unresponsive ones called out").action(
    run(async ({ client, out }) => {
      const workers = await client.workers();
      out(workersText(workers, Date.now()), { workers });
      return EXIT.ok;
    }),
  );

  cmd("queues", "(admin) each queue's depth and its dead-letter queue's, as SQS reports them").action(
    run(async ({ client, out }) => {
      const queues = await client.queues();
      out(queuesText(queues), { queues });
      return EXIT.ok;
    }),
  );

  cmd("pause <target>", "(admin) pause a job type or a queue (type:T or queue:Q): its queued jobs are held until resumed")
    .addHelpText("after", PAUSE_HELP("pause"))
    .action(
      run(async ({ client, out }, [target]) => {
        const controls = await client.pause(target!);
        out(pausedText(target!, controls, Date.now()), controls);
        return EXIT.ok;
      }),
    );

  cmd("resume <target>", "(admin) end a pause, waking the jobs it held")
    .addHelpText("after", PAUSE_HELP("resume"))
    .action(
      run(async ({ client, out }, [target]) => {
        const controls = await client.resume(target!);
        out(wokenText(`resumed ${target}`, controls, WAKE_MAX), controls);
        return EXIT.ok;
      }),
    );

  const limits = cmd("limits", "(admin) the pauses and the concurrency and rate limits, with the jobs each holds; set and rm change a limit")
    .usage("[command] [options]")
    .addHelpText("after", LIMITS_HELP)
    // `limits bogus` is answered below in a line, not as commander's "too many arguments".
    .allowExcessArguments(true)
    .hook("preSubcommand", (_limits, sub) => entering(`limits ${sub.name()}`));
  const listLimits = run(async ({ client, out }) => {
    const controls = await client.controls();
    out(controlsText(controls, Date.now()), controls);
    return EXIT.ok;
  });
  limits.action(async (opts: Record<string, unknown>, self: Command) => {
    const [word] = self.args;
    if (word !== undefined) {
      const meant = /\(Did you mean (.*)\?\)/.exec(unknownCommand(limits, word).message)?.[1];
      const what = meant ? ` (did you mean ${meant}?)` : ": 'limits' lists them, 'limits set KEY' sets one, 'limits rm KEY' removes one";
      throw new UsageError(`unknown limits command '${word}'${what}`, "limits");
    }
    await listLimits(opts, self);
  });
  const limitsCmd = (spec: string, description: string): Command => limits.command(spec).description(description).helpOption("-h, --help", "show help for this command");

  limitsCmd("set <key>", "(admin) set the limit on type:T or key:K: --concurrency N, --rate STARTS/SECONDSs, or both")
    .addOption(new Option("--concurrency <n>", "at most this many of its jobs run at once").argParser(whole("--concurrency", 0, undefined, "limits set")))
    .addOption(new Option("--rate <starts/seconds>", "at most this many starts in any window of this many seconds, e.g. 10/1s").argParser(rate("--rate", "limits set")))
    .addHelpText("after", LIMITS_SET_HELP)
    .action(
      run(async ({ client, out }, [key], o) => {
        if (o.concurrency === undefined && o.rate === undefined) {
          throw new UsageError("limits set needs --concurrency N, --rate STARTS/SECONDSs or both (warden limits rm KEY removes a limit)", "limits set");
        }
        const limit: LimitSettings = {
          ...(o.concurrency !== undefined ? { concurrency: o.concurrency as number } : {}),
          ...(o.rate !== undefined ? { rate: o.rate as NonNullable<LimitSettings["rate"]> } : {}),
        };
        const controls = await client.setLimit(key!, limit);
        out(limitText(key!, controls), controls);
        return EXIT.ok;
      }),
    );

  limitsCmd("rm <key>", "(admin) remove the limit on type:T or key:K, waking the jobs it held").action(
    run(async ({ client, out }, [key]) => {
      const controls = await client.removeLimit(key!);
      out(wokenText(`removed the limit on ${key}`, controls, WAKE_MAX), controls);
      return EXIT.ok;
    }),
  );

  const schedules = cmd("schedules", "your schedules (the admin: everyone's), jobs submitted on a cron or at a fixed rate; show, add, set, rm, pause, resume")
    .usage("[command] [options]")
    .addHelpText("after", SCHEDULES_HELP)
    // `schedules bogus` is answered below in a line, not as commander's "too many arguments".
    .allowExcessArguments(true)
    .hook("preSubcommand", (_schedules, sub) => entering(`schedules ${sub.name()}`));
  const listSchedules = run(async ({ client, out }) => {
    const list = await client.schedules();
    out(schedulesText(list, Date.now()), { schedules: list });
    return EXIT.ok;
  });
  schedules.action(async (opts: Record<string, unknown>, self: Command) => {
    const [word] = self.args;
    if (word !== undefined) {
      const meant = /\(Did you mean (.*)\?\)/.exec(unknownCommand(schedules, word).message)?.[1];
      const what = meant ? ` (did you mean ${meant}?)` : ": 'schedules' lists them; show, add, set, rm, pause and resume take an id";
      throw new UsageError(`unknown schedules command '${word}'${what}`, "schedules");
    }
    await listSchedules(opts, self);
  });
  const schedulesCmd = (spec: string, description: string): Command => schedules.command(spec).description(description).helpOption("-h, --help", "show help for this command");

  schedulesCmd("show <id>", "one schedule: what it fires and when, its next runs (in its zone), its last runs and their jobs").action(
    run(async ({ client, out }, [id]) => {
      const schedule = await client.schedule(id!);
      out(scheduleText(schedule, Date.now()), { schedule });
      return EXIT.ok;
    }),
  );

  scheduleOptions(schedulesCmd("add <id> <type>", "make a schedule: a job of this type on --cron EXPR [--tz ZONE] or --every N"), "schedules add")
    .addHelpText("after", SCHEDULE_SET_HELP("add"))
    .action(
      run(async ({ client, out }, [id, type], o) => {
        const schedule = await client.createSchedule({ id: id!, ...scheduleArgs("schedules add", type!, o) });
        out(scheduleLine("added", schedule, Date.now()), { schedule });
        return EXIT.ok;
      }),
    );

  scheduleOptions(schedulesCmd("set <id> <type>", "replace a schedule's settings: the same options as add"), "schedules set")
    .addHelpText("after", SCHEDULE_SET_HELP("set"))
    .action(
      run(async ({ client, out }, [id, type], o) => {
        const schedule = await client.updateSchedule(id!, scheduleArgs("schedules set", type!, o));
        out(scheduleLine("updated", schedule, Date.now()), { schedule });
        return EXIT.ok;
      }),
    );

  schedulesCmd("rm <id>", "delete a schedule (the jobs it made stay)").action(
    run(async ({ client, out }, [id]) => {
      const answer = await client.deleteSchedule(id!);
      out(`removed schedule ${answer.deleted}`, answer);
      return EXIT.ok;
    }),
  );

  schedulesCmd("pause <id>", "pause a schedule: no tick fires until it is resumed").action(
    run(async ({ client, out }, [id]) => {
      const schedule = await client.pauseSchedule(id!);
      out(`paused schedule ${schedule.id}: no tick fires until \`warden schedules resume ${schedule.id}\``, { schedule });
      return EXIT.ok;
    }),
  );

  schedulesCmd("resume <id>", "resume a schedule from its next tick (the ticks that came while it was paused are not fired)").action(
    run(async ({ client, out }, [id]) => {
      const schedule = await client.resumeSchedule(id!);
      out(scheduleLine("resumed", schedule, Date.now()), { schedule });
      return EXIT.ok;
    }),
  );

  cmd("dashboard", "serve the dashboard for a stage on 127.0.0.1, forwarding its calls to --url (signed, or with --token)")
    .addOption(new Option("--port <port>", "where to listen on 127.0.0.1 (default: a free port)").argParser(whole("--port", 0, 65_535, "dashboard")))
    .option("--no-open", "print the URL without opening a browser")
    .addHelpText("after", DASHBOARD_HELP)
    .action(
      run(async ({ io, g }, _args, o) => {
        const url = g.url ?? io.env.WARDEN_URL;
        if (url === undefined) throw new UsageError("dashboard needs the stage's API: --url <ApiUrl> (the stage's ApiUrl output), or WARDEN_URL", "dashboard");
        const auth = authOf(g, io.env, url);
        // Loaded here: the proxy's modules (the local gateway's file server) are no other command's business.
        const { runDashboard } = await import("./dashboard.js");
        const stop = new AbortController();
        const onSignal = (): void => stop.abort();
        process.once("SIGINT", onSignal).once("SIGTERM", onSignal);
        try {
          const server = await runDashboard({
            url,
            ...(auth ? { auth } : {}),
            token: g.token,
            region: g.region,
            port: o.port as number | undefined,
            open: o.open !== false,
            signal: stop.signal,
            env: io.env,
            log: (line) => void io.stderr.write(`${line}\n`),
            ...(io.fetch ? { fetch: io.fetch } : {}),
          });
          await server.closed;
        } finally {
          process.off("SIGINT", onSignal).off("SIGTERM", onSignal);
        }
        return EXIT.ok;
      }),
    );

  // commander's own help command answers an unknown name with the whole help; this one says so in a line.
  program
    .command("help [command...]")
    .description("show help for a command, or a subcommand (help limits set)")
    .action((names: string[]) => {
      if (!names.length) return program.outputHelp();
      let at: Command = program;
      for (const name of names) {
        const sub = at.commands.find((c) => c.name() === name);
        if (!sub) throw unknownCommand(at, name);
        at = sub;
      }
      at.outputHelp();
    });

  return program;
}

function clientFor(g: GlobalOptions, io: Io): WardenClient {
  const baseUrl = g.url ?? io.env.WARDEN_URL ?? "http://127.0.0.1:4000";
  if (!/^https?:\/\//.test(baseUrl)) throw new UsageError(`${g.url !== undefined ? "--url" : "WARDEN_URL"} must start with http:// or https:// (got ${JSON.stringify(baseUrl)})`);
  const auth = authOf(g, io.env, baseUrl);
  return new WardenClient({ baseUrl, ...(auth ? { auth } : {}), ...(io.fetch ? { fetch: io.fetch } : {}) });
}

/**
 * Waits with a progress bar on stderr: redrawn in place on a terminal, a line per change otherwise.
 * A running job is looked at every second; a queued one with a growing pause (up to 5 s, or the
 * API's Retry-After when that is longer), since nothing moves until a worker takes it.
 */
async function waitFor(client: WardenClient, id: string, timeoutSeconds: number | undefined, io: Io, out: Out): Promise<number> {
  const tty = io.stderr.isTTY === true;
  let lastLine = "";
  const job = await client
    .wait(id, {
      timeoutMs: (timeoutSeconds ?? DEFAULT_WAIT_SECONDS) * 1000,
      runningIntervalMs: RUNNING_POLL_MS,
      maxIntervalMs: QUEUED_POLL_MAX_MS,
      onProgress: (j) => {
        const line = progressBar(j);
        if (line === lastLine) return;
        lastLine = line;
        io.stderr.write(tty ? `\r\x1b[2K${line}` : `${line}\n`);
      },
    })
    .finally(() => {
      if (tty && lastLine) io.stderr.write("\n");
    });
  out(jobDetails(job), { job });
  return job.status === "succeeded" ? EXIT.ok : EXIT.jobFailed;
}

/**
 * Flags before environment. An execute-api URL with no token means an IAM stage (the deployed
 * default), so it signs; a stage with a JWT authorizer is reached by giving the token.
 */
export function authOf(v: Pick<GlobalOptions, "token" | "sigv4" | "region">, env: Io["env"], baseUrl: string): Auth | undefined {
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

function report(e: unknown, io: Io, json: boolean): number {
  const code =
    e instanceof UsageError ? EXIT.usage : e instanceof StaleJobError || e instanceof WaitTimeoutError ? EXIT.gaveUp : EXIT.apiError;
  if (json) {
    const job = e instanceof StaleJobError || e instanceof WaitTimeoutError ? e.job : undefined;
    const api = e instanceof WardenApiError ? { status: e.status, code: e.code, details: e.details } : {};
    io.stdout.write(`${JSON.stringify({ error: { name: (e as Error).name, message: (e as Error).message, ...api, ...(job ? { job } : {}) } }, null, 2)}\n`);
  }
  const known = e instanceof WardenError || e instanceof UsageError;
  io.stderr.write(`warden: ${known ? (e as Error).message : `unexpected error: ${String((e as Error)?.message ?? e)}`}\n`);
  if (e instanceof WardenApiError && e.details !== undefined) {
    const details = detailsText(e.details);
    if (details) io.stderr.write(`${details}\n`);
  }
  if (e instanceof UsageError) io.stderr.write(e.command ? `run 'warden ${e.command} --help' for its options\n` : "run 'warden --help' for the commands and options\n");
  return code;
}

/** Commander's "unknown command" error, with its did-you-mean, for a name given to `help`. */
function unknownCommand(program: Command, name: string): CommanderError {
  const probe = new Command("warden").exitOverride().configureOutput({ outputError: () => undefined }).showSuggestionAfterError(true);
  for (const c of program.commands) probe.command(c.name());
  try {
    probe.parse([name], { from: "user" });
  } catch (e) {
    if (e instanceof CommanderError) return e;
  }
  return new CommanderError(EXIT.usage, "commander.unknownCommand", `unknown command '${name}'`);
}

/** Commander's wording, in one line: "unknown command 'sumbit' (did you mean submit?)". */
function commanderMessage(e: CommanderError, command: string | undefined): string {
  if (e.code === "commander.missingArgument" && command && MISSING[command]) return MISSING[command];
  return e.message
    .replace(/^error: /, "")
    .replace(/\n\(Did you mean (.*)\?\)/, " (did you mean $1?)")
    .replace(/\s*\n\s*/g, " ")
    .replace(/\.$/, "");
}

/**
 * `--all` or a job id, and the flags that go with --all. The API refuses a bulk call with
 * neither a type nor a queue (it would act on everything); this says so before sending it.
 */
function bulkArgs(
  verb: "retry" | "cancel",
  id: string | undefined,
  o: Record<string, unknown>,
): { filter: { type?: string; queue?: QueueName; dryRun: boolean }; what: string } | undefined {
  const withAll = ["type", "queue", "status", "dryRun"].filter((k) => o[k] !== undefined);
  const flag = (k: string): string => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
  if (!o.all) {
    if (id === undefined) throw new UsageError(MISSING[verb]!, verb);
    if (withAll.length) throw new UsageError(`${withAll.map(flag).join(", ")} go${withAll.length === 1 ? "es" : ""} with --all (warden ${verb} --all --type T), not with a job id`, verb);
    return undefined;
  }
  if (id !== undefined) throw new UsageError(`give a job id or --all, not both`, verb);
  if (o.type === undefined && o.queue === undefined) throw new UsageError(`--all needs --type or --queue (or both): it will not ${verb} every job at once`, verb);
  const type = o.type !== undefined ? String(o.type) : undefined;
  const queue = o.queue as QueueName | undefined;
  const what = `${type !== undefined ? ` of type ${type}` : ""}${queue !== undefined ? ` on queue ${queue}` : ""}`;
  return { filter: { ...(type !== undefined ? { type } : {}), ...(queue ? { queue } : {}), dryRun: o.dryRun === true }, what };
}

/** A bulk run that takes more than one call says how far it got after each (on stderr). */
function progressNote(io: Io): (page: { nextCursor: string | null }, total: BulkTotal) => void {
  return (page, total) => {
    if (page.nextCursor) io.stderr.write(`… ${total.matched} matched, ${total.acted} acted on, ${total.skipped} skipped so far\n`);
  };
}

/** When a bulk run fails part way, says on stderr what the calls before the failure did, then fails. */
async function sayHowFar(io: Io, verb: "retry" | "cancel", run: Promise<BulkTotal>): Promise<BulkTotal> {
  try {
    return await run;
  } catch (e) {
    const t = bulkTotalOf(e);
    if (t && t.calls > 0) {
      const done = t.dryRun ? "counted" : verb === "retry" ? "retried" : "cancelled";
      io.stderr.write(`before this failure, ${t.calls} call(s) had ${done} ${t.dryRun ? t.matched : t.acted} job(s) (matched ${t.matched}, skipped ${t.skipped}); run it again to go on\n`);
    }
    throw e;
  }
}

/** A time the user gave: when it is, and as ISO for the API. */
export interface Instant {
  ms: number;
  iso: string;
}

const AGE_UNITS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/**
 * A parser for a time option: an age (`90s`, `15m`, `2h`, `3d`, `1w`: that long ago) or an ISO
 * time, either a date (midnight UTC) or a date-time with `Z` or an offset. A date-time with no
 * offset is refused: read as local time it would mean different things on different machines.
 */
export function instant(flag: string, command: string, now: () => number = Date.now): (s: string) => Instant {
  return (s) => {
    const t = s.trim();
    const age = /^(\d+)([smhdw])$/.exec(t);
    let ms = NaN;
    if (age) ms = now() - Number(age[1]) * AGE_UNITS[age[2]!]!;
    else if (/^\d{4}-\d{2}-\d{2}$/.test(t) || /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/i.test(t)) {
      ms = Date.parse(t);
      // Date.parse rolls an impossible day over (2024-02-30 is read as 2024-03-01): refuse it.
      const [y, mo, d] = t.slice(0, 10).split("-").map(Number) as [number, number, number];
      const check = new Date(Date.UTC(y, mo - 1, d));
      if (check.getUTCFullYear() !== y || check.getUTCMonth() !== mo - 1 || check.getUTCDate() !== d) {
        throw new UsageError(`${flag}: ${JSON.stringify(s)} is not a real date`, command);
      }
    }
    if (!Number.isFinite(ms)) {
      throw new UsageError(`${flag} must be an ISO time (2024-05-01, 2024-05-01T09:00:00Z) or an age such as 30m, 2h, 3d (got ${JSON.stringify(s)})`, command);
    }
    // An age so large it falls before the earliest time a Date can hold (toISOString would throw).
    const date = new Date(ms);
    if (!Number.isFinite(date.getTime())) throw new UsageError(`${flag} is too far in the past (got ${JSON.stringify(s)})`, command);
    return { ms, iso: date.toISOString() };
  };
}

/**
 * A parser for `--rate STARTS/SECONDSs` (10/1s, 100/60s, 5/0.5s; 10/s is 10/1s). Only the form is
 * checked here: the ranges are the API's, whose 400 says what they are.
 */
function rate(flag: string, command: string): (s: string) => { starts: number; perSeconds: number } {
  return (s) => {
    const m = /^\s*(\d+)\s*\/\s*(\d+(?:\.\d+)?|\.\d+)?\s*s\s*$/i.exec(s);
    if (!m) throw new UsageError(`${flag} must be STARTS/SECONDSs, e.g. 10/1s (10 starts a second) or 100/60s (got ${JSON.stringify(s)})`, command);
    return { starts: Number(m[1]), perSeconds: m[2] !== undefined ? Number(m[2]) : 1 };
  };
}

const EVERY_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/**
 * A parser for `--every N` (5m, 1h, 1d, 90s) into seconds. Only the form is checked here: the
 * range (how often a schedule may fire, up to a year apart) is the API's, whose 400 says what it is.
 */
function every(flag: string, command: string): (s: string) => number {
  return (s) => {
    const m = /^\s*(\d+)\s*([smhd])\s*$/i.exec(s);
    const seconds = m ? Number(m[1]) * EVERY_UNITS[m[2]!.toLowerCase()]! : NaN;
    if (!Number.isSafeInteger(seconds)) throw new UsageError(`${flag} must be a whole number of seconds, minutes, hours or days: 5m, 1h, 1d, 90s (got ${JSON.stringify(s)})`, command);
    return seconds;
  };
}

/** A parser for a whole-number option, refusing anything outside [min, max]. */
function whole(flag: string, min: number, max: number | undefined, command: string): (s: string) => number {
  const range = max !== undefined ? `from ${min} to ${max}` : `of at least ${min}`;
  return (s) => {
    const n = /^\s*\d+\s*$/.test(s) ? Number(s) : NaN;
    if (!Number.isSafeInteger(n) || n < min || (max !== undefined && n > max)) {
      throw new UsageError(`${flag} must be a whole number ${range} (got ${JSON.stringify(s)})`, command);
    }
    return n;
  };
}

function choice<T extends string>(flag: string, allowed: readonly T[], command: string): (s: string) => T {
  return (s) => {
    if (!(allowed as readonly string[]).includes(s)) throw new UsageError(`${flag} must be one of ${allowed.join(", ")} (got ${JSON.stringify(s)})`, command);
    return s as T;
  };
}

/**
 * The job (one GET, with its children's counts), then its children level by level: every parent
 * of a level is read before the next level, so which parents the size bound cuts short is the
 * same on every run (the last ones in the order printed). A parent's children are read a page
 * (the API's most, 100) at a time up to --limit; a child that is a parent itself is read in turn,
 * down to --depth.
 */
async function readTree(client: WardenClient, id: string, o: TreeOptions): Promise<JobTree> {
  const node = (job: ApiJob): JobTree => ({ job, children: null, notShown: 0, cut: null, nextCursor: null });
  const root = node(await client.get(id));
  let left = o.maxJobs;
  let level = [root];
  for (let depth = 0; level.length; depth++) {
    const reads: { t: JobTree; want: number }[] = [];
    for (const t of level) {
      const total = t.job.children?.total ?? 0;
      if (total === 0) continue;
      if (depth >= o.depth) {
        Object.assign(t, { notShown: total, cut: "depth" });
        continue;
      }
      const want = Math.min(o.limit, total, left);
      left -= want;
      if (want === 0) Object.assign(t, { notShown: total, cut: "size" });
      else reads.push({ t, want });
    }
    await inPool(reads, TREE_CONCURRENCY, async ({ t, want }) => {
      const kids: ApiJob[] = [];
      let cursor: string | undefined;
      let total = t.job.children?.total ?? 0;
      do {
        const page = await client.children(t.job.id, { limit: Math.min(LIST_MAX, want - kids.length), ...(cursor ? { cursor } : {}) });
        kids.push(...page.children);
        total = page.total;
        cursor = page.nextCursor ?? undefined;
      } while (cursor && kids.length < want);
      t.children = kids.map(node);
      t.nextCursor = cursor ?? null;
      if (cursor) Object.assign(t, { notShown: Math.max(0, total - kids.length), cut: want < Math.min(o.limit, total) ? "size" : "limit" });
    });
    level = reads.flatMap(({ t }) => t.children ?? []);
  }
  return root;
}

/** Runs `work` on every item, at most `n` at a time. */
async function inPool<T>(items: readonly T[], n: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, lane));
}

/**
 * `--children FILE`, `--policy`, `--after FILE` as submit options. What the API would refuse
 * anyway is refused here first when it is a matter of the command line (which flags go together,
 * the file's shape); each child's type and input are the API's to check.
 */
function flowArgs(o: Record<string, unknown>): { children?: ChildRequest[]; policy?: FlowPolicy; after?: ChainStep[] } {
  if (o.children !== undefined && o.after !== undefined) throw new UsageError("--children and --after do not go together: a job fans out or ends a chain, not both", "submit");
  if (o.policy !== undefined && o.children === undefined) throw new UsageError("--policy goes with --children (it says what a failed child does to the job)", "submit");
  if (o.after !== undefined && o.input !== undefined) {
    throw new UsageError("a chain's job takes the last step's result as its input: give the input to the first step in the --after file, not --input", "submit");
  }
  if ((o.children !== undefined || o.after !== undefined) && o.runAt !== undefined) throw new UsageError(`--run-at does not go with ${o.children !== undefined ? "--children" : "--after"}`, "submit");
  if (o.children !== undefined) {
    const children = specsFile("--children", String(o.children)) as ChildRequest[];
    return { children, ...(o.policy !== undefined ? { policy: o.policy as FlowPolicy } : {}) };
  }
  if (o.after !== undefined) return { after: specsFile("--after", String(o.after)) as ChainStep[] };
  return {};
}

/** A JSON file (or - for stdin) holding a non-empty array of {type, …} objects. */
function specsFile(flag: "--children" | "--after", path: string): unknown[] {
  let text: string;
  try {
    text = readFileSync(path === "-" ? 0 : path, "utf8");
  } catch (e) {
    const hint = /^\s*[[{]/.test(path) ? ` (${flag} takes a file holding the JSON, or - to read it from stdin)` : "";
    throw new UsageError(`cannot read the ${flag} file: ${(e as Error).message}${hint}`, "submit");
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`the ${flag} file is not valid JSON: ${(e as Error).message}`, "submit");
  }
  const what = flag === "--children" ? "children" : "steps";
  if (!Array.isArray(value) || value.length === 0) throw new UsageError(`the ${flag} file must hold a JSON array of ${what}, [{"type": …}, …], with at least one`, "submit");
  value.forEach((v, i) => {
    if (v === null || typeof v !== "object" || Array.isArray(v) || typeof (v as { type?: unknown }).type !== "string") {
      throw new UsageError(`the ${flag} file's item ${i} must be an object with a "type" (a job type name)`, "submit");
    }
  });
  return value;
}

/** `--input` is JSON, or `@path` to read JSON from a file. */
function parseInput(s: string, command = "submit"): unknown {
  let text = s;
  if (s.startsWith("@")) {
    try {
      text = readFileSync(s.slice(1), "utf8");
    } catch (e) {
      throw new UsageError(`cannot read --input file: ${(e as Error).message}`, command);
    }
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UsageError(`--input is not valid JSON: ${(e as Error).message}`, command);
  }
}
