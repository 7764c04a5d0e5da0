/**
 * `npm run demo`: the point of Warden in about a minute. It submits a mix of jobs, SIGKILLs a
 * worker process in the middle of a job, and narrates how the job comes back and finishes from
 * its checkpoint instead of from the start.
 *
 * Which Warden: the `npm start` already running on this machine when WARDEN_URL and
 * WARDEN_TOKEN are set (what `npm start` prints to export) and an admin token is known, from
 * WARDEN_ADMIN_TOKEN or else the data directory's tokens.json (WARDEN_DATA_DIR, .warden/), used
 * only if that instance accepts it: the admin's `/admin/workers` names the pid to kill. Otherwise
 * it starts its own (`npm start --memory` on free ports, stopped at the end). It says which, and why.
 */
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { TOKENS_FILE } from "./config.js";
import { client, launchLocal, type Launched } from "./launch.js";
import type { ApiJob } from "../core/api/view.js";

/** The API's job object, with the result demo.sleep returns. */
type JobView = Omit<ApiJob, "result"> & { result: { items?: number; resumedFrom?: number } | null };
interface WorkerView {
  id: string;
  kind: string;
  pid?: number;
}

const t0 = Date.now();
const say = (msg: string) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${msg}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const short = (id: string) => id.slice(-6);
const pct = (j: JobView) => `${Math.round(j.progress?.percent ?? (j.progress?.total ? (100 * j.progress.done) / j.progress.total : 0))}%`;

async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`);
    await sleep(250);
  }
}

interface Target {
  url: string;
  token: string;
  adminToken: string;
}

const isLoopback = (url: string): boolean => {
  try {
    return ["127.0.0.1", "localhost", "[::1]"].includes(new URL(url).hostname);
  } catch {
    return false;
  }
};

/** The admin token the data directory keeps, when there is one. */
function keptAdminToken(env: NodeJS.ProcessEnv): { token: string; file: string } | undefined {
  const file = join(resolve(env.WARDEN_DATA_DIR ?? ".warden"), TOKENS_FILE);
  try {
    const admin = (JSON.parse(readFileSync(file, "utf8")) as { admin?: unknown }).admin;
    return typeof admin === "string" && admin ? { token: admin, file } : undefined;
  } catch {
    return undefined;
  }
}

const status = async (url: string, token: string, path: string): Promise<number> =>
  (await fetch(url + path, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(5_000) })).status;

/** The running instance the environment names, checked; a reason when there is none to use. */
async function runningInstance(env: NodeJS.ProcessEnv): Promise<Target | string> {
  const url = env.WARDEN_URL?.replace(/\/+$/, "");
  const token = env.WARDEN_TOKEN;
  if (!url) return "WARDEN_URL is not set";
  if (!isLoopback(url)) return `WARDEN_URL (${url}) is not on this machine, and the demo kills a worker process`;
  if (!token) return "WARDEN_URL is set but WARDEN_TOKEN is not";
  try {
    await fetch(`${url}/health`, { signal: AbortSignal.timeout(5_000) });
  } catch (e) {
    throw new Error(`nothing answers at WARDEN_URL=${url} (${String((e as Error).cause ?? (e as Error).message)}): start \`npm start\`, or unset WARDEN_URL and the demo starts its own`);
  }
  if ((await status(url, token, "/jobs?limit=1")) !== 200) throw new Error(`the Warden at ${url} refuses WARDEN_TOKEN: export the caller token its \`npm start\` printed`);
  let adminToken = env.WARDEN_ADMIN_TOKEN;
  let from = "WARDEN_ADMIN_TOKEN";
  if (!adminToken) {
    const kept = keptAdminToken(env);
    if (kept && (await status(url, kept.token, "/admin/workers")) === 200) ({ token: adminToken, file: from } = kept);
    else return "WARDEN_URL and WARDEN_TOKEN are set but WARDEN_ADMIN_TOKEN is not (the demo reads /admin/workers to find the process to kill), and no tokens.json here has that instance's";
  }
  if ((await status(url, adminToken, "/admin/workers")) !== 200) throw new Error(`the Warden at ${url} refuses the admin token from ${from}: export the admin token its \`npm start\` printed`);
  say(`using the Warden already running at ${url} (WARDEN_URL, WARDEN_TOKEN; the admin token from ${from}); it is left running at the end`);
  return { url, token, adminToken };
}

let sys: Launched | undefined;

async function main(): Promise<void> {
  const found = await runningInstance(process.env);
  let target: Target;
  if (typeof found === "string") {
    say(`${found}: starting a Warden of its own on this machine (npm start --memory, on free ports): DynamoDB and SQS emulators, the API, a Lambda poller, 2 Fargate-style worker processes, the sweeper…`);
    sys = await launchLocal({ args: ["--memory", "--workers", "2"] });
    target = { url: sys.url, token: sys.callerToken, adminToken: sys.adminToken };
  } else {
    target = found;
  }
  const { url, token, adminToken } = target;
  say(`Warden is up at ${url}. Dashboard: ${url}/#token=${encodeURIComponent(adminToken)}`);
  const call = client(url, token);
  const admin = client(url, adminToken);
  const get = async (id: string) => (await call<{ job: JobView }>("GET", `/jobs/${id}`)).body.job;
  const submit = async (body: Record<string, unknown>) => {
    const r = await call<{ job: JobView }>("POST", "/jobs", body);
    if (r.status !== 201) throw new Error(`submit failed: ${JSON.stringify(r.body)}`);
    return r.body.job.id;
  };

  say("submitting 10 jobs: 3 long ones for the Fargate workers, 4 short ones for Lambda, 2 that fail once, 1 that fails for good");
  const long: string[] = [];
  for (let i = 0; i < 3; i++) long.push(await submit({ type: "demo.sleep", queue: "large", input: { items: 20, msPerItem: 600, checkpointEvery: 2 } }));
  const others = [
    ...(await Promise.all(Array.from({ length: 4 }, () => submit({ type: "demo.sleep", input: { items: 8, msPerItem: 300 } })))),
    await submit({ type: "demo.fail", input: { times: 1 } }),
    await submit({ type: "demo.fail", input: { times: 1 } }),
    await submit({ type: "demo.permanent", input: {} }),
  ];

  const victim = await until("a long job to pass a few checkpoints", async () => {
    for (const id of long) {
      const j = await get(id);
      if (j.status === "running" && (j.progress?.done ?? 0) >= 7) return j;
    }
    return undefined;
  });
  const holder = victim.history.at(-1)!.worker;
  const { body } = await admin<{ workers: WorkerView[] }>("GET", "/admin/workers");
  const proc = body.workers.find((w) => w.id === holder && w.pid);
  if (!proc?.pid) throw new Error(`no pid known for worker ${holder}`);
  say(`job ${short(victim.id)} is at ${pct(victim)} on worker process ${holder} (pid ${proc.pid}); it checkpoints every 2 items`);
  say(`kill -9 ${proc.pid}: the process dies at once, with no chance to hand the job back (a crash, an OOM kill, a yanked container)`);
  process.kill(proc.pid, "SIGKILL");
  const killedAt = Date.now();

  say(`the job still says "running" in DynamoDB, but nobody renews its lease; the sweeper will notice when it expires…`);
  const reclaimed = await until("the sweeper to reclaim the job", async () => {
    const j = await get(victim.id);
    return j.history[0]?.outcome === "worker_lost" ? j : undefined;
  });
  say(`after ${((Date.now() - killedAt) / 1000).toFixed(1)}s the sweeper found the lease expired: attempt 1 ended "worker_lost", the job is ${reclaimed.status} again and its doorbell rang`);
  say("meanwhile the ECS stand-in started a replacement worker process, as ECS would");
  const resumed = await until("another worker to take the job", async () => {
    const j = await get(victim.id);
    return j.attempts >= 2 && j.status !== "queued" ? j : undefined;
  });
  say(`attempt ${resumed.attempts} runs on ${resumed.history.at(-1)!.worker}, starting from its last checkpoint (progress ${pct(resumed)}), not from zero`);
  const done = await until("the job to finish", async () => {
    const j = await get(victim.id);
    return j.status === "succeeded" || j.status === "failed" ? j : undefined;
  });
  say(`job ${short(done.id)} ${done.status}: result ${JSON.stringify(done.result)}; resumedFrom ${done.result?.resumedFrom} means ${done.result?.resumedFrom} of ${done.result?.items} items were not redone`);

  const all = await until("every job to finish", async () => {
    const jobs = await Promise.all([...long, ...others].map(get));
    return jobs.every((j) => ["succeeded", "failed", "cancelled"].includes(j.status)) ? jobs : undefined;
  });
  say("every job is finished; nothing is stuck, nothing ran twice to completion:");
  for (const j of all) {
    const why = j.status === "failed" ? ` (${j.error?.code}: ${j.error?.message})` : j.attempts > 1 ? ` after ${j.attempts} attempts: ${j.history.map((h) => h.outcome).join(" → ")}` : "";
    console.log(`         ${short(j.id)}  ${j.type.padEnd(15)} ${j.queue.padEnd(8)} ${j.status}${why}`);
  }
  if (sys) {
    say("stopping the Warden it started (Ctrl-C does the same: workers hand back their jobs first)");
    await sys.stop();
    sys = undefined;
    say("done. Run `npm start` and open the dashboard URL it prints to watch it live; with WARDEN_URL, WARDEN_TOKEN and WARDEN_ADMIN_TOKEN exported, `npm run demo` runs on it.");
  } else {
    say(`done. The jobs stay on ${url}; its dashboard shows them.`);
  }
}

// Ctrl-C or a kill of `npm run demo`: the Warden it started stops too, its workers handing their jobs back.
let stopping = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    say(`${signal}: ${sys ? "stopping the Warden it started…" : "stopping"}`);
    void (sys?.stop() ?? Promise.resolve()).finally(() => process.exit(signal === "SIGINT" ? 130 : 143));
  });
}

main().catch(async (e: unknown) => {
  console.error(`demo failed: ${String((e as Error)?.message ?? e)}`);
  await sys?.stop().catch(() => undefined);
  process.exit(1);
});
