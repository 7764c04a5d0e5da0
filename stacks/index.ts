/**
 * A whole Warden stage, in dependency order. `sst.config.ts` calls this; so do the synthesis
 * tests, so what they assert is what `sst deploy` builds.
 */
import type { App } from "sst/constructs";
import { Api } from "./Api.js";
import { Monitoring } from "./Monitoring.js";
import { Queues } from "./Queues.js";
import { provideStageConfig, type StageConfig } from "./stage-config.js";
import { Storage } from "./Storage.js";
import { Sweeper } from "./Sweeper.js";
import { Workers } from "./Workers.js";

export const STACKS = { Storage, Queues, Workers, Api, Sweeper, Monitoring } as const;
export type StackName = keyof typeof STACKS;

export function wardenStacks(app: App, config?: StageConfig): void {
  if (config) provideStageConfig(app, config);
  app.stack(Storage).stack(Queues).stack(Workers).stack(Api).stack(Sweeper).stack(Monitoring);
}
