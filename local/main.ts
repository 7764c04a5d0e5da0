/**
 * `npm start`: Warden on one machine. Prints the URLs and tokens, then `warden: ready <api-url>`
 * once every part is up; Ctrl-C (SIGINT) or SIGTERM shuts it down cleanly, the worker processes
 * handing their jobs back first. Started by another process that names itself in
 * WARDEN_PARENT_PID (local/launch.ts does), it also shuts down when that process dies.
 */
import { exitWhenOrphaned, guardStdio } from "../functions/parent-watch.js";
import { loadLocalConfig, UsageError, type LocalConfig } from "./config.js";
import { externalEndpoints, type EmulatorOptions, type Emulators } from "./emulators.js";
import { startSystem, type System } from "./system.js";

/** Where DynamoDB and SQS are: started here, or the endpoint WARDEN_DYNAMODB_ENDPOINT / WARDEN_SQS_ENDPOINT named. */
function backends(emu: Emulators): string[] {
  return [
    `warden: dynamodb   ${emu.dynamoEndpoint} ${emu.dynamodb === "external" ? "(WARDEN_DYNAMODB_ENDPOINT: already running)" : `(${emu.dynamodb}, started here)`}, table ${emu.tableName}`,
    `warden: sqs        ${emu.sqsEndpoint} ${emu.sqs === "external" ? "(WARDEN_SQS_ENDPOINT: already running)" : "(fauxqs, started here)"}`,
  ];
}

function banner(cfg: LocalConfig, apiUrl: string, emu: Emulators): string {
  const callers = [...cfg.callers].map(([caller, token]) => `  caller ${caller}: ${token}`).join("\n");
  return [
    `warden: API        ${apiUrl}`,
    `warden: dashboard  ${apiUrl}/#token=${encodeURIComponent(cfg.adminToken)}`,
    ...backends(emu),
    `warden: data       ${emu.dynamodb === "external" ? "kept by the DynamoDB at WARDEN_DYNAMODB_ENDPOINT (--data-dir and --memory do not apply)" : (cfg.dataDir ?? "in memory (--memory): nothing is kept")}`,
    `warden: workers    ${cfg.workers} Fargate-style process(es); lease ${cfg.leaseSeconds}s, sweep every ${cfg.sweepIntervalSeconds}s`,
    `warden: tokens${cfg.generatedTokens ? " (made up for this run; set WARDEN_API_TOKENS and WARDEN_ADMIN_TOKEN to keep them)" : ""}`,
    callers,
    `  admin: ${cfg.adminToken}`,
    `  try: curl -s -H 'authorization: Bearer ${[...cfg.callers.values()][0]}' -H 'content-type: application/json' \\`,
    `         -d '{"type":"demo.sleep","input":{"items":20,"msPerItem":500}}' ${apiUrl}/jobs`,
  ].join("\n");
}

async function main(): Promise<void> {
  // Output goes to a pipe when another process started us; its closing must not crash or spin us.
  guardStdio();
  let system: System | undefined;
  // This process's backends outlive its parent, so the workers can still hand their jobs back:
  // the same stop as SIGTERM, bounded by the fleet's grace (15 s) and a margin.
  exitWhenOrphaned({ name: "warden", boundMs: 30_000, stop: () => system?.stop() });
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
  const started = await startSystem(cfg, (line) => console.log(line), { emulators: external });
  system = started;
  console.log(banner(cfg, started.apiUrl, started.emulators));
  console.log(`warden: ready ${started.apiUrl}`);

  let stoppingSince = 0;
  const shutdown = (signal: string) => {
    if (stoppingSince) {
      // Under `npm start` one Ctrl-C arrives more than once (the terminal signals the whole group
      // and npm and tsx relay it); only a later, deliberate second one means "now".
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
}

main().catch((e: unknown) => {
  console.error(`warden: failed to start: ${String((e as Error)?.stack ?? e)}`);
  process.exit(1);
});
