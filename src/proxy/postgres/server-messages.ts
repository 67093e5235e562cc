/**
 * Server messages are payloads. An ErrorResponse or NoticeResponse quotes values (`invalid input syntax for type
 * integer: "219-09-9999"`, a RAISE NOTICE of a whole column, a constraint's DETAIL with the failing row), and a
 * NotificationResponse carries whatever the sender put in it. Before one reaches the client or the store:
 *
 *   - when the statement that produced it reads masked data (a masked column, through a view, a whole row, a
 *     function whose lineage is unknown), its text is withheld: severity, SQLSTATE and position stay, so the
 *     client still knows what kind of error it was and where, and the message says that dlpctl withheld it and why;
 *   - otherwise every text field goes through the detectors of the statement's entity mask rules.
 *
 * ErrorResponse / NoticeResponse: (Byte1 field code, String value)* Byte1 0. The fields kept verbatim are the
 * ones that carry no value of the data: S/V severity, C SQLSTATE, P/p positions, F/L/R the server's source
 * location. Everything else (M message, D detail, H hint, W context, q internal query, s/t/c/d/n object names) is
 * text that may quote data.
 *
 * NotificationResponse: Int32 process id, String channel, String payload.
 */
import type { DlpEngine } from '../../dlp/index.js';
import { BackendType } from './messages.js';

/** Field codes that never carry data values. */
const STRUCTURAL = new Set(['S', 'V', 'C', 'P', 'p', 'F', 'L', 'R']);
/** Withheld messages keep only these (and the new text). */
const KEPT_WHEN_WITHHELD = new Set(['S', 'V', 'C', 'P', 'F', 'L', 'R']);

export interface ServerMessageMasking {
  /** Why the text is withheld (the statement reads masked data), or null to mask it with `dlp`. */
  withhold: string | null;
  /** Detectors of the statement's entity rules; null when it has none. */
  dlp: DlpEngine | null;
}

export interface MaskedNotice {
  /** The message to send the client (the original bytes when nothing changed). */
  raw: Buffer;
  /** The message text as the client sees it (for the audit trail). */
  message: string;
  code: string;
  changed: boolean;
  /** Entity counts of what the detectors masked. */
  counts: Record<string, number>;
}

/** Masks an ErrorResponse or NoticeResponse (`raw` is the whole message, type byte included). */
export function maskNotice(raw: Buffer, how: ServerMessageMasking): MaskedNotice {
  const fields = readFields(raw);
  const code = fields.find(([k]) => k === 'C')?.[1] ?? '';
  const counts: Record<string, number> = {};
  if (how.withhold !== null) {
    const kept = fields.filter(([k]) => KEPT_WHEN_WITHHELD.has(k));
    const message = `dlpctl withheld the server's message text: ${how.withhold}`;
    const at = kept.findIndex(([k]) => k === 'C');
    kept.splice(at + 1, 0, ['M', message]);
    return { raw: writeFields(raw[0]!, kept), message, code, changed: true, counts };
  }
  let changed = false;
  const dlp = how.dlp;
  const out = fields.map(([k, v]): [string, string] => {
    if (!dlp || STRUCTURAL.has(k) || v === '') return [k, v];
    const r = dlp.maskText(v);
    if (!r.changed) return [k, v];
    changed = true;
    for (const e in r.counts) counts[e] = (counts[e] ?? 0) + r.counts[e]!;
    return [k, r.text];
  });
  const message = out.find(([k]) => k === 'M')?.[1] ?? '';
  return { raw: changed ? writeFields(raw[0]!, out) : raw, message, code, changed, counts };
}

/** Masks the payload of a NotificationResponse with `dlp` (channel names are identifiers, kept). */
export function maskNotification(raw: Buffer, dlp: DlpEngine | null): { raw: Buffer; counts: Record<string, number> } {
  if (!dlp || raw.length < 9) return { raw, counts: {} };
  const chanEnd = raw.indexOf(0, 9);
  const payEnd = chanEnd === -1 ? -1 : raw.indexOf(0, chanEnd + 1);
  if (payEnd === -1) return { raw, counts: {} };
  const payload = raw.toString('utf8', chanEnd + 1, payEnd);
  const r = dlp.maskText(payload);
  if (!r.changed) return { raw, counts: {} };
  const body = Buffer.from(r.text, 'utf8');
  const out = Buffer.allocUnsafe(chanEnd + 1 + body.length + 1);
  raw.copy(out, 0, 0, chanEnd + 1);
  body.copy(out, chanEnd + 1);
  out[out.length - 1] = 0;
  out.writeInt32BE(out.length - 1, 1);
  return { raw: out, counts: r.counts };
}

export function isNoticeType(type: number | null): boolean {
  return type === BackendType.ErrorResponse || type === BackendType.NoticeResponse;
}

function readFields(raw: Buffer): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  let i = 5;
  while (i < raw.length && raw[i] !== 0) {
    const code = String.fromCharCode(raw[i]!);
    const end = raw.indexOf(0, i + 1);
    if (end === -1) break;
    out.push([code, raw.toString('utf8', i + 1, end)]);
    i = end + 1;
  }
  return out;
}

function writeFields(type: number, fields: ReadonlyArray<readonly [string, string]>): Buffer {
  const parts: Buffer[] = [Buffer.from([type, 0, 0, 0, 0])];
  for (const [k, v] of fields) parts.push(Buffer.from([k.charCodeAt(0)]), Buffer.from(v.replace(/\0/g, ''), 'utf8'), Buffer.from([0]));
  parts.push(Buffer.from([0]));
  const out = Buffer.concat(parts);
  out.writeInt32BE(out.length - 1, 1);
  return out;
}
