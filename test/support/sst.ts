/**
 * Synthesizes a whole Warden stage in-process, offline, the way `sst deploy` does before it
 * talks to AWS: the SST project context (normally set by the CLI from sst.config.ts) is provided
 * directly, the app is built by sst.config.ts's own `stacks`, and `app.finish()` runs SST's
 * deferred work. Nothing here needs credentials or a network, in vitest or outside it: SST v2
 * looks up its bootstrap stack with AWS credentials while finishing an app unless
 * `app.isRunningSSTTest()` says this is a test run (it checks NODE_ENV=test, which vitest sets and
 * a plain `tsx` script does not), so the app built here answers that itself.
 *
 * Every synthesis runs cdk-nag's AwsSolutions and Serverless rule packs; their unsuppressed
 * findings (and any other error or warning annotation) come back as `findings`.
 *
 * `bundle: false` (the default) skips SST's esbuild bundling of the handlers, which `finish()`
 * would otherwise do for every function: the templates then carry SST's inline placeholder code
 * instead of an S3 asset, and everything else is identical. One test bundles for real.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { Aspects } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { AwsSolutionsChecks, ServerlessChecks } from "cdk-nag";
import { App } from "sst/constructs";
import { useDeferredTasks } from "sst/constructs/deferred_task.js";
import { setProject } from "sst/project.js";
import sstConfig from "../../sst.config.js";
import { STACKS, type StackName } from "../../stacks/index.js";
import { provideStageConfig, stageConfig, type StageOverrides } from "../../stacks/stage-config.js";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const REGION = "us-east-1";
export const ACCOUNT = "123456789012";

/** A public image, so tests do not depend on the repository's Dockerfile (one test covers the asset). */
export const TEST_IMAGE = { kind: "registry", image: "public.ecr.aws/docker/library/node:22-slim" } as const;

export interface Synthesized {
  app: App;
  stackNames: Record<StackName, string>;
  templates: Record<StackName, Template>;
  json: Record<StackName, CfnTemplate>;
  /** Every stack's template by its CloudFormation stack name, for resolving cross-stack imports. */
  byStackName: Record<string, CfnTemplate>;
  /** Every error and warning annotation of the synthesis, cdk-nag's unsuppressed findings among them. */
  findings: Finding[];
}

export interface Finding {
  level: "error" | "warning";
  stack: StackName;
  /** The construct path the annotation is on. */
  path: string;
  /** `AwsSolutions-IAM4[Policy::…]: …`, as cdk-nag (or CDK) wrote it. */
  message: string;
}

export interface CfnTemplate {
  Resources: Record<string, { Type: string; Properties?: Record<string, any>; DeletionPolicy?: string; UpdateReplacePolicy?: string }>;
  Outputs?: Record<string, { Value: unknown; Export?: { Name: string } }>;
}

export interface SynthOptions {
  overrides?: StageOverrides;
  bundle?: boolean;
  /** The app's stacks function; sst.config.ts's by default (a test may pass the one SST's loader built). */
  stacks?: (app: App) => Promise<void> | void;
}

export async function synthStage(stage: string, opts: SynthOptions = {}): Promise<Synthesized> {
  process.env.JSII_DEPRECATED = "quiet";
  // CDK and SST fall back to these when the CLI has not set them; keep them off the real account.
  process.env.CDK_DEFAULT_REGION = REGION;
  process.env.CDK_DEFAULT_ACCOUNT = ACCOUNT;
  const out = mkdtempSync(path.join(tmpdir(), "warden-sst-"));
  process.once("exit", () => rmSync(out, { recursive: true, force: true }));
  setProject({
    version: "test",
    cdkVersion: "test",
    constructsVersion: "test",
    stacks: async () => {},
    metafile: { inputs: {}, outputs: {} },
    config: { name: "warden", stage, region: REGION, ssmPrefix: `/sst/warden/${stage}/` },
    paths: { root: ROOT, config: path.join(ROOT, "sst.config.ts"), out, artifacts: path.join(out, "artifacts") },
  } as Parameters<typeof setProject>[0]);

  const app = new App({ mode: "deploy", stage, name: "warden", region: REGION, account: ACCOUNT }, { outdir: path.join(out, "cdk.out") });
  // No bootstrap lookup (AWS credentials) in `finish()`, whatever NODE_ENV is.
  app.isRunningSSTTest = () => true;
  provideStageConfig(app, stageConfig(stage, { region: REGION, overrides: { ...opts.overrides, fargate: { image: TEST_IMAGE, ...opts.overrides?.fargate } } }));
  await (opts.stacks ?? sstConfig.stacks)(app);
  if (!opts.bundle) {
    // The deferred tasks are the handler builds; dropping them leaves SST's placeholder code.
    const tasks = useDeferredTasks();
    tasks.run = async () => true;
  }
  await app.finish();

  // The rule packs run as aspects during synthesis and annotate what they find.
  Aspects.of(app).add(new AwsSolutionsChecks({ reports: false }));
  Aspects.of(app).add(new ServerlessChecks({ reports: false }));
  const assembly = app.synth();
  const stackNames = {} as Record<StackName, string>;
  const templates = {} as Record<StackName, Template>;
  const json = {} as Record<StackName, CfnTemplate>;
  const byStackName: Record<string, CfnTemplate> = {};
  const findings: Finding[] = [];
  for (const name of Object.keys(STACKS) as StackName[]) {
    const stackName = app.logicalPrefixedName(name);
    const artifact = assembly.getStackByName(stackName);
    stackNames[name] = stackName;
    json[name] = artifact.template as CfnTemplate;
    templates[name] = Template.fromJSON(artifact.template as Record<string, unknown>);
    byStackName[stackName] = json[name];
    for (const m of artifact.messages) {
      if (m.level === "error" || m.level === "warning") findings.push({ level: m.level, stack: name, path: m.id, message: String(m.entry.data) });
    }
  }
  return { app, stackNames, templates, json, byStackName, findings };
}
