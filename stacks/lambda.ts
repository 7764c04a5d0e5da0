/**
 * Warden's Lambda functions share one shape: SST's Function (which bundles the handler with
 * esbuild at `sst deploy`), Node 22 on arm64, an explicit log group, the runtime environment,
 * no X-Ray (its policy needs `*` resources and no part of Warden reads traces), no source-map upload.
 */
import { Function as SstFunction } from "sst/constructs";
import type { Construct } from "constructs";
import { logGroup } from "./runtime-env.js";
import type { StageConfig } from "./stage-config.js";
import { physicalName } from "../core/config.js";

export interface WardenFunctionProps {
  /** `functions/<name>.ts` exporting `handler`; also the function's name suffix. */
  name: "worker" | "api" | "sweeper";
  timeoutSeconds: number;
  memoryMb: number;
  environment: Record<string, string>;
  reservedConcurrency?: number;
  description: string;
}

export const RUNTIME = "nodejs22.x" as const;
export const ARCHITECTURE = "arm_64" as const;

export function wardenFunction(scope: Construct, id: string, config: StageConfig, p: WardenFunctionProps): SstFunction {
  const functionName = physicalName(config.stage, p.name);
  return new SstFunction(scope, id, {
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
    logGroup: logGroup(scope, `${id}Logs`, `/aws/lambda/${functionName}`, config),
    ...(p.reservedConcurrency !== undefined ? { reservedConcurrentExecutions: p.reservedConcurrency } : {}),
  });
}
