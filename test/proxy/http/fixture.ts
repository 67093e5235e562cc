/**
 * Shared fixture for the HTTP tunnel tests:
 *
 *   const up = await startUpstream();                       // a local OpenAI-compatible server (+ test routes)
 *   const t = await openTunnel(up, { policies: '…yaml…' }); // dlpctl's HTTP engine in front of it, as `connect` builds it
 *   t.url, t.token, t.events, t.store, t.close()
 *
 * The upstream records every request it receives (`up.received`), so tests assert on what left dlpctl.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { parseConfig, resolveSecret } from '../../../src/config/index.js';
import type { HttpResource } from '../../../src/config/types.js';
import { resolvePolicies } from '../../../src/policy/index.js';
import { createHttpEngine, type HttpEngine, type HttpEngineTuning } from '../../../src/proxy/http/factory.js';
import { Tunnel, type TunnelEvent } from '../../../src/proxy/tunnel.js';
import { openStore } from '../../../src/store/index.js';
import type { Identity, SessionStore, StoreEvent } from '../../../src/store/types.js';

export const IDENTITY: Identity = { issuer: 'local', subject: 'agent-bot', groups: ['agents'], kind: 'machine', verified: false };

/** The real upstream credential. It must never reach the client, the store, events or the child. */
export const REAL_KEY = 'sk-upstream-REAL-9f8e7d6c5b4a39281706f5e4d3c2b1a0';
process.env['DLPCTL_TEST_UPSTREAM_KEY'] = REAL_KEY;

/** Customer rows the agent's tool returns: emails, card numbers and a leaked API key. */
export const CUSTOMERS = [
  { id: 1, name: 'Alice Smith', email: 'alice.smith@example.com', card: '4111 1111 1111 1111' },
  { id: 2, name: 'Bob Jones', email: 'bob.jones@example.org', card: '5555555555554444' },
  { id: 3, name: 'Carol White', email: 'carol.white@example.net', card: '378282246310005', note: 'ops key sk-proj-Q8zT3vN1mK7pL2xR9wY4bH6cJ0dF5gA1sE8uI3oP' },
];
export const ORIGINALS = ['alice.smith@example.com', 'bob.jones@example.org', 'carol.white@example.net', '4111 1111 1111 1111', '5555555555554444', '378282246310005', 'sk-proj-Q8zT3vN1mK7pL2xR9wY4bH6cJ0dF5gA1sE8uI3oP'];

export interface Received {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface Upstream {
  url: string;
  port: number;
  received: Received[];
  /** Chunks `/sse-script` sends, one write each (with a tick in between). */
  script: string[];
  /** Delta size of streamed model answers (chars). */
  deltaSize: number;
  /** SSE bodies go out in pieces of this many bytes, cutting events, lines and UTF-8 characters (0: one write per event). */
  splitBytes: number;
  /** What the fake model writes on its own after its answer (personal data it makes up, invented placeholders). */
  modelAdds: string;
  /** Answers `/hook/…` (after the request is recorded in `received`). */
  hook: ((r: Received, res: http.ServerResponse) => Promise<void> | void) | null;
  connections: number;
  close(): Promise<void>;
}

function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((p) => (typeof p === 'string' ? p : ((p as { text?: string }).text ?? ''))).join('');
  return '';
}

/** The fake model: call the tool once when offered, then answer echoing the tool output (or the prompt). */
function modelTurn(toolsOffered: boolean, toolOutput: string | null, userText: string): { tool: true; args: string } | { tool: false; text: string } {
  if (toolsOffered && toolOutput === null) return { tool: true, args: JSON.stringify({ limit: 3 }) };
  if (toolOutput !== null) return { tool: false, text: `Here are the customers: ${toolOutput}` };
  return { tool: false, text: `You said: ${userText}` };
}

function pieces(s: string, n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < s.length; i += n) out.push(s.slice(i, i + n));
  return out;
}

async function writeSse(res: http.ServerResponse, events: string[], splitBytes = 0): Promise<void> {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  if (splitBytes > 0) {
    const all = Buffer.from(events.join(''));
    for (let i = 0; i < all.length; i += splitBytes) {
      res.write(all.subarray(i, i + splitBytes));
      await new Promise((r) => setImmediate(r));
    }
    res.end();
    return;
  }
  for (const e of events) {
    res.write(e);
    await new Promise((r) => setImmediate(r));
  }
  res.end();
}

function chat(body: Record<string, unknown>, up: Upstream, res: http.ServerResponse): Promise<void> | void {
  const messages = (body['messages'] as { role: string; content: unknown }[]) ?? [];
  const toolMsg = [...messages].reverse().find((m) => m.role === 'tool');
  const lastUser = [...messages].reverse().find((m) => m.role === 'user');
  const turn = modelTurn(Array.isArray(body['tools']) && body['tools'].length > 0, toolMsg ? textOf(toolMsg.content) : null, textOf(lastUser?.content));
  if (!turn.tool) turn.text += up.modelAdds;
  const base = { id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1700000000, model: String(body['model'] ?? 'gpt-test') };
  const usage = { prompt_tokens: 10, completion_tokens: 10, total_tokens: 20 };
  if (!body['stream']) {
    const message = turn.tool
      ? { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_customers', arguments: turn.args } }] }
      : { role: 'assistant', content: turn.text };
    const out = { ...base, object: 'chat.completion', choices: [{ index: 0, message, finish_reason: turn.tool ? 'tool_calls' : 'stop', logprobs: null }], usage };
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(out));
    return;
  }
  const ev = (o: unknown) => `data: ${JSON.stringify(o)}\n\n`;
  const events: string[] = [];
  if (turn.tool) {
    events.push(ev({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: null, tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: 'get_customers', arguments: '' } }] }, finish_reason: null }] }));
    for (const p of pieces(turn.args, up.deltaSize)) events.push(ev({ ...base, choices: [{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: p } }] }, finish_reason: null }] }));
    events.push(ev({ ...base, choices: [{ index: 0, delta: {}, finish_reason: 'tool_calls' }] }));
  } else {
    events.push(ev({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] }));
    for (const p of pieces(turn.text, up.deltaSize)) events.push(ev({ ...base, choices: [{ index: 0, delta: { content: p }, finish_reason: null }] }));
    events.push(ev({ ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }));
  }
  events.push(ev({ ...base, choices: [], usage }));
  events.push('data: [DONE]\n\n');
  return writeSse(res, events, up.splitBytes);
}

function responses(body: Record<string, unknown>, up: Upstream, res: http.ServerResponse): Promise<void> | void {
  const input = body['input'];
  const items = (typeof input === 'string' ? [{ role: 'user', content: input }] : ((input as Record<string, unknown>[]) ?? []));
  const out = [...items].reverse().find((i) => i['type'] === 'function_call_output');
  const user = [...items].reverse().find((i) => i['role'] === 'user');
  const turn = modelTurn(Array.isArray(body['tools']) && body['tools'].length > 0, out ? textOf(out['output']) : null, textOf(user?.['content']));
  if (!turn.tool) turn.text += up.modelAdds;
  const model = String(body['model'] ?? 'gpt-test');
  const usage = { input_tokens: 10, output_tokens: 10, total_tokens: 20, input_tokens_details: { cached_tokens: 0 }, output_tokens_details: { reasoning_tokens: 0 } };
  const item = turn.tool
    ? { id: 'fc_1', type: 'function_call', call_id: 'call_1', name: 'get_customers', arguments: turn.args, status: 'completed' }
    : { id: 'msg_1', type: 'message', role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: turn.text, annotations: [] }] };
  const response = (status: string, output: unknown[]) => ({ id: 'resp_1', object: 'response', created_at: 1700000000, status, model, output, usage, parallel_tool_calls: true, tool_choice: 'auto', tools: [] });
  if (!body['stream']) {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(response('completed', [item])));
    return;
  }
  let seq = 0;
  const ev = (type: string, o: Record<string, unknown>) => `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: seq++, ...o })}\n\n`;
  const events = [ev('response.created', { response: response('in_progress', []) })];
  if (turn.tool) {
    events.push(ev('response.output_item.added', { output_index: 0, item: { ...item, arguments: '', status: 'in_progress' } }));
    for (const p of pieces(turn.args, up.deltaSize)) events.push(ev('response.function_call_arguments.delta', { item_id: 'fc_1', output_index: 0, delta: p }));
    events.push(ev('response.function_call_arguments.done', { item_id: 'fc_1', output_index: 0, arguments: turn.args }));
  } else {
    events.push(ev('response.output_item.added', { output_index: 0, item: { ...item, status: 'in_progress', content: [] } }));
    events.push(ev('response.content_part.added', { item_id: 'msg_1', output_index: 0, content_index: 0, part: { type: 'output_text', text: '', annotations: [] } }));
    for (const p of pieces(turn.text, up.deltaSize)) events.push(ev('response.output_text.delta', { item_id: 'msg_1', output_index: 0, content_index: 0, delta: p, logprobs: [] }));
    events.push(ev('response.output_text.done', { item_id: 'msg_1', output_index: 0, content_index: 0, text: turn.text, logprobs: [] }));
    events.push(ev('response.content_part.done', { item_id: 'msg_1', output_index: 0, content_index: 0, part: { type: 'output_text', text: turn.text, annotations: [] } }));
  }
  events.push(ev('response.output_item.done', { output_index: 0, item }));
  events.push(ev('response.completed', { response: response('completed', [item]) }));
  return writeSse(res, events, up.splitBytes);
}

export async function startUpstream(): Promise<Upstream> {
  const up: Upstream = { url: '', port: 0, received: [], script: [], deltaSize: 3, splitBytes: 0, modelAdds: '', hook: null, connections: 0, close: async () => undefined };
  const sockets = new Set<net.Socket>();
  const server = http.createServer(async (req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    if (u.pathname === '/upload') {
      const h = createHash('sha256');
      let n = 0;
      for await (const c of req) {
        h.update(c as Buffer);
        n += (c as Buffer).length;
      }
      up.received.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers, body: `<${n} bytes>` });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ bytes: n, sha256: h.digest('hex') }));
      return;
    }
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    up.received.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers, body });
    const json = (status: number, o: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify(o));
    };
    try {
      if (u.pathname.startsWith('/hook/') && up.hook) return await up.hook(up.received.at(-1)!, res);
      switch (u.pathname) {
        case '/v1/chat/completions':
          return await chat(JSON.parse(body) as Record<string, unknown>, up, res);
        case '/v1/responses':
          return await responses(JSON.parse(body) as Record<string, unknown>, up, res);
        case '/v1/models':
          return json(200, { object: 'list', data: [{ id: 'gpt-test', object: 'model' }] });
        case '/echo-auth':
          // A careless upstream that echoes the credential in its body and a header.
          res.setHeader('x-echo', String(req.headers['authorization']));
          if (u.searchParams.has('sized')) {
            // the same answer with a declared length (not chunked)
            const text = JSON.stringify({ error: { message: `Incorrect API key provided: ${String(req.headers['authorization'])}` } });
            return json(401, JSON.parse(text), { 'content-length': String(Buffer.byteLength(text)) });
          }
          return json(401, { error: { message: `Incorrect API key provided: ${String(req.headers['authorization'])}` } });
        case '/json':
          return json(200, JSON.parse(u.searchParams.get('body') ?? '{}'));
        case '/customers':
          return json(200, { customers: CUSTOMERS });
        case '/gzip':
        case '/br':
        case '/deflate': {
          const text = JSON.stringify({ customers: CUSTOMERS });
          const enc = u.pathname.slice(1);
          const z = enc === 'gzip' ? zlib.gzipSync(text) : enc === 'br' ? zlib.brotliCompressSync(text) : zlib.deflateSync(text);
          res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': enc, 'content-length': String(z.length), etag: '"abc"' });
          return res.end(z);
        }
        case '/text': {
          res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
          // A text body in small pieces: values split across chunks.
          const text = `rows:\n${CUSTOMERS.map((c) => `${c.name} <${c.email}> ${c.card} ${c.note ?? ''}`).join('\n')}\n`;
          for (const p of pieces(text, 7)) {
            res.write(p);
            await new Promise((r) => setImmediate(r));
          }
          return res.end();
        }
        case '/sse-script':
          return await writeSse(res, up.script, up.splitBytes);
        case '/big': {
          const mb = Number(u.searchParams.get('mb') ?? '1');
          res.writeHead(200, { 'content-type': u.searchParams.get('type') ?? 'application/octet-stream', 'content-length': String(mb * 1024 * 1024) });
          const chunk = Buffer.alloc(64 * 1024, 'a');
          for (let i = 0; i < mb * 16; i++) if (!res.write(chunk)) await new Promise((r) => res.once('drain', r));
          return res.end();
        }
        case '/slow':
          return; // never answers
        case '/drop':
          res.writeHead(200, { 'content-type': 'text/plain', 'content-length': u.searchParams.get('length') ?? '1000' });
          res.write('partial');
          setTimeout(() => res.socket?.destroy(), 20);
          return;
        case '/status':
          res.writeHead(Number(u.searchParams.get('code') ?? '200'), { 'x-custom': 'kept', connection: 'x-hop', 'x-hop': 'dropped', 'keep-alive': 'timeout=5' });
          return res.end();
        default:
          return json(200, { method: req.method, path: req.url, headers: req.headers, body });
      }
    } catch (err) {
      if (!res.headersSent) json(500, { error: { message: String(err) } });
      else res.destroy();
    }
  });
  server.on('connection', (s) => {
    up.connections++;
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  up.port = (server.address() as net.AddressInfo).port;
  up.url = `http://127.0.0.1:${up.port}`;
  up.close = async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  };
  return up;
}

export interface TunnelOptions {
  /** YAML of the `policies:` map body (indented by 2). */
  policies?: string;
  use?: string[];
  /** Extra YAML lines of the resource (indented by 4). */
  resource?: string;
  target?: string;
  store?: SessionStore;
  tuning?: HttpEngineTuning;
}

export interface TestTunnel {
  tunnel: Tunnel;
  engine: HttpEngine;
  url: string;
  token: string;
  events: TunnelEvent[];
  store: SessionStore;
  childEnv: Record<string, string>;
  /** Every stored event of every session of this tunnel's store. */
  storedEvents(): Promise<StoreEvent[]>;
  close(): Promise<void>;
}

export const LLM_PII = `  llm-pii:
    - name: prompts
      action: mask
      entities: [email, phone, credit_card, us_ssn, iban, secrets]
      with: pseudonymize
      restore: true`;

export const REDACT_PII = `  redact-pii:
    - name: pii
      action: mask
      entities: [email, credit_card, secrets]
      with: redact`;

export async function tempStore(): Promise<{ store: SessionStore; dir: string; file: string }> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'dlpctl-http-'));
  const file = path.join(dir, 'store.db');
  const store = await openStore(`sqlite:${file}`, { sqliteSynchronous: 'normal', pollIntervalMs: 50 });
  return { store, dir, file };
}

export async function openTunnel(up: Upstream, o: TunnelOptions = {}): Promise<TestTunnel> {
  const yaml = `version: 1
resources:
  api:
    kind: http
    target: ${o.target ?? `${up.url}`}
    headers: { Authorization: "Bearer \${env:DLPCTL_TEST_UPSTREAM_KEY}" }
    env: { OPENAI_BASE_URL: "{url}/v1", OPENAI_API_KEY: "{token}" }
    policies: [${(o.use ?? []).join(', ')}]
${o.resource ?? ''}
policies:
${o.policies ?? '  {}'}
`.replace('policies:\n  {}', 'policies: {}');
  const cfg = parseConfig(yaml, 'test.yaml');
  const res = cfg.resources['api'] as HttpResource;
  const own = o.store ? null : await tempStore();
  const store = o.store ?? own!.store;
  const opened = await createHttpEngine(
    {
      resource: res,
      config: cfg,
      policies: resolvePolicies(res.policies, cfg.policies),
      store,
      identity: IDENTITY,
      resolve: (s) => resolveSecret(s, { env: process.env }),
      env: process.env,
      homedir: os.homedir(),
    },
    o.tuning ?? {},
  );
  const tunnel = new Tunnel({ resource: 'api', kind: 'http', clientTls: opened.clientTls, engine: opened.engine, graceMs: 1000 });
  const events: TunnelEvent[] = [];
  tunnel.on('event', (e) => events.push(e));
  const addr = await tunnel.open();
  return {
    tunnel,
    engine: opened.engine,
    url: tunnel.url,
    token: tunnel.secret,
    events,
    store,
    childEnv: opened.childEnv(addr, tunnel.secret),
    async storedEvents() {
      const hits = await store.search({ resource: 'api', limit: 100000 });
      const ids = [...new Set(hits.map((h) => h.session.id))];
      const out: StoreEvent[] = [];
      for (const id of ids) out.push(...(await store.listEvents(id)));
      return out;
    },
    async close() {
      await tunnel.close();
      await opened.close();
      if (own) {
        await own.store.close().catch(() => undefined);
        await fs.rm(own.dir, { recursive: true, force: true });
      }
    },
  };
}

/** Dumps the SQLite store file as text (every byte a secret could hide in). */
export async function storeBytes(file: string): Promise<string> {
  const parts = [file, `${file}-wal`];
  let out = '';
  for (const p of parts) out += await fs.readFile(p, 'latin1').catch(() => '');
  return out;
}

/** curl -sS with `args`: its exit code, stdout and stderr. */
export function curl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', ...args], { encoding: 'utf8', timeout: 30_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? -1) : 0, stdout, stderr });
    });
  });
}
