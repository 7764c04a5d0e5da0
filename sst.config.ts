/**
 * `npx sst deploy --stage NAME` puts a whole Warden stage in an AWS account; the stacks are in
 * stacks/, their sizes per stage in stacks/stage-config.ts, everything else in core/.
 */
import type { SSTConfig } from "sst";
import { wardenStacks } from "./stacks/index.js";
import { useStageConfig } from "./stacks/stage-config.js";

export default {
  config() {
    return { name: "warden", region: process.env.AWS_REGION ?? "us-east-1" };
  },
  stacks(app) {
    // The stage's sizes and settings: stacks/stage-config.ts, then WARDEN_* variables (a test may provide its own).
    const config = useStageConfig(app);
    // Non-production stages are disposable: `sst remove` deletes everything, logs included.
    if (!config.production) app.setDefaultRemovalPolicy("destroy");
    app.setDefaultFunctionProps({ runtime: "nodejs22.x", architecture: "arm_64" });
    wardenStacks(app, config);
  },
} satisfies SSTConfig;
