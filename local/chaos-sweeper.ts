/**
 * The chaos run's sweeper, as its own process so the run can kill it in the middle of a sweep:
 * core/sweeper.ts every WARDEN_SWEEP_INTERVAL_SECONDS, through the chaos run's wire-fault proxies
 * like every other process (its writes reach the ledger from there). It prints `sweep begin` /
 * `sweep end` so the parent can time its kills.
 */
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

import { errorMessage } from "../core/errors.js";
import { loadRuntime } from "../core/runtime.js";
import { buildServices } from "../core/services.js";
import { Sweeper } from "../core/sweeper.js";
import { exitWhenOrphaned, guardStdio } from "../functions/parent-watch.js";
import { breakIfAsked } from "./chaos-broken.js";
import { record } from "./chaos-ledger.js";

breakIfAsked(); // the guard test's broken fan-in: the sweeper's recount resumes without a condition too
const services = buildServices(loadRuntime());
record({ k: "proc", role: "sweeper", pid: process.pid, at: Date.now() });
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
