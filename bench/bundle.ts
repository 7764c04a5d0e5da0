/**
 * Each Lambda handler bundled as it would ship (esbuild: one ESM file, platform node, target
 * node22, minified, the AWS SDK included), its size, and its cold initialisation time: the time
 * a fresh Node process takes to `import()` the bundle, the part of a cold start the code owns.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";
import { fmt, summary, table } from "./lib/table.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
export const HANDLERS = ["functions/api.ts", "functions/worker.ts", "functions/sweeper.ts"] as const;

export interface BundleRow {
  entry: string;
  bytes: number;
  gzipBytes: number;
  buildMs: number;
  importMs: { median: number; p95: number; max: number; n: number };
}

export interface BundleResult {
  esbuild: string;
  rows: BundleRow[];
  notes: string[];
}

export async function runBundle(opts: { imports?: number } = {}): Promise<BundleResult> {
  const dir = mkdtempSync(join(tmpdir(), "warden-bundle-"));
  const n = opts.imports ?? 7;
  try {
    const rows: BundleRow[] = [];
    for (const entry of HANDLERS) {
      const outfile = join(dir, entry.replace(/[/.]/g, "_") + ".mjs");
      const t0 = Date.now();
      await build({
        entryPoints: [join(ROOT, entry)],
        outfile,
        bundle: true,
        platform: "node",
        format: "esm",
        target: "node22",
        minify: true,
        logLevel: "silent",
        // Bundled CommonJS dependencies call require(); ESM has none unless we make one.
        banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
      });
      const buildMs = Date.now() - t0;
      const bytes = statSync(outfile).size;
      const gzipBytes = gzipSync(readFileSync(outfile)).length;
      const times: number[] = [];
      for (let i = 0; i < n; i++) times.push(importTime(outfile));
      const s = summary(times.slice(1)); // the first pays for the file cache
      rows.push({ entry, bytes, gzipBytes, buildMs, importMs: { median: s.median, p95: s.p95, max: s.max, n: s.n } });
    }
    const { version } = (await import("esbuild")) as { version: string };
    return {
      esbuild: version,
      rows,
      notes: [
        `import time: median of ${n - 1} fresh \`node\` processes on this machine (the first, warming the file cache, dropped); Lambda adds its own runtime start and the first invocation builds the clients`,
        "sizes are the minified bundle and its gzip (the deployment zip is about the gzip size); the AWS SDK is bundled in, not taken from the runtime",
      ],
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function importTime(file: string): number {
  const script = `const t=process.hrtime.bigint();await import(${JSON.stringify(pathToFileURL(file).href)});console.log(Number(process.hrtime.bigint()-t)/1e6)`;
  const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], {
    encoding: "utf8",
    env: {
      PATH: process.env.PATH ?? "",
      AWS_REGION: "us-east-1",
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
      WARDEN_TABLE: "warden-bench-jobs",
      WARDEN_QUEUES: JSON.stringify({ default: { queue: "q", high: "h", low: "l", dlq: "d" }, large: { queue: "q", high: "h", low: "l", dlq: "d" } }),
    },
  });
  return Number(out.trim().split("\n").pop());
}

export function printBundle(r: BundleResult): string {
  return table(
    `Lambda bundles (esbuild ${r.esbuild}, ESM, node22, minified)`,
    ["handler", "bundle", "gzip", "cold import p50 ms", "p95 ms", "max ms"],
    r.rows.map((x) => [x.entry, `${fmt(Math.round(x.bytes / 1024))} KB`, `${fmt(Math.round(x.gzipBytes / 1024))} KB`, fmt(x.importMs.median), fmt(x.importMs.p95), fmt(x.importMs.max)]),
    r.notes,
  );
}
