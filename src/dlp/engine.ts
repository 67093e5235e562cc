/**
 * The DLP engine: one object configured once (entities, maskers, custom detectors) and used by the policy
 * engine (`containsAny`, `entitiesIn`), the protocol relays (`maskText`, `maskJson`, `maskForm`,
 * `maskValue`, `stream`) and `dlpctl mask`.
 */
import { randomBytes } from 'node:crypto';
import { DlpctlError } from '../errors.js';
import type { Core, Finding, MaskResult } from './core.js';
import { detectRaw, maskTextCore, spanFindings } from './core.js';
import type { CustomDetector, CustomDetectorSpec } from './custom.js';
import { compileCustomDetector } from './custom.js';
import { ENTITY_GROUPS, ENTITY_NAMES, expandEntities } from './entities.js';
import { maskFormCore } from './form.js';
import { maskJsonCore } from './json.js';
import type { MaskerName } from './maskers.js';
import { isMaskerName, PseudonymVault } from './maskers.js';
import { cannotTriggerBytes } from './scanner.js';
import type { ByteStreamMasker, StreamMasker } from './stream.js';
import { Trigger } from './trigger.js';
import { createByteStreamMaskerCore, createStreamMaskerCore, DEFAULT_WINDOW } from './stream.js';

/** One masker for everything, or per entity/group with an optional `default` (else `redact`). */
export type MaskerSpec = MaskerName | Readonly<Record<string, MaskerName>>;

export interface DlpEngineOptions {
  /** Entities and groups to detect (default: every built-in entity and every custom detector). */
  entities?: readonly string[];
  masker?: MaskerSpec;
  /** Characters kept by `partial` (default 4). */
  keep?: number;
  /** HMAC key for `hash` (default: a random key per engine, so tokens are stable within the engine only). */
  hashKey?: string | Uint8Array;
  customDetectors?: readonly (CustomDetectorSpec | CustomDetector)[];
  /** true: private, loopback, link-local and CGNAT addresses are not reported (default false: report all). */
  allowPrivateIps?: boolean;
  /** Vault for `pseudonymize` (default: a new one per engine, exposed as `engine.vault`). */
  vault?: PseudonymVault;
  /** Stream hold-back window in characters (default 256, minimum 246). */
  window?: number;
}

export interface DlpEngine {
  readonly entities: ReadonlySet<string>;
  readonly vault: PseudonymVault;
  /** Findings in `text` (the masker field says what masking would apply). */
  detect(text: string): Finding[];
  maskText(text: string): MaskResult;
  /** JSON-aware; invalid JSON is masked as text. */
  maskJson(text: string): MaskResult;
  /** `application/x-www-form-urlencoded` bodies and query strings (a full URL is accepted). */
  maskForm(text: string): MaskResult;
  /**
   * A database cell: the masked text, or `null` when a finding's masker is `null`. Returns the same string
   * when nothing was found. `column` (optional) is context like a JSON key (`ssn`, `password`).
   */
  maskValue(cell: string, column?: string): string | null;
  stream(): StreamMasker;
  byteStream(): ByteStreamMasker;
  /** Cheap check: stops at the first finding. */
  containsAny(text: string): boolean;
  /**
   * True when masking these UTF-8 bytes as text (no key context) certainly finds nothing, decided without
   * decoding them: short ids, hex digests and lower-case words (see cannotTrigger), and no custom detectors.
   * False means "scan it", not "there is a finding". `start`/`end` pick a range of `bytes` (one cell of a row).
   */
  cleanBytes(bytes: Uint8Array, start?: number, end?: number): boolean;
  entitiesIn(text: string): Set<string>;
  maskerFor(entity: string): MaskerName;
}

export function createDlpEngine(options: DlpEngineOptions = {}): DlpEngine {
  const custom: CustomDetector[] = (options.customDetectors ?? []).map((d) => ('regex' in d ? d : compileCustomDetector(d)));
  const customNames = custom.map((d) => d.name);
  const seen = new Set<string>();
  for (const n of customNames) {
    if (seen.has(n)) throw new DlpctlError('DLP_PATTERN', `custom detector "${n}" is defined twice`);
    seen.add(n);
  }
  const entityList = options.entities === undefined ? [...ENTITY_NAMES, ...customNames] : expandEntities(options.entities, customNames);
  const entities: ReadonlySet<string> = new Set(entityList);

  const maskerMap = new Map<string, MaskerName>();
  let defaultMasker: MaskerName = 'redact';
  const spec = options.masker ?? 'redact';
  if (typeof spec === 'string') {
    if (!isMaskerName(spec)) throw new DlpctlError('DLP_PATTERN', `unknown masker "${spec}"; use redact, partial, hash, null or pseudonymize`);
    defaultMasker = spec;
  } else {
    for (const [k, v] of Object.entries(spec)) {
      if (!isMaskerName(v)) throw new DlpctlError('DLP_PATTERN', `unknown masker "${v}" for "${k}"; use redact, partial, hash, null or pseudonymize`);
      if (k === 'default') {
        defaultMasker = v;
        continue;
      }
      const names = ENTITY_GROUPS[k] !== undefined ? ENTITY_GROUPS[k] : expandEntities([k], customNames);
      for (const e of names) if (ENTITY_GROUPS[k] === undefined || !maskerMap.has(e)) maskerMap.set(e, v);
    }
  }
  const maskerFor = (e: string): MaskerName => maskerMap.get(e) ?? defaultMasker;
  const vault = options.vault ?? new PseudonymVault();
  const core: Core = {
    cfg: { entities, allowPrivateIps: options.allowPrivateIps ?? false, custom, trigger: new Trigger(entities) },
    maskerFor,
    mctx: { keep: options.keep ?? 4, hashKey: options.hashKey ?? randomBytes(32), vault },
  };
  const window = options.window ?? DEFAULT_WINDOW;

  const detect = (text: string): Finding[] =>
    spanFindings(detectRaw(core, text, true, 0).spans, maskerFor);

  return {
    entities,
    vault,
    detect,
    maskText: (text) => maskTextCore(core, text),
    // invalid JSON is scanned as text; with nothing found that is the fast path's own answer (no JSON.parse)
    maskJson: (text) => maskJsonCore(core, text, 0, false) ?? maskTextCore(core, text),
    maskForm: (text) => maskFormCore(core, text),
    maskValue(cell: string, column?: string): string | null {
      const r = maskTextCore(core, cell, column);
      if (!r.changed) return cell;
      if (r.findings.some((f) => f.masker === 'null')) return null;
      return r.text;
    },
    stream: () => createStreamMaskerCore(core, window),
    byteStream: () => createByteStreamMaskerCore(core, window),
    containsAny: (text) => detectRaw(core, text, true, 0, undefined, true).spans.length > 0,
    cleanBytes: (bytes, start = 0, end = bytes.length) => custom.length === 0 && end - start <= 256 && cannotTriggerBytes(bytes, start, end),
    entitiesIn: (text) => new Set(Object.keys(detectRaw(core, text, true, 0).spans.counts())),
    maskerFor,
  };
}
