/**
 * The emulators (local/emulators.ts: dynalite and fauxqs) in a process of their own, so a
 * benchmark that drives them hard gets one core for its own code and one for theirs. Run as a
 * script it starts them, prints one JSON line (endpoints, table, queues) and stops them when its
 * stdin closes (its parent exited, or called `close`). `emulatorProcess` starts it and answers a
 * BenchEnv on it.
 */
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { startEmulators, type Emulators } from "../../local/emulators.js";
import { withClients, type BenchEnv } from "./env.js";

type Shape = Omit<Emulators, "stop">;

export async function emulatorProcess(stage = "bench"): Promise<BenchEnv & { pid: number }> {
  const child = spawn(process.execPath, ["--import", "tsx", fileURLToPath(import.meta.url), stage], {
    stdio: ["pipe", "pipe", "inherit"],
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" },
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const shape = await new Promise<Shape>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once("line", (line) => {
      try {
        resolve(JSON.parse(line) as Shape);
      } catch (e) {
        reject(e);
      }
    });
    child.once("exit", (code) => reject(new Error(`the emulator process exited (${code}) before it was ready`)));
    child.once("error", reject);
  });
  const stop = async () => {
    child.stdin!.end();
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  };
  return { pid: child.pid!, ...withClients({ ...shape, stop }) };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const emu = await startEmulators({ stage: process.argv[2] ?? "bench" });
  const { stop: _stop, ...shape } = emu;
  process.stdout.write(JSON.stringify(shape) + "\n");
  process.stdin.resume();
  process.stdin.once("end", () => void emu.stop().then(() => process.exit(0)));
}
