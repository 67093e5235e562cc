/**
 * Public surface of `dlp/`: detectors, maskers, payload-aware masking and streaming. Pure: no I/O.
 */
export { createDlpEngine } from './engine.js';
export type { DlpEngine, DlpEngineOptions, MaskerSpec } from './engine.js';
export type { Finding, MaskResult } from './core.js';
export { ENTITY_NAMES, SECRET_ENTITIES, PII_ENTITIES, ENTITY_GROUPS, expandEntities, isSecretEntity, isBuiltinEntity } from './entities.js';
export type { BuiltinEntity, SecretEntity } from './entities.js';
export { checkRegexSafety, compileCustomDetector } from './custom.js';
export type { CustomDetector, CustomDetectorSpec } from './custom.js';
export { MASKER_NAMES, isMaskerName, redact, partial, hashToken, PseudonymVault, createPseudonymVault } from './maskers.js';
export type { MaskerName } from './maskers.js';
export { DEFAULT_WINDOW } from './stream.js';
export type { StreamMasker, ByteStreamMasker } from './stream.js';
export { luhn, mod97, validIban, validSsn, validNanp, shannonEntropy, isPlaceholder, VALIDATORS } from './validators.js';
export { stripAnsi } from './ansi.js';

import type { DlpEngineOptions } from './engine.js';
import { createDlpEngine } from './engine.js';
import type { MaskResult } from './core.js';
import type { StreamMasker, ByteStreamMasker } from './stream.js';

/** One-shot helpers (they build an engine per call; keep an engine for repeated use). */
export function maskText(text: string, opts: DlpEngineOptions = {}): MaskResult {
  return createDlpEngine(opts).maskText(text);
}
export function maskJson(text: string, opts: DlpEngineOptions = {}): MaskResult {
  return createDlpEngine(opts).maskJson(text);
}
export function maskForm(text: string, opts: DlpEngineOptions = {}): MaskResult {
  return createDlpEngine(opts).maskForm(text);
}
export function createStreamMasker(opts: DlpEngineOptions = {}): StreamMasker {
  return createDlpEngine(opts).stream();
}
export function createByteStreamMasker(opts: DlpEngineOptions = {}): ByteStreamMasker {
  return createDlpEngine(opts).byteStream();
}
