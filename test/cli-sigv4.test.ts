/**
 * `warden --sigv4`: the CLI signs its requests for an IAM-authorized stage, with credentials from
 * the AWS SDK's default chain (here its environment step), checked by a loopback gateway that
 * recomputes the signature. Runs `main` in-process to stay quick.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { EXIT, authOf, main, type Io } from "../cli/main.js";
import { TEST_CREDENTIALS, startSigV4Gateway, type SigV4Gateway } from "./support/sigv4-gateway.js";

let gateway: SigV4Gateway;

beforeAll(async () => {
  gateway = await startSigV4Gateway({
    region: "us-east-1",
    secrets: { [TEST_CREDENTIALS.accessKeyId]: TEST_CREDENTIALS.secretAccessKey },
    respond: (r) =>
      r.method === "POST"
        ? { status: 201, body: { job: { id: "01TESTJOB", type: (JSON.parse(r.body) as { type: string }).type, queue: "default", status: "queued" } } }
        : { status: 200, body: { jobs: [], nextCursor: null } },
  });
});

afterAll(async () => {
  await gateway?.close();
});

afterEach(() => {
  vi.unstubAllEnvs();
});

/** The default chain reads the process's environment; AWS_PROFILE would make it skip that step. */
function awsEnvCredentials(): void {
  vi.stubEnv("AWS_PROFILE", undefined);
  vi.stubEnv("AWS_ACCESS_KEY_ID", TEST_CREDENTIALS.accessKeyId);
  vi.stubEnv("AWS_SECRET_ACCESS_KEY", TEST_CREDENTIALS.secretAccessKey);
  vi.stubEnv("AWS_SESSION_TOKEN", undefined);
}

async function warden(args: string[], env: Record<string, string | undefined> = {}, fetchFn?: typeof fetch): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const io: Io = {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    env,
    ...(fetchFn ? { fetch: fetchFn } : {}),
  };
  const code = await main(args, io);
  return { code, stdout, stderr };
}

describe("warden --sigv4", () => {
  it("sends signed requests the gateway verifies, with credentials from the default chain", async () => {
    awsEnvCredentials();
    const before = gateway.requests.length;
    const list = await warden(["--url", gateway.url, "--sigv4", "--region", "us-east-1", "list"], { WARDEN_TOKEN: "ignored-by-sigv4" });
    expect(list, list.stderr).toMatchObject({ code: EXIT.ok, stdout: "no jobs\n" });
    const submit = await warden(["submit", "demo.sleep", "--input", '{"items":2}', "--json"], { WARDEN_URL: gateway.url, WARDEN_AUTH: "sigv4", AWS_REGION: "us-east-1" });
    expect(submit.code, submit.stderr).toBe(EXIT.ok);
    expect(JSON.parse(submit.stdout)).toMatchObject({ created: true, job: { id: "01TESTJOB", type: "demo.sleep" } });

    const reqs = gateway.requests.slice(before);
    expect(reqs.map((r) => `${r.method} ${r.rawUrl}`)).toEqual(["GET /jobs", "POST /jobs"]);
    for (const r of reqs) {
      expect(r.verdict).toMatchObject({ ok: true, accessKeyId: "AKIDEXAMPLE" });
      expect(r.headers.authorization).toMatch(/\/us-east-1\/execute-api\/aws4_request/);
    }
    expect(JSON.parse(reqs[1]!.body)).toEqual({ type: "demo.sleep", input: { items: 2 } });
  });

  it("exits 3 with API Gateway's message when the signature is refused", async () => {
    vi.stubEnv("AWS_PROFILE", undefined);
    vi.stubEnv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE");
    vi.stubEnv("AWS_SECRET_ACCESS_KEY", "a-wrong-secret");
    const run = await warden(["--url", gateway.url, "--sigv4", "--region", "us-east-1", "list"]);
    expect(run.code).toBe(EXIT.apiError);
    expect(run.stderr).toContain("403 bad_response: API Gateway: The request signature we calculated does not match");
  });

  it("signs by default for an execute-api URL with no token, in the URL's region", async () => {
    awsEnvCredentials();
    const seen: { url: string; headers: Headers }[] = [];
    const record: typeof fetch = async (input, init) => {
      seen.push({ url: String(input), headers: new Headers(init?.headers) });
      return new Response(JSON.stringify({ jobs: [], nextCursor: null }), { status: 200, headers: { "content-type": "application/json" } });
    };
    const run = await warden(["list"], { WARDEN_URL: "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com", AWS_REGION: "us-east-1" }, record);
    expect(run.code, run.stderr).toBe(EXIT.ok);
    expect(seen[0]!.url).toBe("https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/jobs");
    expect(seen[0]!.headers.get("authorization")).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/execute-api\/aws4_request, SignedHeaders=accept;host;x-amz-date, /);
  });

  it("says so in --help", async () => {
    const run = await warden(["--help"]);
    expect(run.code).toBe(EXIT.ok);
    expect(run.stdout).toContain("--sigv4");
    expect(run.stdout).toMatch(/execute-api URL[\s\S]*SigV4-signed by default/);
  });

  it("refuses --sigv4 with --token, an unknown WARDEN_AUTH, and --sigv4 without a region", async () => {
    const both = await warden(["--url", gateway.url, "--sigv4", "--token", "t", "list"]);
    expect(both.code).toBe(EXIT.usage);
    expect(both.stderr).toContain("give one");
    const bad = await warden(["list"], { WARDEN_AUTH: "iam" });
    expect(bad.code).toBe(EXIT.usage);
    expect((await warden(["--url", "https://api.example.com", "--sigv4", "list"])).stderr).toContain("needs the stage's region");
    expect(gateway.requests.filter((r) => r.headers.authorization === "Bearer t")).toEqual([]);
  });
});

describe("authOf", () => {
  const EXEC = "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com";
  const LOCAL = "http://127.0.0.1:4000";
  const flags = (o: { token?: string; sigv4?: boolean; region?: string } = {}) => ({ sigv4: false, ...o });

  it("picks bearer or sigv4 from flags first, then the environment, then the URL", () => {
    expect(authOf(flags(), {}, LOCAL)).toBeUndefined();
    expect(authOf(flags(), { WARDEN_TOKEN: "t" }, LOCAL)).toEqual({ kind: "bearer", token: "t" });
    expect(authOf(flags(), {}, EXEC)).toEqual({ kind: "sigv4", region: "eu-west-1" });
    expect(authOf(flags(), { WARDEN_TOKEN: "jwt" }, EXEC)).toEqual({ kind: "bearer", token: "jwt" });
    expect(authOf(flags(), { WARDEN_AUTH: "bearer" }, EXEC)).toBeUndefined();
    expect(authOf(flags(), { WARDEN_AUTH: "sigv4", WARDEN_TOKEN: "t", AWS_REGION: "us-east-2" }, LOCAL)).toEqual({ kind: "sigv4", region: "us-east-2" });
    expect(authOf(flags({ token: "flag" }), { WARDEN_AUTH: "sigv4" }, EXEC)).toEqual({ kind: "bearer", token: "flag" });
    expect(authOf(flags({ sigv4: true }), { WARDEN_TOKEN: "t", AWS_DEFAULT_REGION: "ap-south-1" }, LOCAL)).toEqual({ kind: "sigv4", region: "ap-south-1" });
    expect(authOf(flags({ sigv4: true, region: "us-west-2" }), { AWS_REGION: "us-east-1" }, EXEC)).toEqual({ kind: "sigv4", region: "us-west-2" });
  });
});
