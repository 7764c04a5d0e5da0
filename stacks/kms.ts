/**
 * The stage's optional customer-managed KMS keys (`kms` in stacks/stage-config.ts, `WARDEN_KMS=true`):
 * one per stack that holds data (the table's, the queues', the alarm topic's), so a key's policy
 * and its CloudTrail record concern one kind of data. Each rotates yearly. A production stage
 * retains its keys with its table: a retained table whose key was deleted could not be read.
 */
import { Duration, RemovalPolicy } from "aws-cdk-lib";
import * as kms from "aws-cdk-lib/aws-kms";
import type { Construct } from "constructs";
import { physicalName } from "../core/config.js";
import type { StageConfig } from "./stage-config.js";

export function stageKey(scope: Construct, id: string, config: StageConfig, purpose: "table" | "queues" | "alarms", description: string): kms.Key | undefined {
  if (!config.kms) return undefined;
  return new kms.Key(scope, id, {
    alias: `alias/${physicalName(config.stage, purpose)}`,
    description: `Warden ${config.stage}: ${description}`,
    enableKeyRotation: true,
    // The default key policy lets the account's IAM policies grant use of the key; every
    // Warden principal gets exactly the kms actions its table and queue access needs (stacks/access.ts).
    removalPolicy: config.production ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
    pendingWindow: Duration.days(config.production ? 30 : 7),
  });
}
