/**
 * Warden's Lambda functions share one shape: SST's Function (which bundles the handler with
 * esbuild at `sst deploy`), Node 22 on arm64, an explicit log group, a role of its own that may
 * write only to that log group (not the AWS-managed AWSLambdaBasicExecutionRole, whose `logs:*`
 * covers every log group in the account), the runtime environment, no X-Ray (its policy needs `*`
 * resources and no part of Warden reads traces), no source-map upload.
 */
import * as iam from "aws-cdk-lib/aws-iam";
import type { LogGroup } from "aws-cdk-lib/aws-logs";
import { NagSuppressions } from "cdk-nag";
import { Function as SstFunction } from "sst/constructs";
import type { Construct } from "constructs";
import { logGroup } from "./runtime-env.js";
import type { StageConfig } from "./stage-config.js";
import { physicalName } from "../core/config.js";

export interface WardenFunctionProps {
  /** `functions/<name>.ts` exporting `handler`; also the function's name suffix. */
  name: "worker" | "api" | "sweeper" | "deaths";
  timeoutSeconds: number;
  memoryMb: number;
  environment: Record<string, string>;
  reservedConcurrency?: number;
  description: string;
}

export const RUNTIME = "nodejs22.x" as const;
export const ARCHITECTURE = "arm_64" as const;

/** Each function's explicit log group, for constructs that read it (the deaths subscription filter). */
const LOG_GROUPS = new WeakMap<SstFunction, LogGroup>();

/** The log group `wardenFunction` made for `fn` (never a LogRetention-managed one). */
export function logGroupOf(fn: SstFunction): LogGroup {
  const group = LOG_GROUPS.get(fn);
  if (!group) throw new Error(`logGroupOf: ${fn.node.path} was not made by wardenFunction`);
  return group;
}

export function wardenFunction(scope: Construct, id: string, config: StageConfig, p: WardenFunctionProps): SstFunction {
  const functionName = physicalName(config.stage, p.name);
  const logs = logGroup(scope, `${id}Logs`, `/aws/lambda/${functionName}`, config);
  const role = new iam.Role(scope, `${id}Role`, {
    assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com"),
    description: `Warden ${config.stage}: the ${p.name} function`,
  });
  // What AWSLambdaBasicExecutionRole would give, on this function's own log group only (the
  // group exists before the function, so it needs no logs:CreateLogGroup).
  logs.grantWrite(role);
  const fn = new SstFunction(scope, id, {
    handler: `functions/${p.name}.handler`,
    functionName,
    description: p.description,
    runtime: RUNTIME,
    architecture: ARCHITECTURE,
    timeout: p.timeoutSeconds,
    memorySize: p.memoryMb,
    tracing: "disabled",
    // SST would upload source maps for its console through a custom resource in every stack;
    // Warden does not use that console, and without them the deployed template is the tested one.
    nodejs: { sourcemap: false },
    environment: p.environment,
    role,
    logGroup: logs,
    ...(p.reservedConcurrency !== undefined ? { reservedConcurrentExecutions: p.reservedConcurrency } : {}),
  });
  LOG_GROUPS.set(fn, logs);
  NagSuppressions.addResourceSuppressions(fn, [
    {
      id: "AwsSolutions-L1",
      reason: `Pinned to ${RUNTIME}, an LTS runtime Lambda supports, so the Lambda functions run the same Node major as the Fargate image (node:22-slim); moving both to a newer Node is a deliberate upgrade, not a drift.`,
    },
    { id: "Serverless-LambdaLatestVersion", reason: `Pinned to ${RUNTIME} with the Fargate image's Node major; see AwsSolutions-L1.` },
    {
      id: "Serverless-LambdaTracing",
      reason: "X-Ray is off: its policy needs `*` resources and nothing in Warden reads traces; jobs are followed through their table record, logs and metrics.",
    },
  ]);
  return fn;
}
