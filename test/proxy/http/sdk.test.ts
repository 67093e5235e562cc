/**
 * The real SDKs through the tunnel, as child processes that know only the tunnel's URL and token
 * (`OPENAI_BASE_URL`, `OPENAI_API_KEY` from the resource's `env` map), against the local fake model.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { childEnvironment } from '../../../src/proxy/child.js';
import { CUSTOMERS, LLM_PII, openTunnel, ORIGINALS, REAL_KEY, startUpstream, type TestTunnel, type Upstream } from './fixture.js';

const here = path.dirname(fileURLToPath(import.meta.url));
let up: Upstream;
let t: TestTunnel;

beforeAll(async () => {
  up = await startUpstream();
  t = await openTunnel(up, {
    policies: `${LLM_PII}
    - name: keep-files
      when: { http: { methods: [DELETE], paths: ["/v1/files/**"] } }
      action: deny
      message: files are kept`,
    use: ['llm-pii'],
  });
});
afterAll(async () => {
  await t?.close();
  await up?.close();
});

function runChild(script: string, args: string[], extra: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  // As `dlpctl connect api -- node script` builds it: the parent's environment minus the secret references' variables.
  const env = childEnvironment({
    baseEnv: { ...process.env, OPENAI_AGENTS_DISABLE_TRACING: '1', ...extra },
    tunnelEnv: t.childEnv,
    secretEnvNames: ['DLPCTL_TEST_UPSTREAM_KEY'],
  });
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(here, script), ...args], { env, encoding: 'utf8', timeout: 60_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? -1) : 0, stdout, stderr });
    });
  });
}

function expectUpstreamClean(from: number): void {
  const sent = up.received.slice(from);
  expect(sent.length).toBeGreaterThan(0);
  for (const r of sent) {
    for (const o of ORIGINALS) expect(r.body).not.toContain(o);
    expect(r.headers['authorization']).toBe(`Bearer ${REAL_KEY}`);
  }
}

describe('@openai/agents through the tunnel', () => {
  for (const api of ['responses', 'chat']) {
    for (const mode of ['once', 'stream']) {
      it(`${api} API, ${mode === 'stream' ? 'streamed' : 'non-streamed'} run: the model never sees the customers' data, the agent reads it back`, async () => {
        const from = up.received.length;
        const r = await runChild('agent-child.mjs', [api, mode], { TEST_CUSTOMERS_JSON: JSON.stringify(CUSTOMERS) });
        expect(r.stderr).not.toContain(REAL_KEY);
        expect(r.code, r.stderr).toBe(0);
        const out = JSON.parse(r.stdout) as { finalOutput: string; streamedText: string; env: Record<string, string> };
        // The agent ran the tool and the model answered (two model calls at least).
        const calls = up.received.slice(from).filter((x) => x.path.startsWith(`/v1/${api === 'chat' ? 'chat/completions' : 'responses'}`));
        expect(calls.length).toBeGreaterThanOrEqual(2);
        expectUpstreamClean(from);
        // What the model received holds placeholders where the data was.
        expect(calls.at(-1)!.body).toMatch(/<EMAIL_\d+>/);
        expect(calls.at(-1)!.body).toMatch(/<CREDIT_CARD_\d+>/);
        expect(calls.at(-1)!.body).toMatch(/<OPENAI_API_KEY_\d+>/);
        // The model echoed the placeholders; the agent reads the originals.
        expect(out.finalOutput.startsWith('Here are the customers: ')).toBe(true);
        for (const o of ORIGINALS) expect(out.finalOutput).toContain(o);
        if (mode === 'stream' && api === 'responses') expect(out.streamedText).toBe(out.finalOutput);
        // The agent process never had the real key.
        expect(JSON.stringify(out.env)).not.toContain(REAL_KEY);
        expect(out.env['OPENAI_API_KEY']).toBe(t.token);
        expect(out.env['DLPCTL_TEST_UPSTREAM_KEY']).toBeUndefined();
        expect(r.stdout).not.toContain(REAL_KEY);
      });
    }
  }
});

describe('the openai client through the tunnel', () => {
  it('chat completions and responses, streamed and not; a denial reaches it as a 403 naming the rule', async () => {
    const from = up.received.length;
    const prompt = 'Email bob.jones@example.org about card 5555555555554444';
    const r = await runChild('openai-child.mjs', [], { TEST_PROMPT: prompt });
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { chat: string; chatStreamed: string; resp: string; respStreamed: string; denied: { status: number; message: string }; env: object };
    expectUpstreamClean(from);
    for (const v of [out.chat, out.chatStreamed, out.resp, out.respStreamed]) expect(v).toBe(`You said: ${prompt}`);
    expect(out.denied.status).toBe(403);
    expect(out.denied.message).toContain('llm-pii/keep-files');
    expect(JSON.stringify(out.env)).not.toContain(REAL_KEY);
  });
});
