/**
 * From a decision's mask rules to one DLP engine: the entities of every entity mask rule, each entity
 * taking the masker of the first rule (in policy order) that names it. Engines are cached by the rule set,
 * so a tunnel builds one per distinct combination, not one per result.
 */
import { createDlpEngine, expandEntities, type CustomDetectorSpec, type DlpEngine, type MaskerName, PseudonymVault } from '../dlp/index.js';
import type { MaskDirective } from './types.js';

export interface MaskEngineOptions {
  customDetectors?: readonly CustomDetectorSpec[];
  hashKey?: Uint8Array;
  vault?: PseudonymVault;
}

export class MaskEngineCache {
  private readonly engines = new Map<string, DlpEngine | null>();
  private readonly opts: MaskEngineOptions;

  constructor(opts: MaskEngineOptions = {}) {
    this.opts = opts;
  }

  /** The engine for `masks`' entity rules, or null when none names entities. */
  for(masks: readonly MaskDirective[]): DlpEngine | null {
    const entityRules = masks.filter((m) => m.entities && m.entities.length > 0);
    if (entityRules.length === 0) return null;
    // (a key joined by hand: this runs per statement and per request, and JSON.stringify of the rules showed)
    let key = '';
    for (const m of entityRules) key += `${m.entities!.join('\u0001')}\u0002${m.with ?? ''}\u0002${m.keep ?? ''}\u0003`;
    let engine = this.engines.get(key);
    if (engine === undefined) {
      const custom = (this.opts.customDetectors ?? []).map((d) => d.name);
      const masker: Record<string, MaskerName> = {};
      const entities: string[] = [];
      for (const m of entityRules) {
        for (const e of expandEntities(m.entities!, custom)) {
          if (e in masker) continue;
          masker[e] = m.with ?? 'redact';
          entities.push(e);
        }
      }
      engine = createDlpEngine({
        entities,
        masker,
        keep: Math.min(...entityRules.map((m) => m.keep ?? 4)),
        ...(this.opts.hashKey ? { hashKey: this.opts.hashKey } : {}),
        ...(this.opts.vault ? { vault: this.opts.vault } : {}),
        customDetectors: this.opts.customDetectors ?? [],
      });
      this.engines.set(key, engine);
    }
    return engine;
  }
}
