/**
 * Masking (and restoring) a Server-Sent Events response as it streams, event by event, keeping each event's
 * framing. Sans I/O: text in, text out.
 *
 * LLM APIs stream an answer as many small deltas, so a value (an email, a key) is usually split across
 * events. Every delta field is a *channel* with its own streaming scanner, which holds back a window of
 * text until everything before the cut is decided; an event whose delta is still held goes out with an empty
 * delta. When a channel ends (`finish_reason`, a `.done` event, `[DONE]`, the end of the stream) its held
 * text goes out in one more delta event, built from that channel's last event, placed before the closing event.
 *
 *   chat completions  choices[i].delta.{content,reasoning_content,reasoning,refusal}, choices[i].delta.tool_calls[j].function.arguments
 *   responses         any `*.delta` event's `delta` (output text, function-call arguments, reasoning), per item and part
 *   anthropic         content_block_delta's delta.{text,partial_json,thinking}
 *
 * Every other string of an event's JSON is masked whole (JSON-aware); data that is not JSON as text.
 * With restore, placeholders are put back after masking: streamed per channel (a placeholder split across
 * deltas is held until complete), and in the rest of the event as JSON.
 */
import type { DlpEngine, PseudonymVault, StreamMasker } from '../../dlp/index.js';
import { SseParser, withData, type SseEvent } from './sse.js';
import { scrubText, StreamRestorer } from './restore.js';

type Path = (string | number)[];

interface ChannelRef {
  key: string;
  /** Closing group: the channel ends when an event closes its group. */
  group: string;
  path: Path;
  /** Builds the event object carrying only `text` for this channel, from the channel's last event object. */
  synth: (template: Record<string, unknown>, text: string) => Record<string, unknown>;
}

interface Channel {
  ref: ChannelRef;
  sm: StreamMasker | null;
  rs: StreamRestorer | null;
  template: Record<string, unknown>;
  lines: string[];
  recorded: string;
}

export interface SseMaskOptions {
  engine: DlpEngine | null;
  vault: PseudonymVault | null;
  /** Literal credentials to scrub from what goes out. */
  secrets: readonly string[];
  /** Characters of assembled (masked) text kept for the recording. */
  recordCap: number;
}

const DELTA_FIELDS = ['content', 'reasoning_content', 'reasoning', 'refusal'] as const;
const ANTHROPIC_FIELDS = ['text', 'partial_json', 'thinking'] as const;

function isObj(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function getPath(o: unknown, p: Path): unknown {
  let cur = o;
  for (const k of p) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string | number, unknown>)[k];
  }
  return cur;
}

function setPath(o: unknown, p: Path, v: unknown): void {
  let cur = o as Record<string | number, unknown>;
  for (let i = 0; i < p.length - 1; i++) cur = cur[p[i]!] as Record<string | number, unknown>;
  cur[p[p.length - 1]!] = v;
}

/** The channels an event object carries, and the groups it closes. */
function channelsOf(o: Record<string, unknown>): { channels: ChannelRef[]; closes: string[] | 'all' } {
  const channels: ChannelRef[] = [];
  const closes: string[] = [];
  const choices = o['choices'];
  if (Array.isArray(choices)) {
    choices.forEach((c: unknown, pos) => {
      if (!isObj(c)) return;
      const ci = typeof c['index'] === 'number' ? c['index'] : pos;
      const group = `chat:${ci}`;
      const base = (t: Record<string, unknown>) => {
        const { choices: _c, usage: _u, ...rest } = t;
        return rest;
      };
      const delta = c['delta'];
      if (isObj(delta)) {
        for (const f of DELTA_FIELDS) {
          if (typeof delta[f] === 'string') {
            channels.push({
              key: `${group}:${f}`,
              group,
              path: ['choices', pos, 'delta', f],
              synth: (t, text) => ({ ...base(t), choices: [{ index: ci, delta: { [f]: text }, finish_reason: null }] }),
            });
          }
        }
        const calls = delta['tool_calls'];
        if (Array.isArray(calls)) {
          calls.forEach((tc: unknown, tpos) => {
            if (!isObj(tc) || !isObj(tc['function']) || typeof tc['function']['arguments'] !== 'string') return;
            const ti = typeof tc['index'] === 'number' ? tc['index'] : tpos;
            channels.push({
              key: `${group}:tool:${ti}`,
              group,
              path: ['choices', pos, 'delta', 'tool_calls', tpos, 'function', 'arguments'],
              synth: (t, text) => ({
                ...base(t),
                choices: [{ index: ci, delta: { tool_calls: [{ index: ti, function: { arguments: text } }] }, finish_reason: null }],
              }),
            });
          });
        }
      }
      if (c['finish_reason'] !== null && c['finish_reason'] !== undefined) closes.push(group);
    });
    return { channels, closes };
  }
  const type = o['type'];
  if (typeof type === 'string') {
    if (type === 'content_block_delta' && isObj(o['delta'])) {
      const d = o['delta'];
      const group = `anthropic:${String(o['index'])}`;
      for (const f of ANTHROPIC_FIELDS) {
        if (typeof d[f] === 'string') {
          channels.push({ key: `${group}:${f}`, group, path: ['delta', f], synth: (t, text) => setIn(t, ['delta', f], text) });
        }
      }
      return { channels, closes };
    }
    if (type === 'content_block_stop') return { channels, closes: [`anthropic:${String(o['index'])}`] };
    if (type === 'message_stop' || type === 'message_delta') return { channels, closes: 'all' };
    const part = `${String(o['item_id'] ?? o['output_index'] ?? '')}|${String(o['content_index'] ?? o['summary_index'] ?? '')}`;
    if (type.endsWith('.delta') && typeof o['delta'] === 'string') {
      const group = `${type.slice(0, -6)}|${part}`;
      channels.push({ key: group, group, path: ['delta'], synth: (t, text) => setIn(t, ['delta'], text) });
      return { channels, closes };
    }
    if (type.endsWith('.done')) return { channels, closes: [`${type.slice(0, -5)}|${part}`] };
    if (type === 'response.completed' || type === 'response.failed' || type === 'response.incomplete' || type === 'error') {
      return { channels, closes: 'all' };
    }
  }
  return { channels, closes };
}

function setIn(t: Record<string, unknown>, p: Path, v: unknown): Record<string, unknown> {
  const c = structuredClone(t);
  setPath(c, p, v);
  return c;
}

export class SseMasker {
  private readonly parser = new SseParser();
  private readonly o: SseMaskOptions;
  private readonly channels = new Map<string, Channel>();
  private readonly counts_: Record<string, number> = {};
  private plain = '';

  constructor(o: SseMaskOptions) {
    this.o = o;
  }

  /** Characters waiting for the end of their event. */
  get held(): number {
    return this.parser.held;
  }

  push(text: string): string {
    const events = this.parser.push(text);
    if (events.length === 0) return '';
    let out = '';
    for (const e of events) out += this.onEvent(e);
    return out;
  }

  end(): string {
    let out = this.closeAll();
    const rest = this.parser.end();
    if (rest) out += this.maskLoose(rest);
    return out;
  }

  counts(): Record<string, number> {
    const c = { ...this.counts_ };
    for (const ch of this.channels.values()) if (ch.sm) for (const [k, n] of Object.entries(ch.sm.counts())) c[k] = (c[k] ?? 0) + n;
    return c;
  }

  /** The masked text (before restore) as the recording keeps it: each channel assembled, then the other data. */
  recorded(): string {
    const parts: string[] = [];
    for (const ch of this.channels.values()) parts.push(`[${ch.ref.key}] ${ch.recorded}`);
    if (this.plain) parts.push(this.plain);
    return parts.join('\n').slice(0, this.o.recordCap);
  }

  private count(c: Record<string, number>): void {
    for (const [k, n] of Object.entries(c)) this.counts_[k] = (this.counts_[k] ?? 0) + n;
  }

  private keep(s: string): void {
    if (this.plain.length < this.o.recordCap) this.plain += `${s}\n`;
  }

  private finish(s: string): string {
    return this.o.secrets.length ? scrubText(s, this.o.secrets) : s;
  }

  private maskLoose(text: string): string {
    const { engine, vault } = this.o;
    let t = text;
    if (engine) {
      const r = engine.maskText(t);
      this.count(r.counts);
      t = r.text;
    }
    this.keep(t);
    if (vault) t = vault.restore(t);
    return this.finish(t);
  }

  private onEvent(e: SseEvent): string {
    const { engine, vault } = this.o;
    if (e.data === null) return this.finish(e.raw);
    const data = e.data;
    if (data.trim() === '[DONE]') return this.closeAll() + this.finish(e.raw);
    let obj: unknown;
    const first = data.trimStart()[0];
    if (first === '{' || first === '[') {
      try {
        obj = JSON.parse(data);
      } catch {
        obj = undefined;
      }
    }
    if (!isObj(obj)) {
      if (!engine && !vault) return this.finish(e.raw);
      let t = data;
      if (engine) {
        const r = first === '[' ? engine.maskJson(t) : engine.maskText(t);
        this.count(r.counts);
        t = r.text;
      }
      this.keep(t);
      if (vault) t = first === '[' ? vault.restoreJson(t) : vault.restore(t);
      return this.finish(t === data ? e.raw : withData(e, t));
    }
    const { channels, closes } = channelsOf(obj);
    // Channel values are streamed; the rest of the event is masked whole.
    const values = channels.map((c) => getPath(obj, c.path) as string);
    for (const c of channels) setPath(obj, c.path, '');
    let changed = false;
    if (engine) {
      const rest = JSON.stringify(obj);
      const r = engine.maskJson(rest);
      if (r.changed) {
        this.count(r.counts);
        obj = JSON.parse(r.text) as Record<string, unknown>;
        changed = true;
      }
      if (channels.length === 0) this.keep(r.text);
    } else if (channels.length === 0) this.keep(data);
    const o = obj as Record<string, unknown>;
    channels.forEach((ref, i) => {
      const ch = this.channel(ref, o, e);
      const v = values[i]!;
      let t = ch.sm ? ch.sm.push(v) : v;
      if (ch.recorded.length < this.o.recordCap) ch.recorded += t;
      if (ch.rs) t = ch.rs.push(t);
      if (t !== v) changed = true;
      setPath(o, ref.path, t);
    });
    let before = '';
    if (closes === 'all') before = this.closeAll();
    else for (const g of closes) before += this.closeGroup(g);
    if (!changed && !vault) return before + this.finish(e.raw);
    let json = JSON.stringify(o);
    if (vault) json = vault.restoreJson(json);
    if (!changed && json === data) return before + this.finish(e.raw);
    return before + this.finish(withData(e, json));
  }

  private channel(ref: ChannelRef, template: Record<string, unknown>, e: SseEvent): Channel {
    let ch = this.channels.get(ref.key);
    if (!ch) {
      ch = {
        ref,
        sm: this.o.engine ? this.o.engine.stream() : null,
        rs: this.o.vault ? new StreamRestorer(this.o.vault) : null,
        template,
        lines: [],
        recorded: '',
      };
      this.channels.set(ref.key, ch);
    }
    ch.ref = ref;
    ch.template = template;
    ch.lines = e.lines.filter((l) => !(l === 'data' || l.startsWith('data:') || l === 'id' || l.startsWith('id:')));
    return ch;
  }

  private closeGroup(group: string): string {
    let out = '';
    for (const ch of this.channels.values()) if (ch.ref.group === group) out += this.flush(ch);
    return out;
  }

  private closeAll(): string {
    let out = '';
    for (const ch of this.channels.values()) out += this.flush(ch);
    return out;
  }

  /** Emits what a channel still holds as one more delta event (nothing when it holds nothing). */
  private flush(ch: Channel): string {
    let t = '';
    if (ch.sm) {
      t = ch.sm.end();
      this.count(ch.sm.counts());
      ch.sm = this.o.engine ? this.o.engine.stream() : null;
    }
    if (ch.recorded.length < this.o.recordCap) ch.recorded += t;
    if (ch.rs) t = ch.rs.push(t) + ch.rs.end();
    if (!t) return '';
    const obj = ch.ref.synth(ch.template, t);
    return this.finish(withData({ raw: '', lines: ch.lines, data: null }, JSON.stringify(obj)));
  }
}
