/**
 * The CI job's own OIDC token, found without being handed one: when no `--token-file`, no `DLPCTL_TOKEN` and no
 * stored login is there, dlpctl looks at where it runs and asks that system for a token for `identity.audience`
 * (else the client id). The token is then verified like any other workload token (workload.ts, verify.ts), and
 * obtained again at every re-check, so short-lived CI tokens (GitHub's live minutes) keep a long job
 * going.
 *
 * Detected, first match wins:
 *
 * - `github-actions` — `ACTIONS_ID_TOKEN_REQUEST_URL` and `ACTIONS_ID_TOKEN_REQUEST_TOKEN` (present only when the
 *   workflow grants `permissions: id-token: write`): `GET ${URL}&audience=AUD` with
 *   `Authorization: bearer ${TOKEN}` answers `{"value": JWT}`.
 * - `gitlab-ci` — `GITLAB_CI` and an `id_tokens:` variable: `identity.workload.gitlabVariable` or
 *   `--id-token-var` names it; else `DLPCTL_ID_TOKEN`, then `CI_JOB_JWT_V2` (the pre-16 predefined token).
 *   GitLab fixes the audience in `.gitlab-ci.yml` (`aud:`), so dlpctl cannot request it; a wrong one says so.
 * - `circleci` — `CIRCLECI` and `CIRCLE_OIDC_TOKEN_V2`, else `CIRCLE_OIDC_TOKEN` (audience: the organisation id
 *   unless the project requests another one).
 * - `buildkite` — `BUILDKITE` and a `buildkite-agent` on PATH: `buildkite-agent oidc request-token --audience AUD`
 *   prints the token.
 * - `kubernetes` — a projected service-account token file: `identity.workload.kubernetesTokenFile`, else
 *   `/var/run/secrets/tokens/dlpctl`, when it exists. The pod's default service-account token
 *   (`/var/run/secrets/kubernetes.io/serviceaccount/token`) is used only when configured there, since its
 *   audience is the API server, not dlpctl.
 */
import { execFile } from 'node:child_process';
import { access, constants, stat } from 'node:fs/promises';
import path from 'node:path';
import { DlpctlError } from '../errors.js';
import { TransientIdentityError } from './errors.js';
import { readTokenFile } from './workload.js';

export type CiTokenSource = 'github-actions' | 'gitlab-ci' | 'circleci' | 'buildkite' | 'kubernetes';
export const CI_TOKEN_SOURCES: readonly CiTokenSource[] = ['github-actions', 'gitlab-ci', 'circleci', 'buildkite', 'kubernetes'];

export const DEFAULT_KUBERNETES_TOKEN_FILE = '/var/run/secrets/tokens/dlpctl';
export const DEFAULT_GITLAB_VARIABLES = ['DLPCTL_ID_TOKEN', 'CI_JOB_JWT_V2'] as const;

export interface CiDetectOptions {
  env: NodeJS.ProcessEnv;
  /** The audience requested where the CI system lets dlpctl choose (GitHub, Buildkite). */
  audience: string;
  /** `identity.workload` and `--id-token-var`. */
  gitlabVariable?: string;
  kubernetesTokenFile?: string;
  /** `identity.workload.detect: false` turns detection off. */
  detect?: boolean;
  /** Tests. */
  fetch?: typeof fetch;
}

export interface CiToken {
  source: CiTokenSource;
  /** How the token is named in messages: "GitHub Actions' OIDC token". */
  what: string;
  /** Environment variables that carry this credential: never handed to `connect`'s child. */
  envNames: string[];
  /** Obtains the token (again): called once to start and at every re-check. */
  obtain(): Promise<string>;
  /** One or two lines that fix a token refused for its audience. */
  audienceFix: string;
}

function set(env: NodeJS.ProcessEnv, name: string): boolean {
  const v = env[name];
  return v !== undefined && v !== '' && v !== 'false';
}

/** The CI system's token source, or undefined when none is recognised. Does not fetch anything yet. */
export async function detectCiToken(o: CiDetectOptions): Promise<CiToken | undefined> {
  if (o.detect === false) return undefined;
  const env = o.env;
  const aud = o.audience;

  const ghUrl = env.ACTIONS_ID_TOKEN_REQUEST_URL;
  const ghToken = env.ACTIONS_ID_TOKEN_REQUEST_TOKEN;
  if (ghUrl && ghToken) {
    return {
      source: 'github-actions',
      what: "GitHub Actions' OIDC token",
      envNames: ['ACTIONS_ID_TOKEN_REQUEST_URL', 'ACTIONS_ID_TOKEN_REQUEST_TOKEN'],
      obtain: () => githubToken(ghUrl, ghToken, aud, o.fetch ?? fetch),
      audienceFix: `dlpctl requested audience ${aud}; set identity.audience in dlpctl.yaml to the audience the issuer expects`,
    };
  }

  if (set(env, 'GITLAB_CI')) {
    const names = o.gitlabVariable ? [o.gitlabVariable] : [...DEFAULT_GITLAB_VARIABLES];
    const name = names.find((n) => env[n]?.trim());
    if (name) {
      return {
        source: 'gitlab-ci',
        what: `GitLab's ID token in ${name}`,
        envNames: [name],
        obtain: async () => env[name]!.trim(),
        audienceFix: `in .gitlab-ci.yml give the job\n  id_tokens:\n    ${name}:\n      aud: ${aud}`,
      };
    }
    if (o.gitlabVariable) {
      throw new DlpctlError(
        'AUTH_REQUIRED',
        `GitLab CI: the variable ${o.gitlabVariable} is not set; declare it in the job:\n  id_tokens:\n    ${o.gitlabVariable}:\n      aud: ${aud}`,
      );
    }
  }

  if (set(env, 'CIRCLECI')) {
    const name = ['CIRCLE_OIDC_TOKEN_V2', 'CIRCLE_OIDC_TOKEN'].find((n) => env[n]?.trim());
    if (name) {
      return {
        source: 'circleci',
        what: `CircleCI's OIDC token in ${name}`,
        envNames: ['CIRCLE_OIDC_TOKEN_V2', 'CIRCLE_OIDC_TOKEN'],
        obtain: async () => env[name]!.trim(),
        audienceFix: `CircleCI's token names the organisation id as its audience: set identity.audience in dlpctl.yaml to it`,
      };
    }
  }

  if (set(env, 'BUILDKITE')) {
    const agent = await onPath('buildkite-agent', env);
    if (agent) {
      return {
        source: 'buildkite',
        what: "Buildkite's OIDC token",
        envNames: [],
        obtain: () => buildkiteToken(agent, aud, env),
        audienceFix: `dlpctl requested audience ${aud}; set identity.audience in dlpctl.yaml to the audience the issuer expects`,
      };
    }
  }

  const k8sFile = o.kubernetesTokenFile ?? DEFAULT_KUBERNETES_TOKEN_FILE;
  if (await isFile(k8sFile)) {
    return {
      source: 'kubernetes',
      what: `the projected service-account token ${k8sFile}`,
      envNames: [],
      obtain: () => readTokenFile(k8sFile),
      audienceFix: `project the token for that audience in the pod spec:\n  serviceAccountToken: { path: ${path.basename(k8sFile)}, audience: ${aud} }`,
    };
  }
  if (o.kubernetesTokenFile !== undefined && set(env, 'KUBERNETES_SERVICE_HOST')) {
    throw new DlpctlError(
      'AUTH_REQUIRED',
      `identity.workload.kubernetesTokenFile ${o.kubernetesTokenFile} does not exist; mount a projected service-account token there (a projected volume with serviceAccountToken: { audience: ${aud} })`,
    );
  }
  return undefined;
}

/** A hint for the AUTH_REQUIRED message when dlpctl sees a CI system but no token it can use. */
export function missingCiTokenHint(env: NodeJS.ProcessEnv): string | undefined {
  if (set(env, 'GITHUB_ACTIONS')) return 'in GitHub Actions grant the job `permissions: id-token: write` so dlpctl can request its OIDC token';
  if (set(env, 'GITLAB_CI')) return `in GitLab CI declare an id_tokens: variable (${DEFAULT_GITLAB_VARIABLES[0]}) with aud: set to identity.audience`;
  if (set(env, 'CIRCLECI')) return 'in CircleCI the OIDC token needs a context or project with OIDC enabled (CIRCLE_OIDC_TOKEN_V2)';
  if (set(env, 'BUILDKITE')) return 'in Buildkite dlpctl runs buildkite-agent oidc request-token; put buildkite-agent on PATH';
  return undefined;
}

async function githubToken(requestUrl: string, requestToken: string, audience: string, f: typeof fetch): Promise<string> {
  let url: URL;
  try {
    url = new URL(requestUrl);
  } catch {
    throw new DlpctlError('AUTH_FAILED', 'ACTIONS_ID_TOKEN_REQUEST_URL is not a URL; it is set by the GitHub Actions runner, do not override it');
  }
  url.searchParams.set('audience', audience);
  let res: Response;
  try {
    res = await f(url, { headers: { authorization: `bearer ${requestToken}`, accept: 'application/json; api-version=2.0' }, signal: AbortSignal.timeout(15_000) });
  } catch (err) {
    throw new TransientIdentityError(
      `cannot reach GitHub Actions' token endpoint (${url.origin}): ${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message}; the runner's ACTIONS_ID_TOKEN_REQUEST_URL must be reachable from this step (not from inside a container without network)`,
      { cause: err },
    );
  }
  const text = await res.text();
  if (res.status >= 500) throw new TransientIdentityError(`GitHub Actions' token endpoint answered HTTP ${res.status}; re-run the job`);
  if (!res.ok) {
    throw new DlpctlError(
      'AUTH_FAILED',
      `GitHub Actions' token endpoint refused the request (HTTP ${res.status}); the job needs \`permissions: id-token: write\`, and ACTIONS_ID_TOKEN_REQUEST_TOKEN must be the runner's`,
    );
  }
  let value: unknown;
  try {
    value = (JSON.parse(text) as { value?: unknown }).value;
  } catch {
    value = undefined;
  }
  if (typeof value !== 'string' || value === '') throw new DlpctlError('AUTH_FAILED', `GitHub Actions' token endpoint answered without a token ("value"); check ACTIONS_ID_TOKEN_REQUEST_URL`);
  return value;
}

function buildkiteToken(agent: string, audience: string, env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(agent, ['oidc', 'request-token', '--audience', audience], { env, timeout: 30_000, maxBuffer: 256 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        const detail = String(stderr).trim().split('\n').pop() ?? '';
        reject(new DlpctlError('AUTH_FAILED', `buildkite-agent oidc request-token failed${detail ? `: ${detail}` : ` (${err.message})`}; the step must run under a Buildkite agent with a job token`, { cause: err }));
        return;
      }
      const token = String(stdout).trim();
      if (token === '') reject(new DlpctlError('AUTH_FAILED', 'buildkite-agent oidc request-token printed no token'));
      else resolve(token);
    });
  });
}

async function onPath(name: string, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const file = path.join(dir, name);
    try {
      await access(file, constants.X_OK);
      if (await isFile(file)) return file;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

async function isFile(file: string): Promise<boolean> {
  try {
    return (await stat(file)).isFile();
  } catch {
    return false;
  }
}
