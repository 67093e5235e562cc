/**
 * The CI job's own OIDC token, detected (src/identity/ci.ts): a fake GitHub Actions token endpoint on
 * 127.0.0.1 that behaves as the runner's does (checks the bearer request token, mints a token for the
 * `audience` it is asked for, signed by the test provider's key), GitLab / CircleCI variables, a Buildkite
 * agent on PATH, a Kubernetes projected token file. Each token is then verified against the real test
 * provider's JWKS like any other workload token.
 */
import { chmod, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DlpctlError } from '../../src/errors.js';
import { resolveCredential, resolveSessionIdentity } from '../../src/identity/index.js';
import { runBin, runCli, testEnv } from '../helpers/cli.js';
import { AUDIENCE, CLIENT_ID, sign, startProvider, type TestProvider } from './provider.js';

const REQUEST_TOKEN = 'runner-request-token-9f2c';
const SUBJECT = 'repo:acme/app:ref:refs/heads/main';

let op: TestProvider;
let home: string;
let gh: { url: string; requests: { audience: string | null; auth: string | undefined; apiVersion: string | null }[]; ignoreAudience: boolean; close(): Promise<void> };

/** GitHub's token endpoint as the runner exposes it: `${ACTIONS_ID_TOKEN_REQUEST_URL}&audience=AUD`. */
async function startGithubEndpoint(p: TestProvider) {
  const state = {
    url: '',
    requests: [] as { audience: string | null; auth: string | undefined; apiVersion: string | null }[],
    ignoreAudience: false,
    close: async () => {},
  };
  const server = http.createServer((req, res) => {
    void (async () => {
      const u = new URL(req.url ?? '/', 'http://127.0.0.1');
      const audience = u.searchParams.get('audience');
      state.requests.push({ audience, auth: req.headers.authorization, apiVersion: u.searchParams.get('api-version') });
      if (req.headers.authorization !== `bearer ${REQUEST_TOKEN}`) {
        res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ message: 'Bad credentials' }));
        return;
      }
      const t = Math.floor(Date.now() / 1000);
      // Without an audience (or when told to ignore it) GitHub uses the repository owner's URL.
      const aud = state.ignoreAudience || !audience ? 'https://github.com/acme' : audience;
      const value = await sign(p.keys[0]!, { iss: p.issuer, sub: SUBJECT, aud, iat: t, nbf: t, exp: t + 300, repository: 'acme/app', ref: 'refs/heads/main' });
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ count: 1, value }));
    })();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/_apis/distributedtask/hubs/build/plans/p1/jobs/j1/idtoken?api-version=2.0`;
  state.close = () => new Promise<void>((r) => server.close(() => r()));
  return state;
}

beforeAll(async () => {
  op = await startProvider();
  gh = await startGithubEndpoint(op);
  home = await mkdtemp(path.join(os.tmpdir(), 'dlpctl-ci-'));
});
afterAll(async () => {
  await gh?.close();
  await op?.close();
});

const identity = (extra: Record<string, unknown> = {}) => ({ issuer: op.issuer, clientId: CLIENT_ID, audience: AUDIENCE, groupsClaim: 'groups', ...extra });
const cfg = (extra: Record<string, unknown> = {}) => ({ identity: identity(extra) as never });
const env = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({ HOME: home, XDG_STATE_HOME: path.join(home, 'state'), CI: 'true', PATH: '/usr/bin:/bin', ...extra });
const ghEnv = (extra: NodeJS.ProcessEnv = {}) => env({ GITHUB_ACTIONS: 'true', ACTIONS_ID_TOKEN_REQUEST_URL: gh.url, ACTIONS_ID_TOKEN_REQUEST_TOKEN: REQUEST_TOKEN, ...extra });

async function token(claims: Record<string, unknown>): Promise<string> {
  const t = Math.floor(Date.now() / 1000);
  return sign(op.keys[0]!, { iss: op.issuer, iat: t, exp: t + 300, ...claims });
}

async function failure(p: Promise<unknown>): Promise<DlpctlError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DlpctlError);
  return err as DlpctlError;
}

describe('GitHub Actions', () => {
  it('requests the job token for identity.audience with the runner bearer token, verifies it, and names the source', async () => {
    gh.requests.length = 0;
    const cred = await resolveCredential({ config: cfg(), env: ghEnv(), homedir: home, interactive: false });
    expect(cred.source).toBe('github-actions');
    expect(cred.identity).toMatchObject({ issuer: op.issuer, subject: SUBJECT, kind: 'machine', verified: true });
    expect(gh.requests).toEqual([{ audience: AUDIENCE, auth: `bearer ${REQUEST_TOKEN}`, apiVersion: '2.0' }]);
    expect(cred.envNames).toEqual(['ACTIONS_ID_TOKEN_REQUEST_URL', 'ACTIONS_ID_TOKEN_REQUEST_TOKEN']);
    // A renewal asks the endpoint again (GitHub's tokens live minutes).
    await cred.renewable!.renew();
    expect(gh.requests).toHaveLength(2);
  });

  it('without identity.audience the client id is requested', async () => {
    gh.requests.length = 0;
    const cred = await resolveCredential({ config: cfg({ audience: undefined }), env: ghEnv(), homedir: home, interactive: false });
    expect(gh.requests[0]!.audience).toBe(CLIENT_ID);
    expect(cred.source).toBe('github-actions');
  });

  it('DLPCTL_TOKEN still wins over detection', async () => {
    gh.requests.length = 0;
    const cred = await resolveCredential({ config: cfg(), env: ghEnv({ DLPCTL_TOKEN: await token({ sub: 'explicit', aud: AUDIENCE }) }), homedir: home, interactive: false });
    expect(cred.source).toBe('env');
    expect(cred.identity.subject).toBe('explicit');
    expect(gh.requests).toHaveLength(0);
  });

  it('a token for another audience: exit 3 with the fix', async () => {
    gh.ignoreAudience = true;
    try {
      const err = await failure(resolveCredential({ config: cfg(), env: ghEnv(), homedir: home, interactive: false }));
      expect(err.exitCode).toBe(3);
      expect(err.message).toContain(`audience (aud) does not include ${AUDIENCE}`);
      expect(err.message).toMatch(/\nFix: .*identity\.audience/);
    } finally {
      gh.ignoreAudience = false;
    }
  });

  it('a wrong request token: exit 3 naming id-token: write', async () => {
    const err = await failure(resolveCredential({ config: cfg(), env: ghEnv({ ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'not-the-runner-token' }), homedir: home, interactive: false }));
    expect(err.exitCode).toBe(3);
    expect(err.message).toMatch(/HTTP 401.*permissions: id-token: write/);
    expect(err.message).not.toContain('not-the-runner-token');
  });

  it('an unreachable endpoint: exit 3 saying so', async () => {
    const probe = http.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const err = await failure(
      resolveCredential({ config: cfg(), env: ghEnv({ ACTIONS_ID_TOKEN_REQUEST_URL: `http://127.0.0.1:${port}/idtoken?api-version=2.0` }), homedir: home, interactive: false }),
    );
    expect(err.exitCode).toBe(3);
    expect(err.message).toMatch(/cannot reach GitHub Actions' token endpoint \(http:\/\/127\.0\.0\.1:\d+\)/);
    expect(err.message.split('\n').length).toBeLessThanOrEqual(2);
    const config = path.join(home, 'gh-unreachable.yaml');
    await writeFile(config, `version: 1\nidentity:\n  issuer: ${op.issuer}\n  clientId: ${CLIENT_ID}\n  audience: ${AUDIENCE}\n`);
    const cli = await runCli(['whoami'], {
      env: { ...testEnv(home, { DLPCTL_CONFIG: config }), CI: 'true', ACTIONS_ID_TOKEN_REQUEST_URL: `http://127.0.0.1:${port}/idtoken?api-version=2.0`, ACTIONS_ID_TOKEN_REQUEST_TOKEN: REQUEST_TOKEN },
    });
    expect(cli.code).toBe(3);
    expect(cli.stderr).toMatch(/cannot reach GitHub Actions' token endpoint/);
    expect(cli.stderr).not.toContain(REQUEST_TOKEN);
  });

  it('in GitHub Actions without id-token permission the message says how to grant it', async () => {
    const err = await failure(resolveCredential({ config: cfg(), env: env({ GITHUB_ACTIONS: 'true' }), homedir: home, interactive: false }));
    expect(err.exitCode).toBe(3);
    expect(err.message).toContain('permissions: id-token: write');
  });

  it('dlpctl whoami names the source; connect keeps the runner variables from the child', async () => {
    const config = path.join(home, 'gh.yaml');
    await writeFile(config, `version: 1\nidentity:\n  issuer: ${op.issuer}\n  clientId: ${CLIENT_ID}\n  audience: ${AUDIENCE}\n`);
    const e = { ...testEnv(home, { DLPCTL_CONFIG: config }), CI: 'true', GITHUB_ACTIONS: 'true', ACTIONS_ID_TOKEN_REQUEST_URL: gh.url, ACTIONS_ID_TOKEN_REQUEST_TOKEN: REQUEST_TOKEN };
    const json = await runCli(['whoami', '--json'], { env: e });
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ subject: SUBJECT, kind: 'machine', verified: true, source: 'github-actions' });
    const human = await runCli(['whoami'], { env: e });
    expect(human.stdout).toMatch(/^source\s+github-actions$/m);
    const s = await resolveSessionIdentity({ config: cfg(), env: ghEnv(), homedir: home, interactive: false });
    s.watch?.close();
    expect(s.envNames).toContain('ACTIONS_ID_TOKEN_REQUEST_TOKEN');
  });
});

describe('GitLab CI', () => {
  it('reads DLPCTL_ID_TOKEN, then CI_JOB_JWT_V2', async () => {
    const a = await resolveCredential({ config: cfg(), env: env({ GITLAB_CI: 'true', DLPCTL_ID_TOKEN: await token({ sub: 'project_path:acme/app:ref_type:branch:ref:main', aud: AUDIENCE }), CI_JOB_JWT_V2: await token({ sub: 'old', aud: AUDIENCE }) }), homedir: home, interactive: false });
    expect(a.source).toBe('gitlab-ci');
    expect(a.identity.subject).toBe('project_path:acme/app:ref_type:branch:ref:main');
    expect(a.envNames).toEqual(['DLPCTL_ID_TOKEN']);
    const b = await resolveCredential({ config: cfg(), env: env({ GITLAB_CI: 'true', CI_JOB_JWT_V2: await token({ sub: 'old', aud: AUDIENCE }) }), homedir: home, interactive: false });
    expect(b.identity.subject).toBe('old');
  });

  it('the variable named by --id-token-var or identity.workload.gitlabVariable', async () => {
    const e = env({ GITLAB_CI: 'true', VAULT_ID_TOKEN: await token({ sub: 'named', aud: AUDIENCE }), DLPCTL_ID_TOKEN: await token({ sub: 'default', aud: AUDIENCE }) });
    expect((await resolveCredential({ config: cfg(), env: e, homedir: home, interactive: false, idTokenVar: 'VAULT_ID_TOKEN' })).identity.subject).toBe('named');
    expect((await resolveCredential({ config: cfg({ workload: { detect: true, gitlabVariable: 'VAULT_ID_TOKEN' } }), env: e, homedir: home, interactive: false })).identity.subject).toBe('named');
    const err = await failure(resolveCredential({ config: cfg(), env: e, homedir: home, interactive: false, idTokenVar: 'MISSING_TOKEN' }));
    expect(err.exitCode).toBe(3);
    expect(err.message).toContain('MISSING_TOKEN is not set');
  });

  it('dlpctl connect (built binary) runs as the pipeline, and the child gets the tunnel but not the job token', async () => {
    const config = path.join(home, 'gitlab.yaml');
    await writeFile(
      config,
      `version: 1
identity:
  issuer: ${op.issuer}
  clientId: ${CLIENT_ID}
  audience: ${AUDIENCE}
store: sqlite:${path.join(home, 'gitlab-store.db')}
resources:
  db:
    kind: postgres
    target: postgres://app@127.0.0.1:1/app
    password: \${env:DB_PASSWORD}
    tls: { mode: disable }
    allow: [subject:project_path:acme/app:ref_type:branch:ref:main]
    policies: [recommended]
`,
    );
    const jobToken = await token({ sub: 'project_path:acme/app:ref_type:branch:ref:main', aud: AUDIENCE });
    const e = testEnv(home, { CI: 'true', GITLAB_CI: 'true', DLPCTL_ID_TOKEN: jobToken, DB_PASSWORD: 'db-password-x9' });
    const r = await runBin(['connect', 'db', '--config', config, '--', 'sh', '-c', 'env'], { env: e });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^DATABASE_URL=postgres:\/\//m);
    expect(r.stdout).toMatch(/^GITLAB_CI=true$/m);
    expect(r.stdout).not.toContain('DLPCTL_ID_TOKEN');
    expect(r.stdout).not.toContain(jobToken);
    // Another branch's pipeline is not in the allow list.
    const other = await runBin(['connect', 'db', '--config', config, '--', 'sh', '-c', 'true'], {
      env: { ...e, DLPCTL_ID_TOKEN: await token({ sub: 'project_path:acme/app:ref_type:branch:ref:feature', aud: AUDIENCE }) },
    });
    expect(other.code).toBe(3);
    expect(other.stderr).toMatch(/ref:feature may not open db: not in its allow list/);
  });

  it('a token for another audience: exit 3 showing the id_tokens: block to write', async () => {
    const t = await token({ sub: 'project_path:acme/app', aud: 'https://gitlab.com' });
    const err = await failure(resolveCredential({ config: cfg(), env: env({ GITLAB_CI: 'true', DLPCTL_ID_TOKEN: t }), homedir: home, interactive: false }));
    expect(err.exitCode).toBe(3);
    expect(err.message).toContain(`id_tokens:\n    DLPCTL_ID_TOKEN:\n      aud: ${AUDIENCE}`);
    expect(err.message).not.toContain(t);
  });
});

describe('CircleCI, Buildkite, Kubernetes', () => {
  it('CircleCI: CIRCLE_OIDC_TOKEN_V2 before CIRCLE_OIDC_TOKEN', async () => {
    const both = env({ CIRCLECI: 'true', CIRCLE_OIDC_TOKEN_V2: await token({ sub: 'org/o/project/p/user/u/vcs-origin/github.com/acme/app', aud: AUDIENCE }), CIRCLE_OIDC_TOKEN: await token({ sub: 'org/o/project/p/user/u', aud: AUDIENCE }) });
    const a = await resolveCredential({ config: cfg(), env: both, homedir: home, interactive: false });
    expect(a.source).toBe('circleci');
    expect(a.identity.subject).toContain('vcs-origin');
    const v1 = await resolveCredential({ config: cfg(), env: env({ CIRCLECI: 'true', CIRCLE_OIDC_TOKEN: await token({ sub: 'org/o/project/p/user/u', aud: AUDIENCE }) }), homedir: home, interactive: false });
    expect(v1.identity.subject).toBe('org/o/project/p/user/u');
  });

  it('Buildkite: runs buildkite-agent oidc request-token --audience AUD from PATH', async () => {
    const bin = path.join(home, 'bk-bin');
    await mkdir(bin, { recursive: true });
    const tokenFile = path.join(home, 'bk-token');
    await writeFile(tokenFile, await token({ sub: 'organization:acme:pipeline:deploy:ref:refs/heads/main', aud: AUDIENCE }));
    const argsFile = path.join(home, 'bk-args');
    await writeFile(path.join(bin, 'buildkite-agent'), `#!/bin/sh\necho "$@" > '${argsFile}'\n[ "$1 $2 $3" = "oidc request-token --audience" ] || exit 1\ncat '${tokenFile}'\n`);
    await chmod(path.join(bin, 'buildkite-agent'), 0o755);
    const cred = await resolveCredential({ config: cfg(), env: env({ BUILDKITE: 'true', PATH: `${bin}:/usr/bin:/bin` }), homedir: home, interactive: false });
    expect(cred.source).toBe('buildkite');
    expect(cred.identity.subject).toBe('organization:acme:pipeline:deploy:ref:refs/heads/main');
    const { readFile } = await import('node:fs/promises');
    expect((await readFile(argsFile, 'utf8')).trim()).toBe(`oidc request-token --audience ${AUDIENCE}`);
    // Without the agent binary, Buildkite is not detected.
    const err = await failure(resolveCredential({ config: cfg(), env: env({ BUILDKITE: 'true' }), homedir: home, interactive: false }));
    expect(err.code).toBe('AUTH_REQUIRED');
    expect(err.message).toContain('buildkite-agent');
  });

  it('Kubernetes: the configured projected token file, re-read at renewal', async () => {
    const file = path.join(home, 'k8s-token');
    await writeFile(file, `${await token({ sub: 'system:serviceaccount:agents:reporter', aud: AUDIENCE })}\n`);
    const c = cfg({ workload: { detect: true, kubernetesTokenFile: file } });
    const cred = await resolveCredential({ config: c, env: env({ KUBERNETES_SERVICE_HOST: '10.0.0.1' }), homedir: home, interactive: false });
    expect(cred.source).toBe('kubernetes');
    expect(cred.identity.subject).toBe('system:serviceaccount:agents:reporter');
    await writeFile(file, await token({ sub: 'system:serviceaccount:agents:reporter', aud: AUDIENCE, exp: Math.floor(Date.now() / 1000) + 900 }));
    const renewed = await cred.renewable!.renew();
    expect(renewed.expiresAt).toBeGreaterThan(cred.expiresAt! + 500_000);
    // A configured file that is missing inside a pod says where to mount it.
    const err = await failure(resolveCredential({ config: cfg({ workload: { detect: true, kubernetesTokenFile: path.join(home, 'nope') } }), env: env({ KUBERNETES_SERVICE_HOST: '10.0.0.1' }), homedir: home, interactive: false }));
    expect(err.exitCode).toBe(3);
    expect(err.message).toMatch(/does not exist; mount a projected service-account token/);
  });

  it('identity.workload.detect: false looks for nothing', async () => {
    const err = await failure(resolveCredential({ config: cfg({ workload: { detect: false } }), env: ghEnv(), homedir: home, interactive: false }));
    expect(err.code).toBe('AUTH_REQUIRED');
  });
});
