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
    dirty: git("status", "--porcelain").length > 0,
    node: process.version,
    cpu: c[0]?.model ?? "unknown",
    cores: c.length,
  };
}
