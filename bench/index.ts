/**
 * `npm run bench`: every benchmark, printed as tables beside its floor or anchor, and saved to
 * bench/results/latest.json (merged, so running one section keeps the others' last figures) for
 * `npx tsx bench/report.ts` to turn into docs/reliability.md. Figures only: nothing passes or fails.
 *
 *   npm run bench                       all sections
 *   npm run bench -- --only sweep,claim just these
 *   npm run bench -- --skip e2e         all but these
 *   npm run bench -- --quick            smaller runs (no 200,000-job sweep, fewer kills)
 */
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { SECTIONS, type Flags } from "./sections.js";
import { runMeta, type RunMeta } from "./lib/meta.js";

export const RESULTS = join(dirname(fileURLToPath(import.meta.url)), "results", "latest.json");

export interface SavedSection {
  meta: RunMeta;
  seconds: number;
  result: unknown;
}
export type Saved = Record<string, SavedSection>;

function parseFlags(argv: string[]): Flags & { only?: string[]; skip: string[] } {
  const value = (name: string) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const list = (name: string) => value(name)?.split(",").map((s) => s.trim()).filter(Boolean);
  const only = list("--only");
  return {
    quick: argv.includes("--quick"),
    ...(only ? { only } : {}),
    skip: list("--skip") ?? [],
  };
}

export function loadSaved(path = RESULTS): Saved {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as Saved;
  } catch {
    return {};
  }
}

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2));
  const unknown = [...(flags.only ?? []), ...flags.skip].filter((n) => !SECTIONS.some((s) => s.name === n));
  if (unknown.length) {
    console.error(`unknown section(s): ${unknown.join(", ")}; known: ${SECTIONS.map((s) => s.name).join(", ")}`);
    process.exit(2);
  }
  const chosen = SECTIONS.filter((s) => (!flags.only || flags.only.includes(s.name)) && !flags.skip.includes(s.name));
  const saved = loadSaved();
  const meta = runMeta();
  console.log(`Warden benchmarks — commit ${meta.commit.slice(0, 12)}${meta.dirty ? " (with uncommitted changes)" : ""}, ${meta.node}, ${meta.cores} × ${meta.cpu}`);
  for (const s of chosen) {
    const t0 = Date.now();
    process.stdout.write(`\n▶ ${s.name}: ${s.describe}\n`);
    try {
      const result = await s.run(flags);
      const seconds = (Date.now() - t0) / 1000;
      console.log(s.print(result));
      console.log(`  (${s.name} took ${seconds.toFixed(1)} s)`);
      saved[s.name] = { meta, seconds, result };
      mkdirSync(dirname(RESULTS), { recursive: true });
      writeFileSync(RESULTS, JSON.stringify(saved, null, 1) + "\n");
    } catch (e) {
      console.error(`  ${s.name} could not run: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
      process.exitCode = 1;
    }
  }
  console.log(`\nresults: ${RESULTS} (npx tsx bench/report.ts writes docs/reliability.md from them)`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().then(
    () => process.exit(),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
