/**
 * DLP engine throughput, side by side with a naive baseline (23 independent regexes, each run over the
 * whole input, replacing matches). `npx tsx test/bench/dlp.ts` prints a markdown table; `run()` returns it.
 * Single core, default detector set (every built-in entity), redact masker; each figure is the fastest of
 * repeated runs.
 */
import { faker } from '@faker-js/faker';
import { pathToFileURL } from 'node:url';
import { createDlpEngine } from '../../src/dlp/index.js';

const MB = 1024 * 1024;

function build(target: number, gen: () => string): string {
  const parts: string[] = [];
  let n = 0;
  while (n < target) {
    const s = gen();
    parts.push(s);
    n += s.length + 1;
  }
  return parts.join('\n');
}

function inputs(size: number): Record<string, string> {
  faker.seed(7);
  const prose = build(size, () => faker.lorem.paragraph());
  const json = build(size, () =>
    JSON.stringify({
      id: faker.string.uuid(),
      object: 'chat.completion',
      created: faker.date.recent().getTime(),
      model: 'gpt-4o-mini',
      usage: { prompt_tokens: faker.number.int(900), completion_tokens: faker.number.int(500) },
      choices: [{ index: 0, message: { role: 'assistant', content: faker.lorem.sentences(3) }, finish_reason: 'stop' }],
      metadata: { region: faker.location.countryCode(), version: faker.system.semver(), latency_ms: faker.number.float({ max: 900, fractionDigits: 2 }) },
    }),
  );
  const logs = build(
    size,
    () =>
      `${faker.date.recent().toISOString()} ${faker.helpers.arrayElement(['INFO', 'WARN', 'DEBUG'])} [${faker.hacker.noun()}] request_id=${faker.string.uuid()} method=${faker.internet.httpMethod()} path=/${faker.lorem.word()}/${faker.number.int(9999)} status=${faker.internet.httpStatusCode()} dur=${faker.number.int(900)}ms`,
  );
  const pii = build(size, () =>
    faker.helpers.arrayElement([
      () => `Customer ${faker.person.fullName()} <${faker.internet.email()}> paid with ${faker.finance.creditCardNumber()} from ${faker.internet.ipv4()}.`,
      () => `Call ${faker.helpers.arrayElement(['(415) 555-2671', '+1 212 555 0143', '+44 20 7946 0958'])} or wire to ${faker.finance.iban()}; SSN 234-56-${faker.number.int({ min: 1000, max: 9999 })}.`,
      () => `token=${faker.string.alphanumeric(32)} key ghp_${faker.string.alphanumeric(36)} AKIA${faker.string.alphanumeric({ length: 16, casing: 'upper' })}`,
    ])(),
  );
  return { prose, json, logs, pii };
}

const NAIVE: RegExp[] = [
  /\b(?:\d[ -]?){13,19}\b/g,
  /\b\d{3}-\d{2}-\d{4}\b/g,
  /[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/g,
  /\+?\d{1,3}[ .-]?\(?\d{3}\)?[ .-]?\d{3}[ .-]?\d{4}/g,
  /\b[A-Z]{2}\d{2}[A-Z0-9]{11,30}\b/g,
  /\b(?:\d{1,3}\.){3}\d{1,3}\b/g,
  /\b(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}\b/g,
  /eyJ[\w-]+\.eyJ[\w-]+\.[\w-]*/g,
  /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/g,
  /\b(?:AKIA|ASIA)[A-Z0-9]{16}\b/g,
  /aws_secret_access_key\s*[:=]\s*[A-Za-z0-9/+]{40}/gi,
  /\bgh[pousr]_[A-Za-z0-9]{36}\b/g,
  /\bgithub_pat_[A-Za-z0-9_]{50,}/g,
  /\bglpat-[A-Za-z0-9_-]{20,}/g,
  /\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,}/g,
  /\bsk-ant-[A-Za-z0-9_-]{32,}/g,
  /\bxox[abposr]-[A-Za-z0-9-]{10,}/g,
  /https:\/\/hooks\.slack\.com\/services\/[A-Za-z0-9/]+/g,
  /\b[sr]k_(?:live|test)_[A-Za-z0-9]{16,}/g,
  /\bAIza[0-9A-Za-z_-]{35}\b/g,
  /\bnpm_[A-Za-z0-9]{36}\b/g,
  /[a-z+]+:\/\/[^:\s]+:[^@\s]+@/g,
  /(?:password|secret|token|api_key)\s*[:=]\s*\S+/gi,
];

function naive(text: string): string {
  let out = text;
  for (const re of NAIVE) out = out.replace(re, '[REDACTED]');
  return out;
}

/**
 * MB/s of the fastest of repeated runs (at least 5, for at least minMs): the code's own speed. On these
 * shared VMs a mean over time moves ±40% between runs with other tenants' load; the fastest run does not.
 */
function mbps(bytes: number, fn: () => void, minMs = 600): number {
  fn(); // warm up
  let best = Infinity;
  let reps = 0;
  const t0 = performance.now();
  while (reps < 5 || performance.now() - t0 < minMs) {
    const t = performance.now();
    fn();
    best = Math.min(best, performance.now() - t);
    reps++;
  }
  return bytes / MB / (best / 1000);
}

export async function run(): Promise<string> {
  const size = 4 * MB;
  const data = inputs(size);
  const engine = createDlpEngine();
  const rows: string[] = ['| input | dlpctl MB/s | naive 23 regexes MB/s | speed-up |', '|---|---:|---:|---:|'];
  const row = (name: string, text: string, fn: (t: string) => unknown): void => {
    const a = mbps(text.length, () => fn(text));
    const b = mbps(text.length, () => naive(text));
    rows.push(`| ${name} | ${a.toFixed(0)} | ${b.toFixed(0)} | ${(a / b).toFixed(1)}× |`);
  };
  row('clean prose (maskText)', data.prose!, (t) => engine.maskText(t));
  row('JSON API payloads (maskText)', data.json!, (t) => engine.maskText(t));
  row('JSON API payloads (maskJson, per line)', data.json!, (t) => {
    for (const line of t.split('\n')) engine.maskJson(line);
  });
  row('logs (maskText)', data.logs!, (t) => engine.maskText(t));
  row('PII-dense text (maskText)', data.pii!, (t) => engine.maskText(t));
  // How the HTTP tunnel calls it: a body of up to 64 KiB is masked whole, a larger one is streamed.
  const bodies: string[] = [];
  // (decoded from bytes as the tunnel decodes a body: flat strings, not slices of the whole text)
  for (let i = 0; i < data.pii!.length; i += 64 * 1024) bodies.push(Buffer.from(data.pii!.slice(i, i + 64 * 1024)).toString('utf8'));
  row('PII-dense text, 64 KiB bodies (maskText each)', data.pii!, () => {
    for (const b of bodies) engine.maskText(b);
  });
  const mixed = data.prose!.slice(0, MB) + data.json!.slice(0, MB) + data.logs!.slice(0, MB) + data.pii!.slice(0, MB);
  row('mixed, streaming in 4 KiB chunks', mixed, (t) => {
    const sm = engine.stream();
    for (let i = 0; i < t.length; i += 4096) sm.push(t.slice(i, i + 4096));
    sm.end();
  });
  // gross linearity: 1× vs 10× of the same mix (a quarter MiB of each kind; fastest of 7 runs each)
  const Q = MB / 4;
  const one = data.prose!.slice(0, Q) + data.json!.slice(0, Q) + data.logs!.slice(0, Q) + data.pii!.slice(0, Q);
  const ten = one.repeat(10);
  const t1 = time(() => engine.maskText(one), 7);
  const t10 = time(() => engine.maskText(ten), 7);
  rows.push('', `linearity: 1 MiB ${t1.toFixed(1)} ms, 10 MiB ${t10.toFixed(1)} ms, ratio ${(t10 / t1).toFixed(1)} (10 = linear)`);
  const adversarial = { 'digits ×1M': '9'.repeat(MB), 'a@ ×512k': 'a@'.repeat(MB / 2), '1. ×512k': '1.'.repeat(MB / 2), 'password= ×100k': 'password='.repeat(100_000) };
  for (const [k, v] of Object.entries(adversarial)) rows.push(`adversarial ${k}: ${time(() => engine.maskText(v), 2).toFixed(1)} ms`);
  return rows.join('\n');
}

function time(fn: () => void, reps: number): number {
  fn();
  let best = Infinity;
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    fn();
    best = Math.min(best, performance.now() - t);
  }
  return best;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(await run());
}
