/**
 * `dlpctl mask`: stdin → masked stdout, streaming (constant memory on any input size), so an agent's log
 * can be scrubbed before it is published: `agent | dlpctl mask > public.log`.
 *
 * Which entities and maskers: --entities / --with when given; else the mask rules of the configuration
 * when one is found (entity rules, each entity taking the masker of the first rule naming it); else every
 * built-in detector with `redact`.
 */
import { once } from 'node:events';
import { DlpctlError, ExitCode } from '../../errors.js';
import type { DlpEngineOptions, Finding, MaskerName } from '../../dlp/index.js';
import type { CommandContext } from '../context.js';
import { printJson } from '../io.js';
import { loadCliConfig } from '../load.js';

export interface MaskOptions {
  entities?: string;
  with?: string;
  keep?: string;
  jsonInput?: boolean;
  report?: boolean;
}

async function engineOptions(ctx: CommandContext, opts: MaskOptions): Promise<DlpEngineOptions> {
  const { isMaskerName } = await import('../../dlp/index.js');
  const out: DlpEngineOptions = {};
  if (opts.with !== undefined && !isMaskerName(opts.with)) {
    throw new DlpctlError('USAGE', `--with: unknown masker "${opts.with}"; use redact, partial, hash, null or pseudonymize`);
  }
  if (opts.keep !== undefined) {
    const keep = Number(opts.keep);
    if (!Number.isInteger(keep) || keep < 0) throw new DlpctlError('USAGE', `--keep: "${opts.keep}" is not a whole number`);
    out.keep = keep;
  }
  if (opts.entities !== undefined) {
    out.entities = opts.entities.split(',').map((s) => s.trim()).filter(Boolean);
  }
  if (opts.entities === undefined && opts.with === undefined) {
    const config = await loadCliConfig(ctx, { required: false });
    if (config) {
      const masker: Record<string, MaskerName> = {};
      const entities: string[] = [];
      for (const policy of Object.values(config.policies)) {
        for (const rule of policy.rules) {
          if (rule.action !== 'mask' || !rule.entities) continue;
          for (const e of rule.entities) {
            if (e in masker) continue;
            masker[e] = rule.with ?? 'redact';
            entities.push(e);
          }
        }
      }
      if (config.detectors.length) out.customDetectors = config.detectors;
      if (entities.length) {
        out.entities = entities;
        out.masker = masker;
      }
      return out;
    }
  }
  if (opts.with !== undefined) out.masker = opts.with as MaskerName;
  return out;
}

export async function runMask(ctx: CommandContext, opts: MaskOptions): Promise<number> {
  const { createDlpEngine } = await import('../../dlp/index.js');
  const engine = createDlpEngine(await engineOptions(ctx, opts));
  const { stdin, stdout } = ctx.io;
  const write = async (b: Buffer | string) => {
    if (b.length === 0) return;
    if (!stdout.write(b)) await once(stdout, 'drain');
  };
  const findings: Finding[] = [];
  const counts: Record<string, number> = {};
  const collect = (fs: readonly Finding[], c: Record<string, number>, offset = 0) => {
    if (opts.report || ctx.globals.json) for (const f of fs) findings.push({ ...f, start: f.start + offset, end: f.end + offset });
    for (const [k, v] of Object.entries(c)) counts[k] = (counts[k] ?? 0) + v;
  };

  if (ctx.globals.json) {
    // One JSON document on stdout: the masked text and the report. Reads the whole input.
    const chunks: Buffer[] = [];
    for await (const c of stdin) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c as string));
    const text = Buffer.concat(chunks).toString('utf8');
    const r = opts.jsonInput ? maskJsonOrNdjson(engine, text) : engine.maskText(text);
    printJson(ctx.io, { masked: r.text, findings: r.findings, counts: r.counts });
    return ExitCode.ok;
  }

  if (opts.jsonInput) {
    // NDJSON line by line (constant memory); a document spanning lines is masked whole.
    let pending = '';
    let offset = 0;
    let whole: string[] | null = null;
    for await (const c of stdin) {
      const s = pending + (Buffer.isBuffer(c) ? c.toString('utf8') : String(c));
      if (whole) {
        whole.push(s);
        pending = '';
        continue;
      }
      const lines = s.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        if (whole) {
          whole.push(`${line}\n`);
          continue;
        }
        if (line.trim() === '' || isJson(line)) {
          const r = line.trim() === '' ? { text: line, findings: [], counts: {} } : engine.maskJson(line);
          collect(r.findings, r.counts, offset);
          await write(`${r.text}\n`);
          offset += line.length + 1;
        } else {
          whole = [`${line}\n`];
        }
      }
    }
    if (whole) {
      const r = engine.maskJson(whole.join('') + pending);
      collect(r.findings, r.counts, offset);
      await write(r.text);
    } else if (pending) {
      const r = isJson(pending) ? engine.maskJson(pending) : engine.maskText(pending);
      collect(r.findings, r.counts, offset);
      await write(r.text);
    }
  } else {
    const stream = engine.byteStream();
    let reported = 0;
    for await (const c of stdin) {
      await write(stream.push(Buffer.isBuffer(c) ? c : Buffer.from(c as string)));
      if (opts.report) {
        for (; reported < stream.findings.length; reported += 1) findings.push(stream.findings[reported]!);
      }
    }
    await write(stream.end());
    if (opts.report) for (; reported < stream.findings.length; reported += 1) findings.push(stream.findings[reported]!);
    collect([], stream.counts());
  }
  if (opts.report) ctx.io.err(JSON.stringify({ findings, counts }));
  return ExitCode.ok;
}

function isJson(s: string): boolean {
  try {
    JSON.parse(s);
    return true;
  } catch {
    return false;
  }
}

function maskJsonOrNdjson(engine: { maskJson(t: string): { text: string; findings: Finding[]; counts: Record<string, number> } }, text: string) {
  if (isJson(text)) return engine.maskJson(text);
  const lines = text.split('\n');
  const findings: Finding[] = [];
  const counts: Record<string, number> = {};
  let offset = 0;
  const out = lines.map((line) => {
    const r = line.trim() ? engine.maskJson(line) : { text: line, findings: [], counts: {} };
    for (const f of r.findings) findings.push({ ...f, start: f.start + offset, end: f.end + offset });
    for (const [k, v] of Object.entries(r.counts)) counts[k] = (counts[k] ?? 0) + v;
    offset += line.length + 1;
    return r.text;
  });
  return { text: out.join('\n'), findings, counts };
}
