/**
 * A whole Warden stage, in dependency order. `sst.config.ts` calls this; so do the synthesis
 * tests, so what they assert is what `sst deploy` builds.
 */
import { CfnResource, Stack } from "aws-cdk-lib";
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
  dropUnusedCustomResourceHandlers(app);
}

/**
 * SST v2 puts a Lambda function named CustomResourceHandler in every stack (900 s timeout, the
 * AWS-managed AWSLambdaBasicExecutionRole) for the custom resources of its own constructs: secret
 * prefetching, source-map uploads, sites, Auth. Warden uses none of them, so the function would
 * only sit in each stack with `logs:*` on every log group. A stack that does contain a custom
 * resource keeps its handler (and the rule packs then report it).
 */
export function dropUnusedCustomResourceHandlers(app: App): void {
  for (const stack of app.node.children) {
    if (!Stack.isStack(stack)) continue;
    const usesOne = stack.node
      .findAll()
      .some((c) => CfnResource.isCfnResource(c) && (c.cfnResourceType.startsWith("Custom::") || c.cfnResourceType === "AWS::CloudFormation::CustomResource"));
    if (!usesOne) stack.node.tryRemoveChild("CustomResourceHandler");
  }
}
