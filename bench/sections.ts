/** The benchmark sections `npm run bench` knows, in the order it runs them. */
import { printBundle, runBundle, type BundleResult } from "./bundle.js";
import { printE2e, runE2e, type E2eResult } from "./e2e.js";
import { printFanin, runFanin, type FaninResult } from "./fanin.js";
import { printLimits, runLimits, type LimitsResult } from "./limits.js";
import { printRatePace, runRatePace, type RatePaceResult } from "./rate-pace.js";
import { printRecovery, runRecovery, type RecoveryResult } from "./recovery.js";
import { printClaim, runClaim, type ClaimResult } from "./claim.js";
import { printRunnerCost, runRunnerCost, type RunnerCostResult } from "./runner-cost.js";
import { printStoreCost, runStoreCost, type StoreCostResult } from "./store-cost.js";
import { printSweep, runSweep, type SweepResult } from "./sweep.js";

export interface Flags {
  quick: boolean;
}

export interface Section<R = any> {
  name: string;
  describe: string;
  run(flags: Flags): Promise<R>;
  print(result: R): string;
}

const section = <R>(s: Section<R>): Section<R> => s;

export const SECTIONS: Section[] = [
  section<StoreCostResult>({
    name: "store-cost",
    describe: "DynamoDB writes, capacity units and SQS requests per job, and cost per million jobs",
    run: () => runStoreCost(),
    print: printStoreCost,
  }),
  section<RunnerCostResult>({
    name: "runner-cost",
    describe: "the runner's DynamoDB writes per job beside the floor (core/runner.ts, time compressed)",
    run: () => runRunnerCost(),
    print: printRunnerCost,
  }),
  section<ClaimResult>({
    name: "claim",
    describe: "claim throughput and conflicts with 1, 8 and 32 workers on one queue",
    run: (f) => runClaim({ jobs: f.quick ? 100 : 300 }),
    print: printClaim,
  }),
  section<SweepResult>({
    name: "sweep",
    describe: "sweep cost at 0 / 2,000 / 20,000 / 200,000 finished jobs with 10 overdue",
    run: (f) => runSweep({ big: !f.quick }),
    print: printSweep,
  }),
  section<E2eResult>({
    name: "e2e",
    describe: "end-to-end throughput of trivial jobs through the local system",
    run: (f) => runE2e({ quick: f.quick }),
    print: printE2e,
  }),
  section<FaninResult>({
    name: "fanin",
    describe: "one parent with 10,000 trivial children: last child's end → parent running again, write units per child beside the floor, the hottest key",
    run: (f) => runFanin({ quick: f.quick }),
    print: printFanin,
  }),
  section<LimitsResult>({
    name: "limits",
    describe: "what the controls cost per job start: a concurrency limit, a rate limit (and one whose log is at its 500 starts), a refused start and its wake, the settings reads; each beside its floor or the anchor (no control)",
    run: (f) => runLimits(f.quick ? { jobs: 50, refusals: 10 } : {}),
    print: printLimits,
  }),
  section<RatePaceResult>({
    name: "rate-pace",
    describe: "a rate limit of 10 starts a second in real time: the pace, the busiest and quietest one-second windows, beside the limit",
    run: (f) => runRatePace(f.quick ? { jobs: 80 } : {}),
    print: printRatePace,
  }),
  section<RecoveryResult>({
    name: "recovery",
    describe: "kill → running again at the default lease (60 s) and sweep (10 s): Fargate SIGKILL, Lambda crash, frozen worker (SIGSTOP), and leases only",
    run: (f) => runRecovery({ quick: f.quick }),
    print: printRecovery,
  }),
  section<BundleResult>({
    name: "bundle",
    describe: "each Lambda handler's bundle size and cold import time",
    run: (f) => runBundle({ imports: f.quick ? 4 : 7 }),
    print: printBundle,
  }),
];
