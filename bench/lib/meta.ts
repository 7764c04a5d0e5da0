/** Where a result came from: the commit, whether the tree had changes, and the machine. */
import { execFileSync } from "node:child_process";
import { cpus } from "node:os";

export interface RunMeta {
  at: string;
  commit: string;
  dirty: boolean;
  node: string;
  cpu: string;
  cores: number;
}

/** What `npm run bench`, `npm run chaos` and bench/report.ts write. */
const GENERATED = ["bench/results", "docs/reliability.md", "docs/reliability-kill.svg", "docs/reliability-writes.svg", "README.md"];

export function runMeta(): RunMeta {
  const git = (...args: string[]): string => {
    try {
      return execFileSync("git", args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    } catch {
      return "";
    }
  };
  const c = cpus();
  return {
    at: new Date().toISOString(),
    commit: git("rev-parse", "HEAD") || "unknown",
    // The benchmarks' own outputs (saved results, the report they regenerate) do not make the code differ from the commit.
    dirty: git("status", "--porcelain", "--", ".", ...GENERATED.map((p) => `:(exclude)${p}`)).length > 0,
    node: process.version,
    cpu: c[0]?.model ?? "unknown",
    cores: c.length,
  };
}
