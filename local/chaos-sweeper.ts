/**
 * The chaos run's sweeper, as its own process so the run can kill it in the middle of a sweep:
 * core/sweeper.ts every WARDEN_SWEEP_INTERVAL_SECONDS, its writes recorded in the chaos ledger
 * as the sweeper's. It prints `sweep begin` / `sweep end` so the parent can time its kills.
 */
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
process.env.WARDEN_CHAOS_ROLE = "sweeper";

import { errorMessage } from "../core/errors.js";
import { loadRuntime } from "../core/runtime.js";
import { buildServices } from "../core/services.js";
import { Sweeper } from "../core/sweeper.js";
import { exitWhenOrphaned, guardStdio } from "../functions/parent-watch.js";
import { installLedger } from "./chaos-faults.js";
import { record } from "./chaos-ledger.js";

const services = buildServices(loadRuntime());
installLedger(services.doc);
const sweeper = new Sweeper(services, { budgetMs: 2_000 });
process.on("SIGTERM", () => process.exit(0));
guardStdio();
exitWhenOrphaned({ name: "warden-sweeper", stop: () => undefined });
console.log(`warden-sweeper: ready ${process.pid}`);
for (;;) {
  const started = Date.now();
  record({ k: "sweep", phase: "begin", pid: process.pid, at: started });
  console.log("sweep begin");
  try {
    const r = await sweeper.sweep();
    const acted = r.counts.reclaimed + r.counts.resent + r.counts.failedExhausted + r.counts.failedTimeout + r.counts.cancelled;
    record({ k: "sweep", phase: "end", acted, pid: process.pid, at: Date.now() });
  } catch (e) {
    console.error(`sweep failed: ${errorMessage(e)}`);
  }
  console.log("sweep end");
  await new Promise((r) => setTimeout(r, Math.max(0, services.cfg.sweepIntervalMs - (Date.now() - started))));
}
