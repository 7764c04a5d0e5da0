/**
 * The typed client against an IAM-authorized stage: requests signed with SigV4 and checked by a
 * loopback gateway that recomputes the signature from what arrived (test/support/sigv4-gateway.ts).
 */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WardenApiError, WardenClient, WardenError, executeApiRegion, type ApiJob } from "../client/index.js";
import { TEST_CREDENTIALS, startSigV4Gateway, verifySigV4, type Recorded, type SigV4Gateway } from "./support/sigv4-gateway.js";

const REGION = "eu-west-1";
const SECRETS = { [TEST_CREDENTIALS.accessKeyId]: TEST_CREDENTIALS.secretAccessKey };
let gateway: SigV4Gateway;

const fakeJob = (type: string): Partial<ApiJob> => ({ id: "01TESTJOB", type, queue: "default", status: "queued" });

beforeAll(async () => {
  gateway = await startSigV4Gateway({
    region: REGION,
    secrets: SECRETS,
    respond: (r) =>
      r.method === "POST" && r.rawUrl.endsWith("/jobs")
        ? { status: 201, body: { job: fakeJob((JSON.parse(r.body) as { type: string }).type) } }
        : { status: 200, body: { jobs: [], nextCursor: null } },
  });
});

afterAll(async () => {
  await gateway?.close();
});

/** The requests the gateway saw while `fn` ran. */
async function seen(fn: () => Promise<unknown>): Promise<Recorded[]> {
  const before = gateway.requests.length;
  await fn();
  return gateway.requests.slice(before);
}

const signed = (o: Partial<ConstructorParameters<typeof WardenClient>[0]> = {}): WardenClient =>
  new WardenClient({ baseUrl: gateway.url, auth: { kind: "sigv4", region: REGION, credentials: TEST_CREDENTIALS }, ...o } as ConstructorParameters<typeof WardenClient>[0]);

describe("sigv4 auth", () => {
  it("signs a POST with a JSON body so that the gateway's recomputed signature matches", async () => {
    let answer: Awaited<ReturnType<WardenClient["submit"]>> | undefined;
    const [req] = await seen(async () => {
      answer = await signed().submit("demo.sleep", { items: 3, note: "ünïcode & spaces" }, { idempotencyKey: "k-1" });
    });
    expect(req!.verdict).toEqual({ ok: true, accessKeyId: "AKIDEXAMPLE", signedHeaders: expect.arrayContaining(["host", "x-amz-date", "content-type"]) });
    expect(req!.headers.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/execute-api\/aws4_request, /);
    expect(req!.headers["content-type"]).toBe("application/json");
    expect(JSON.parse(req!.body)).toMatchObject({ type: "demo.sleep", input: { items: 3 }, idempotencyKey: "k-1" });
    expect(answer).toMatchObject({ created: true, job: { id: "01TESTJOB" } });
  });

  it("signs the path under a stage prefix and a query with spaces, slashes, pluses and non-ASCII", async () => {
    const client = signed({ baseUrl: `${gateway.url}/prod/` });
    const reqs = await seen(async () => {
      await client.listPage({ type: "a b+c/d é", status: "failed", limit: 5, cursor: "eyJ4IjoxfQ==" });
      await client.get("01TESTJOB");
      await client.cancel("01TESTJOB");
    });
    expect(reqs.map((r) => `${r.method} ${r.rawUrl.split("?")[0]}`)).toEqual(["GET /prod/jobs", "GET /prod/jobs/01TESTJOB", "POST /prod/jobs/01TESTJOB/cancel"]);
    expect(reqs[0]!.rawUrl).toContain("type=a%20b%2Bc%2Fd%20%C3%A9");
    for (const r of reqs) expect(r.verdict, r.rawUrl).toMatchObject({ ok: true });
  });

  it("includes a session token in what it signs", async () => {
    const [req] = await seen(() => signed({ auth: { kind: "sigv4", region: REGION, credentials: async () => ({ ...TEST_CREDENTIALS, sessionToken: "session-token-1" }) } }).listPage());
    expect(req!.headers["x-amz-security-token"]).toBe("session-token-1");
    expect(req!.verdict).toMatchObject({ ok: true, signedHeaders: expect.arrayContaining(["x-amz-security-token"]) });
  });

  it("is refused when the body is changed after signing", async () => {
    const tamper: typeof fetch = (input, init) => fetch(input, { ...init, body: String(init?.body).replace('"items":3', '"items":4') });
    const err = await signed({ fetch: tamper })
      .submit("demo.sleep", { items: 3 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WardenApiError);
    expect((err as WardenApiError).status).toBe(403);
    expect((err as WardenApiError).message).toContain("API Gateway: The request signature we calculated does not match");
    expect(gateway.requests.at(-1)!.body).toContain('"items":4');
  });

  it("a recorded good request fails verification once its body, path or query is altered", async () => {
    const [good] = await seen(() => signed().submit("demo.sleep", { items: 3 }));
    expect(good!.verdict.ok).toBe(true);
    const opts = { region: REGION, secrets: SECRETS };
    expect(await verifySigV4(good!, opts)).toMatchObject({ ok: true });
    expect(await verifySigV4({ ...good!, body: good!.body.replace("3", "4") }, opts)).toMatchObject({ ok: false });
    expect(await verifySigV4({ ...good!, rawUrl: "/jobs/x" }, opts)).toMatchObject({ ok: false });
    expect(await verifySigV4({ ...good!, rawUrl: "/jobs?a=1" }, opts)).toMatchObject({ ok: false });
    expect(await verifySigV4(good!, { region: "us-east-1", secrets: SECRETS })).toMatchObject({ ok: false });
    expect(await verifySigV4(good!, { region: REGION, secrets: { AKIDEXAMPLE: "another-secret" } })).toMatchObject({ ok: false });
  });

  it("the gateway's verifier accepts AWS's published SigV4 test vector (get-vanilla) and nothing near it", async () => {
    const vanilla = {
      method: "GET",
      rawUrl: "/",
      body: "",
      headers: {
        host: "example.amazonaws.com",
        "x-amz-date": "20150830T123600Z",
        authorization:
          "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
      },
    };
    const opts = { region: "us-east-1", service: "service", secrets: SECRETS, now: new Date("2015-08-30T12:36:00Z") };
    expect(await verifySigV4(vanilla, opts)).toMatchObject({ ok: true });
    expect(await verifySigV4({ ...vanilla, method: "POST" }, opts)).toMatchObject({ ok: false });
    expect(await verifySigV4({ ...vanilla, headers: { ...vanilla.headers, host: "example.amazonaws.com:443" } }, opts)).toMatchObject({ ok: false });
    expect(await verifySigV4(vanilla, { ...opts, now: new Date("2015-08-30T13:00:00Z") })).toMatchObject({ ok: false, reason: expect.stringContaining("5 minutes") });
  });

  it("is refused when signed with the wrong secret", async () => {
    const err = await signed({ auth: { kind: "sigv4", region: REGION, credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "not-the-secret" } } })
      .listPage()
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 403 });
    expect(gateway.requests.at(-1)!.verdict).toMatchObject({ ok: false, reason: expect.stringContaining("signature") });
  });

  it("turns a credential chain that finds nothing into a WardenError, before sending anything", async () => {
    let sent = 0;
    const client = signed({
      auth: { kind: "sigv4", region: REGION, credentials: () => Promise.reject(new Error("Could not load credentials from any providers")) },
      fetch: (i, init) => (sent++, fetch(i, init)),
    });
    const err = await client.listPage().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WardenError);
    expect((err as Error).message).toMatch(/cannot sign the request with SigV4 .*eu-west-1.*Could not load credentials/);
    expect(sent).toBe(0);
  });

  it("still sends a bearer token for `token` and for auth kind bearer, unsigned", async () => {
    const headers: Headers[] = [];
    const record: typeof fetch = (i, init) => (headers.push(new Headers(init?.headers)), fetch(i, init));
    await new WardenClient({ baseUrl: gateway.url, token: "tok-1", fetch: record }).listPage().catch(() => undefined);
    await new WardenClient({ baseUrl: gateway.url, auth: { kind: "bearer", token: "tok-2" }, fetch: record }).listPage().catch(() => undefined);
    expect(headers.map((h) => h.get("authorization"))).toEqual(["Bearer tok-1", "Bearer tok-2"]);
    expect(headers.every((h) => !h.has("x-amz-date"))).toBe(true);
  });

  it("refuses options that are contradictory", () => {
    const both = { baseUrl: gateway.url, token: "t", auth: { kind: "bearer", token: "t" } } as unknown as ConstructorParameters<typeof WardenClient>[0];
    expect(() => new WardenClient(both)).toThrow(/either auth or token/);
    expect(() => new WardenClient({ baseUrl: gateway.url, auth: { kind: "sigv4", region: "" } })).toThrow(/needs a region/);
  });

  it("reads the region of an execute-api URL", () => {
    expect(executeApiRegion("https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com")).toBe("eu-west-1");
    expect(executeApiRegion("https://a1b2c3d4e5.execute-api.cn-north-1.amazonaws.com.cn/prod")).toBe("cn-north-1");
    expect(executeApiRegion("https://api.example.com")).toBeUndefined();
    expect(executeApiRegion("http://127.0.0.1:4000")).toBeUndefined();
  });
});

describe("lazy loading", () => {
  /** Runs a client in a fresh Node and lists the signing modules it resolved. */
  function loadedBy(auth: string): Promise<string[]> {
    const client = fileURLToPath(new URL("../client/index.ts", import.meta.url));
    const hook = `export async function resolve(s, c, next) { const r = await next(s, c); if (/signature-v4|sha256-js|credential-provider-node/.test(r.url)) console.log("LOADED " + r.url); return r; }`;
    const script = `
      import { register } from "node:module";
      register("data:text/javascript," + encodeURIComponent(${JSON.stringify(hook)}));
      const { WardenClient } = await import(${JSON.stringify(client)});
      await new WardenClient({ baseUrl: ${JSON.stringify(gateway.url)}, ${auth} }).listPage().catch(() => {});
      console.log("DONE");`;
    return new Promise((resolve, reject) => {
      execFile(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { timeout: 30_000 }, (err, stdout, stderr) => {
        if (err || !stdout.includes("DONE")) return reject(new Error(`child failed: ${String(err)}\n${stdout}\n${stderr}`));
        resolve(stdout.split("\n").filter((l) => l.startsWith("LOADED ")));
      });
    });
  }

  it("does not load the signing modules for a bearer client, and does for a sigv4 one", async () => {
    const [bearer, sigv4] = await Promise.all([
      loadedBy(`token: "tok"`),
      loadedBy(`auth: { kind: "sigv4", region: "${REGION}", credentials: ${JSON.stringify(TEST_CREDENTIALS)} }`),
    ]);
    expect(bearer).toEqual([]);
    expect(sigv4.some((l) => l.includes("signature-v4"))).toBe(true);
    expect(sigv4.some((l) => l.includes("sha256-js"))).toBe(true);
  });
});
