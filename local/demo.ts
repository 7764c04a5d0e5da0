/**
 * `npm run demo`: the point of Warden in about a minute. It starts the system (or uses a running
 * one: WARDEN_URL, WARDEN_TOKEN and WARDEN_ADMIN_TOKEN), submits a mix of jobs, SIGKILLs a
 * worker process in the middle of a job, and narrates how the job comes back and finishes from
 * its checkpoint instead of from the start.
 */
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

async function main(): Promise<void> {
  let sys: Launched | undefined;
  let url = process.env.WARDEN_URL;
  let token = process.env.WARDEN_TOKEN;
  let adminToken = process.env.WARDEN_ADMIN_TOKEN;
  if (!url || !token || !adminToken) {
    say("starting Warden on this machine (npm start --memory): DynamoDB and SQS emulators, the API, a Lambda poller, 2 Fargate-style worker processes, the sweeper…");
    sys = await launchLocal({ args: ["--memory", "--workers", "2"] });
    ({ url, callerToken: token, adminToken } = sys);
  }
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
    say("stopping (Ctrl-C does the same: workers hand back their jobs first)");
    await sys.stop();
  }
  say("done. Run `npm start` and open the dashboard URL it prints to watch it live.");
}

main().catch(async (e: unknown) => {
  console.error(`demo failed: ${String((e as Error)?.message ?? e)}`);
  process.exit(1);
});
