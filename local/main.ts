/**
 * `npm start`: Warden on one machine. Prints the URLs and tokens, then `warden: ready <api-url>`
 * once every part is up; Ctrl-C (SIGINT) or SIGTERM shuts it down cleanly, the worker processes
 * handing their jobs back first.
 */
import { loadLocalConfig, UsageError, type LocalConfig } from "./config.js";
import { startSystem } from "./system.js";

function banner(cfg: LocalConfig, apiUrl: string): string {
  const callers = [...cfg.callers].map(([caller, token]) => `  caller ${caller}: ${token}`).join("\n");
  return [
    `warden: API        ${apiUrl}`,
    `warden: dashboard  ${apiUrl}/#token=${encodeURIComponent(cfg.adminToken)}`,
    `warden: data       ${cfg.dataDir ?? "in memory (--memory): nothing is kept"}`,
    `warden: workers    ${cfg.workers} Fargate-style process(es); lease ${cfg.leaseSeconds}s, sweep every ${cfg.sweepIntervalSeconds}s`,
    `warden: tokens${cfg.generatedTokens ? " (made up for this run; set WARDEN_API_TOKENS and WARDEN_ADMIN_TOKEN to keep them)" : ""}`,
    callers,
    `  admin: ${cfg.adminToken}`,
    `  try: curl -s -H 'authorization: Bearer ${[...cfg.callers.values()][0]}' -H 'content-type: application/json' \\`,
    `         -d '{"type":"demo.sleep","input":{"items":20,"msPerItem":500}}' ${apiUrl}/jobs`,
  ].join("\n");
}

async function main(): Promise<void> {
  // The SDK warns on every process that Node 20 support ends in 2027; the lockfile pins versions that support it.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
  let cfg: LocalConfig;
  try {
    cfg = loadLocalConfig();
  } catch (e) {
    if (e instanceof UsageError) {
      if (e.message) console.error(`warden: ${e.message}`);
      console.error(e.help);
      process.exit(e.message ? 2 : 0);
    }
    throw e;
  }
  const system = await startSystem(cfg, (line) => console.log(line));
  console.log(banner(cfg, system.apiUrl));
  console.log(`warden: ready ${system.apiUrl}`);

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
    system.stop().then(
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
