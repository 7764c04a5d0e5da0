/**
 * `npm start`: Warden on one machine. Prints the URLs, the emulators' endpoints (with the AWS
 * CLI commands that read them) and the tokens, then `warden: ready <api-url>` once every part is
 * up. Ctrl-C (SIGINT), SIGTERM or SIGHUP shuts it down cleanly, the worker processes handing
 * their jobs back first: whether the signal reaches this process or npm's (the `start` script
 * `exec`s node, so this process is npm's direct child, and npm forwards SIGINT and SIGTERM to
 * it). Started by another process that names itself in WARDEN_PARENT_PID (local/launch.ts
 * does), or by npm, it also shuts down when that process dies.
 */
import { exitWhenOrphaned, guardStdio, parentPidFromEnv } from "../functions/parent-watch.js";
import { loadLocalConfig, UsageError, type LocalConfig, type TokenSource } from "./config.js";
import { clientConfig, externalEndpoints, PortInUseError, type EmulatorOptions, type Emulators } from "./emulators.js";
import { startSystem, type System } from "./system.js";

/** Where DynamoDB and SQS are: started here, or the endpoint WARDEN_DYNAMODB_ENDPOINT / WARDEN_SQS_ENDPOINT named. */
function backends(emu: Emulators): string[] {
  const queueName = (url: string) => url.slice(url.lastIndexOf("/") + 1);
  const queues = Object.values(emu.queues).map((q) => queueName(q.queue));
  return [
    `warden: dynamodb   ${emu.dynamoEndpoint} ${emu.dynamodb === "external" ? "(WARDEN_DYNAMODB_ENDPOINT: already running)" : `(${emu.dynamodb}, started here)`}, table ${emu.tableName}`,
    `warden: sqs        ${emu.sqsEndpoint} ${emu.sqs === "external" ? "(WARDEN_SQS_ENDPOINT: already running)" : "(fauxqs, started here)"}, queues ${queues.join(", ")} (each with its -high and -low lanes and one -dlq)`,
    ...awsCli(emu),
  ];
}

/**
 * The AWS CLI pointed at the endpoints in use, with the dummy credentials and the region the
 * SDK clients use for them (`clientConfig`). An amazonaws.com endpoint needs no hint: the CLI's
 * own configuration reaches it.
 */
function awsCli(emu: Emulators): string[] {
  const local = [emu.dynamoEndpoint, emu.sqsEndpoint].map(clientConfig).find((c) => c.credentials);
  if (!local) return [];
  const lines = [`warden: aws cli    export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_DEFAULT_REGION=${local.region}`];
  if (clientConfig(emu.dynamoEndpoint).credentials) lines.push(`                   aws --endpoint-url ${emu.dynamoEndpoint} dynamodb scan --table-name ${emu.tableName}`);
  if (clientConfig(emu.sqsEndpoint).credentials) lines.push(`                   aws --endpoint-url ${emu.sqsEndpoint} sqs list-queues`);
  return lines;
}

function tokenLines(cfg: LocalConfig, apiUrl: string): string[] {
  const { callers: c, admin: a } = cfg.tokenSources;
  const file = cfg.tokensFile;
  let head: string;
  if (c === "env" && a === "env") {
    head = `from WARDEN_API_TOKENS and WARDEN_ADMIN_TOKEN${cfg.tokensFileEvent === "rotated" ? ` (--rotate-tokens renewed ${file}, but these win over it)` : ""}`;
  } else if (file) {
    const what = cfg.tokensFileEvent === "created" ? "made now and kept" : cfg.tokensFileEvent === "rotated" ? "new (--rotate-tokens), kept" : "kept";
    head = `${what} in ${file}: the same at every start; --rotate-tokens makes new ones`;
  } else {
    head = "made up for this run (--memory keeps nothing); set WARDEN_API_TOKENS and WARDEN_ADMIN_TOKEN to choose them";
  }
  // Mixed sources: say which token came from where.
  const from = (s: TokenSource, envVar: string) => (c === a ? "" : s === "env" ? `  (${envVar})` : s === "file" ? `  (${file})` : "  (this run only)");
  const first = [...cfg.callers.values()][0];
  return [
    `warden: tokens     ${head}`,
    ...[...cfg.callers].map(([caller, token]) => `  caller ${caller}: ${token}${from(c, "WARDEN_API_TOKENS")}`),
    `  admin: ${cfg.adminToken}${from(a, "WARDEN_ADMIN_TOKEN")}`,
    `  use them: export WARDEN_URL=${apiUrl} WARDEN_TOKEN=${first} WARDEN_ADMIN_TOKEN=${cfg.adminToken}`,
    `  try: curl -s -H 'authorization: Bearer ${first}' -H 'content-type: application/json' \\`,
    `         -d '{"type":"demo.sleep","input":{"items":20,"msPerItem":500}}' ${apiUrl}/jobs`,
  ];
}

/**
 * Run by `npm start` itself (the script `exec`s node, so npm is the parent), not launched by
 * another process that npm happened to start (local/launch.ts names itself in WARDEN_PARENT_PID).
 */
const underNpm = (): boolean => process.env.npm_lifecycle_event === "start" && parentPidFromEnv() === undefined;

function banner(cfg: LocalConfig, apiUrl: string, emu: Emulators): string {
  return [
    `warden: API        ${apiUrl}`,
    `warden: dashboard  ${apiUrl}/#token=${encodeURIComponent(cfg.adminToken)}`,
    ...backends(emu),
    `warden: data       ${emu.dynamodb === "external" ? "kept by the DynamoDB at WARDEN_DYNAMODB_ENDPOINT (--data-dir and --memory do not apply)" : (cfg.dataDir ?? "in memory (--memory): nothing is kept")}`,
    `warden: workers    ${cfg.workers} Fargate-style process(es); lease ${cfg.leaseSeconds}s, sweep every ${cfg.sweepIntervalSeconds}s`,
    ...tokenLines(cfg, apiUrl),
    `warden: listening  on 127.0.0.1 only`,
    `warden: stop       Ctrl-C, or kill -TERM ${process.pid}${underNpm() ? ` (this process) or ${process.ppid} (npm)` : ""}: workers hand their jobs back first`,
  ].join("\n");
}

/** A port that is taken, said with the flag that moves it; undefined for any other failure. */
function portTaken(e: unknown, cfg: LocalConfig): string | undefined {
  if (e instanceof PortInUseError) {
    const [flag, endpointVar] = e.what === "dynamodb" ? ["--dynamodb-port N (WARDEN_DYNAMODB_PORT)", "WARDEN_DYNAMODB_ENDPOINT"] : ["--sqs-port N (WARDEN_SQS_PORT)", "WARDEN_SQS_ENDPOINT"];
    return `${e.message} (another npm start?): stop it, choose another port with ${flag}, 0 for any free one, or, to use what listens there, set ${endpointVar}=http://127.0.0.1:${e.port}`;
  }
  if ((e as NodeJS.ErrnoException)?.code === "EADDRINUSE") {
    return `127.0.0.1:${cfg.port}, the API's port, is taken by another process (another npm start?): stop it, or choose another port with --port N (PORT), 0 for any free one`;
  }
  return undefined;
}

async function main(): Promise<void> {
  // Output goes to a pipe when another process started us; its closing must not crash or spin us.
  guardStdio();
  let system: System | undefined;
  // This process's backends outlive its parent, so the workers can still hand their jobs back:
  // the same stop as SIGTERM, bounded by the fleet's grace (15 s) and a margin.
  // Under npm, npm itself: should it be SIGKILLed, Warden does not live on holding its ports.
  const parentPid = parentPidFromEnv() ?? (underNpm() && process.ppid > 1 ? process.ppid : undefined);
  exitWhenOrphaned({ name: "warden", boundMs: 30_000, stop: () => system?.stop(), env: { WARDEN_PARENT_PID: parentPid === undefined ? undefined : String(parentPid) } });
  // The SDK warns on every process that Node 20 support ends in 2027; the lockfile pins versions that support it.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
  let cfg: LocalConfig;
  let external: Pick<EmulatorOptions, "dynamodbEndpoint" | "sqsEndpoint">;
  try {
    cfg = loadLocalConfig();
    try {
      external = externalEndpoints(process.env);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      if (e.message) console.error(`warden: ${e.message}`);
      console.error(e.help);
      process.exit(e.message ? 2 : 0);
    }
    throw e;
  }
  let started: System;
  try {
    started = await startSystem(cfg, (line) => console.log(line), { emulators: external });
  } catch (e) {
    const taken = portTaken(e, cfg);
    if (!taken) throw e;
    console.error(`warden: ${taken}`);
    process.exit(1);
  }
  system = started;
  console.log(banner(cfg, started.apiUrl, started.emulators));
  console.log(`warden: ready ${started.apiUrl}`);

  let stoppingSince = 0;
  const shutdown = (signal: string) => {
    if (stoppingSince) {
      // Under `npm start` one Ctrl-C arrives twice (the terminal signals the whole group and npm
      // relays it too); only a later, deliberate second one means "now".
      if (Date.now() - stoppingSince < 2000) return;
      console.log(`warden: ${signal} again: exiting now`);
      process.exit(1);
    }
    stoppingSince = Date.now();
    console.log(`warden: ${signal}: stopping (workers hand their jobs back)…`);
    started.stop().then(
      () => {
        console.log("warden: stopped");
        process.exit(0);
      },
      (e: unknown) => {
        console.error(`warden: stop failed: ${String(e)}`);
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", () => shutdown("SIGINT"));
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  // A closed terminal: npm dies of it, this process stops as for SIGTERM.
  process.on("SIGHUP", () => shutdown("SIGHUP"));
}

main().catch((e: unknown) => {
  console.error(`warden: failed to start: ${String((e as Error)?.stack ?? e)}`);
  process.exit(1);
});
