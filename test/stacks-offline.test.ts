/**
 * `synthStage` needs neither vitest's environment nor AWS: a plain `tsx` script in a child process
 * whose environment has only PATH and an empty HOME (no NODE_ENV, no AWS_* variables, no ~/.aws)
 * synthesizes the same stage this process does. Before test/support/sst.ts told SST itself that
 * this is a test run, SST looked for credentials to find its bootstrap stack and failed.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { resourceCounts } from "./support/sst-refs.js";
import { ROOT, synthStage } from "./support/sst.js";

const SCRIPT = (support: string) => `
import { synthStage } from ${JSON.stringify(support)};
import { resourceCounts } from ${JSON.stringify(support.replace(/sst\.ts$/, "sst-refs.ts"))};
const s = await synthStage("offline");
const counts = Object.fromEntries(Object.entries(s.json).map(([name, t]) => [name, resourceCounts(t)]));
const env = Object.keys(process.env).filter((k) => k === "NODE_ENV" || k.startsWith("AWS_") || k === "VITEST");
console.log("RESULT " + JSON.stringify({ counts, findings: s.findings.length, env }));
`;

function run(cmd: string, args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv }): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const child = spawn(cmd, args, { ...opts, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (b: Buffer) => (stdout += b));
    child.stderr.on("data", (b: Buffer) => (stderr += b));
    child.on("error", fail);
    child.on("close", (code) => done({ code, stdout, stderr }));
  });
}

describe("synthStage outside vitest", () => {
  it("synthesizes in a child process with no NODE_ENV, no AWS_* variables and no AWS config, the same stage as here", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "warden-offline-"));
    const script = path.join(dir, "synth.mts");
    writeFileSync(script, SCRIPT(pathToFileURL(path.join(ROOT, "test/support/sst.ts")).href));
    const home = mkdtempSync(path.join(tmpdir(), "warden-home-"));
    const [child, here] = await Promise.all([
      // `node --import tsx` is what `npx tsx` runs, without npx's own lookups.
      run(process.execPath, ["--import", "tsx", script], { cwd: ROOT, env: { PATH: process.env.PATH ?? "", HOME: home } }),
      synthStage("offline"),
    ]);
    const line = child.stdout.split("\n").find((l) => l.startsWith("RESULT "));
    expect(line, `child exited ${child.code}:\n${child.stderr}`).toBeDefined();
    expect(child.code).toBe(0);
    const result = JSON.parse(line!.slice("RESULT ".length)) as { counts: Record<string, unknown>; findings: number; env: string[] };
    expect(result.env).toEqual([]);
    expect(result.findings).toBe(0);
    expect(result.counts).toEqual(Object.fromEntries(Object.entries(here.json).map(([name, t]) => [name, resourceCounts(t)])));
    expect(Object.keys(result.counts)).toHaveLength(6);
  }, 120_000);
});
