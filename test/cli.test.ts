/**
 * The `warden` command as users run it: a child process (bin/warden.js) talking HTTP to the
 * handler served on loopback, with a worker loop running the jobs.
 */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLog } from "../core/api/jobs.js";
import { loadRuntime } from "../core/runtime.js";
import { buildServices, type Services } from "../core/services.js";
import { makeHandler } from "../functions/api.js";
import { useEmulators } from "./support/emulators.js";
import { serveApi, type TestServer } from "./support/http-api.js";
import { startWorkerLoop, type WorkerLoop } from "./support/api-worker.js";

const BIN = fileURLToPath(new URL("../bin/warden.js", import.meta.url));
const env = useEmulators("cli");
let services: Services;
let server: TestServer;
let worker: WorkerLoop;

beforeAll(async () => {
  services = buildServices(loadRuntime(env.emu.env));
  server = await serveApi(makeHandler(services, { log: silentLog }), { "tok-user": { sub: "user" }, "tok-admin": { sub: "ops", admin: true } });
  worker = startWorkerLoop(services, { leaseMs: 600 });
});

afterAll(async () => {
  await worker?.stop();
  await server?.close();
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI; the URL and token come from the environment unless the args give them. */
function warden(args: string[], token = "tok-user"): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { env: { ...process.env, WARDEN_URL: server.url, WARDEN_TOKEN: token }, timeout: 45_000 },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? -1) : 0, stdout, stderr }),
    );
  });
}

async function orphan(owner: string): Promise<string> {
  const { job } = await services.store.create({ owner, type: "demo.sleep", queue: "default", input: { items: 1 }, maxAttempts: 3, timeoutMs: 60_000 });
  return job.id;
}

describe("submit --wait", () => {
  it("shows a progress bar on stderr and exits 0 when the job succeeds", async () => {
    const run = await warden(["submit", "demo.sleep", "--input", '{"items":15,"msPerItem":200}', "--wait"]);
    expect(run.code, run.stderr).toBe(0);
    const bars = run.stderr.split("\n").filter((l) => l.startsWith("["));
    const percents = bars.map((l) => Number(/(\d+\.\d)%/.exec(l)?.[1]));
    expect(percents.at(-1)).toBe(100);
    expect(percents.some((p) => p > 0 && p < 100), run.stderr).toBe(true);
    expect(bars.at(-1)).toMatch(/^\[#{30}\] 100\.0%  succeeded/);
    expect(run.stdout).toMatch(/status\s+succeeded/);
    expect(run.stdout).toContain('{"items":15,"resumedFrom":0}');
  });

  it("exits non-zero when the job fails, with the job as JSON for scripts", async () => {
    const run = await warden(["submit", "demo.permanent", "--input", '{"message":"bad input"}', "--wait", "--json"]);
    expect(run.code).toBe(1);
    const { job } = JSON.parse(run.stdout);
    expect(job).toMatchObject({ type: "demo.permanent", status: "failed", error: { code: "handler_error" } });
  });

  it("gives up with exit 4 on a job whose worker died", async () => {
    const id = await orphan("user");
    const claim = await services.store.claim(id, "w-gone", 300);
    expect(claim.ok).toBe(true);
    const run = await warden(["wait", id]);
    expect(run.code).toBe(4);
    expect(run.stderr).toMatch(/stale/);
    expect(run.stderr).toContain("w-gone");
  });
});

describe("the other commands", () => {
  it("shows a job, lists, cancels and retries", async () => {
    const done = JSON.parse((await warden(["submit", "demo.sleep", "--input", '{"items":1,"msPerItem":0}', "--wait", "--json"])).stdout).job;
    const [status, statusJson, list, listJson] = await Promise.all([
      warden(["status", done.id]),
      warden(["status", done.id, "--json"]),
      warden(["list", "--status", "succeeded"]),
      warden(["list", "--json", "--limit", "100"]),
    ]);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(new RegExp(`id\\s+${done.id}`));
    expect(status.stdout).toMatch(/history:\n\s+ATTEMPT\s+WORKER/);
    expect(JSON.parse(statusJson.stdout).job).toEqual(done);
    expect(list.stdout.split("\n")[0]).toMatch(/^ID\s+TYPE\s+QUEUE\s+STATUS\s+PROGRESS/);
    expect(list.stdout).toContain(done.id);
    expect(JSON.parse(listJson.stdout).jobs.map((j: { id: string }) => j.id)).toContain(done.id);

    const id = await orphan("user");
    const cancel = await warden(["cancel", id]);
    expect(cancel.code).toBe(0);
    expect(cancel.stdout).toContain(`cancelled ${id}`);
    const again = await warden(["cancel", id]);
    expect(again.code).toBe(3);
    expect(again.stderr).toContain("409 conflict");
    const retry = await warden(["retry", id, "--json"]);
    expect(retry.code).toBe(0);
    expect(JSON.parse(retry.stdout).job.status).toBe("queued");
  });

  it("runs the admin commands with the admin token and refuses them without", async () => {
    const [workers, stuck, sweep, dead, redrive, refused] = await Promise.all([
      warden(["workers"], "tok-admin"),
      warden(["stuck", "--json"], "tok-admin"),
      warden(["sweep"], "tok-admin"),
      warden(["dead-letters"], "tok-admin"),
      warden(["dead-letters", "--redrive", "default", "--json"], "tok-admin"),
      warden(["workers"]),
    ]);
    expect(workers.code).toBe(0);
    expect(workers.stdout).toMatch(/^ID\s+KIND\s+PID/);
    expect(workers.stdout).toContain("test-worker");
    expect(Object.keys(JSON.parse(stuck.stdout).states).sort()).toEqual(["cancelling", "queued", "running"]);
    expect(sweep.stdout).toMatch(/^swept in \d+ ms/);
    expect(dead.stdout).toMatch(/^QUEUE\s+COUNT/);
    expect(JSON.parse(redrive.stdout)).toEqual({ moved: 0 });
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain("403 forbidden");
  });

  it("exits 2 on usage errors and 3 on a bad token", async () => {
    const [noType, badInput, unknown, badToken] = await Promise.all([
      warden(["submit"]),
      warden(["submit", "demo.sleep", "--input", "{nope"]),
      warden(["frobnicate"]),
      warden(["list"], "wrong-token"),
    ]);
    expect([noType.code, badInput.code, unknown.code]).toEqual([2, 2, 2]);
    expect(badInput.stderr).toContain("--input is not valid JSON");
    expect(badToken.code).toBe(3);
    expect(badToken.stderr).toContain("401 unauthorized");
  });
});
