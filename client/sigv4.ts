/**
 * SigV4 signing for stages behind API Gateway's IAM authorizer. Every run-time dependency is
 * imported on first use, so a bearer-token client (or a browser bundle that never signs) does not
 * load the AWS signing code or the Node credential chain.
 */
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from "@smithy/types";

export type { AwsCredentialIdentity, AwsCredentialIdentityProvider };

/** API Gateway's signing name for invoking an API (as opposed to managing one, "apigateway"). */
export const EXECUTE_API = "execute-api";

export interface SigV4Auth {
  kind: "sigv4";
  /** The stage's region, e.g. eu-west-1 (part of the signature's scope). */
  region: string;
  /** Defaults to the AWS SDK's default chain: env, AWS_PROFILE / SSO / ini files, container, instance. */
  credentials?: AwsCredentialIdentity | AwsCredentialIdentityProvider;
}

export interface UnsignedRequest {
  method: string;
  url: URL;
  /** Lower-case names. No `host`: it is taken from `url`. */
  headers: Record<string, string>;
  body?: string;
}

/** Returns the headers to send: the request's own plus `authorization`, `x-amz-date` (and a session token). */
export type RequestSigner = (req: UnsignedRequest) => Promise<Record<string, string>>;

export async function sigV4Signer(auth: SigV4Auth): Promise<RequestSigner> {
  const [{ SignatureV4 }, { Sha256 }] = await Promise.all([import("@smithy/signature-v4"), import("@aws-crypto/sha256-js")]);
  const credentials = auth.credentials ?? (await import("@aws-sdk/credential-provider-node")).defaultProvider();
  const signer = new SignatureV4({
    service: EXECUTE_API,
    region: auth.region,
    credentials,
    sha256: Sha256,
    // API Gateway hashes the body itself; an x-amz-content-sha256 header would only add a header.
    applyChecksum: false,
  });
  return async ({ method, url, headers, body }) => {
    const signed = await signer.sign({
      method,
      protocol: url.protocol,
      hostname: url.hostname,
      ...(url.port ? { port: Number(url.port) } : {}),
      // Already percent-encoded, as sent; the signer encodes it once more, as SigV4 wants for non-S3 services.
      path: url.pathname,
      query: queryOf(url.searchParams),
      // fetch sends Host from the URL (with the port when it is not the default), so sign the same.
      headers: { ...headers, host: url.host },
      ...(body !== undefined ? { body } : {}),
    });
    // fetch derives Host from the URL (the value signed above) and ignores one passed in.
    const { host: _host, ...send } = signed.headers;
    return send;
  };
}

/** Decoded names and values; the signer encodes them canonically. */
function queryOf(params: URLSearchParams): Record<string, string | string[]> {
  const query: Record<string, string | string[]> = {};
  for (const key of new Set(params.keys())) {
    const values = params.getAll(key);
    query[key] = values.length === 1 ? values[0]! : values;
  }
  return query;
}

/** `https://abc123.execute-api.eu-west-1.amazonaws.com[/stage]` → `eu-west-1`; anything else → undefined. */
export function executeApiRegion(baseUrl: string): string | undefined {
  let host: string;
  try {
    host = new URL(baseUrl).hostname;
  } catch {
    return undefined;
  }
  return /^[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$/i.exec(host)?.[1]?.toLowerCase();
}
