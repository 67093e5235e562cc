/**
 * Scores the DLP engine on the corpus: per-entity precision and recall, false positives on near-miss
 * negatives, and partial leaks (≥ 8 consecutive characters of a secret, or card digits beyond the kept last
 * four, surviving in the output) under the redact and partial maskers.
 */
import { createDlpEngine, isSecretEntity } from '../../src/dlp/index.js';
import type { Finding } from '../../src/dlp/index.js';
import type { Sample } from './corpus.js';

export interface EntityScore {
  entity: string;
  gold: number;
  found: number;
  tp: number;
  fp: number;
  precision: number;
  recall: number;
}

export interface EvalReport {
  entities: EntityScore[];
  negatives: number;
  negativesFlagged: number;
  negativeClean: number;
  partialLeaks: number;
  leakExamples: string[];
  fpExamples: string[];
  missExamples: string[];
}

function sameFamily(gold: string, found: string): boolean {
  return gold === found || (gold === 'generic_secret' && isSecretEntity(found));
}

function overlaps(a: { start: number; end: number }, b: { start: number; end: number }): boolean {
  return a.start < b.end && b.start < a.end;
}

function leaks(value: string, entity: string, output: string, keep: number): boolean {
  let v = value;
  let out = output;
  if (entity === 'credit_card' || entity === 'iban' || entity === 'us_ssn' || entity === 'phone') {
    v = v.replace(/[\s().+-]/g, '');
    out = out.replace(/[\s().+-]/g, '');
  }
  const limit = v.length - keep;
  for (let i = 0; i + 8 <= limit; i++) if (out.includes(v.slice(i, i + 8))) return true;
  return false;
}

export function evaluate(samples: readonly Sample[]): EvalReport {
  const redact = createDlpEngine();
  const partial = createDlpEngine({ masker: 'partial' });
  const scores = new Map<string, EntityScore>();
  const score = (e: string): EntityScore => {
    let s = scores.get(e);
    if (s === undefined) {
      s = { entity: e, gold: 0, found: 0, tp: 0, fp: 0, precision: 1, recall: 1 };
      scores.set(e, s);
    }
    return s;
  };
  let negativesFlagged = 0;
  let partialLeaks = 0;
  const leakExamples: string[] = [];
  const fpExamples: string[] = [];
  const missExamples: string[] = [];

  for (const smp of samples) {
    const r = smp.format === 'json' ? redact.maskJson(smp.text) : redact.maskText(smp.text);
    const p = smp.format === 'json' ? partial.maskJson(smp.text) : partial.maskText(smp.text);
    const findings: Finding[] = r.findings;
    if (smp.negative && findings.length > 0) {
      negativesFlagged++;
      if (fpExamples.length < 20) fpExamples.push(`${smp.nearMiss}: ${JSON.stringify(smp.text)} → ${findings.map((f) => `${f.entity}:${JSON.stringify(smp.text.slice(f.start, f.end))}`).join(', ')}`);
    }
    for (const g of smp.gold) {
      const s = score(g.entity);
      s.gold++;
      const hit = findings.some((f) => overlaps(f, g) && sameFamily(g.entity, f.entity));
      if (hit) s.tp++;
      else if (missExamples.length < 30) missExamples.push(`${g.entity}: ${JSON.stringify(smp.text.slice(g.start, g.end))} in ${JSON.stringify(smp.text.slice(0, 160))} → ${findings.map((f) => f.entity).join(',') || 'nothing'}`);
      const value = smp.text.slice(g.start, g.end);
      const leakRedact = leaks(value, g.entity, r.text, 0);
      const keepsTail = g.entity === 'credit_card' || (isSecretEntity(g.entity) && value.length >= 16);
      const leakPartial = (g.entity === 'credit_card' || isSecretEntity(g.entity)) && leaks(value, g.entity, p.text, keepsTail ? 4 : 0);
      if (leakRedact || leakPartial) {
        partialLeaks++;
        if (leakExamples.length < 20) leakExamples.push(`${g.entity} (${leakRedact ? 'redact' : 'partial'}): ${JSON.stringify(value)} → ${JSON.stringify(leakRedact ? r.text : p.text)}`);
      }
    }
    for (const f of findings) {
      const s = score(f.entity);
      s.found++;
      const ok = smp.gold.some((g) => overlaps(f, g) && sameFamily(g.entity, f.entity));
      if (!ok) {
        s.fp++;
        if (!smp.negative && fpExamples.length < 20) fpExamples.push(`in positive: ${f.entity}:${JSON.stringify(smp.text.slice(f.start, f.end))} in ${JSON.stringify(smp.text.slice(0, 120))}`);
      }
    }
  }
  const entities = [...scores.values()].sort((a, b) => a.entity.localeCompare(b.entity));
  for (const s of entities) {
    s.recall = s.gold === 0 ? 1 : s.tp / s.gold;
    s.precision = s.found === 0 ? 1 : (s.found - s.fp) / s.found;
  }
  const negatives = samples.filter((x) => x.negative).length;
  return { entities, negatives, negativesFlagged, negativeClean: negatives === 0 ? 1 : 1 - negativesFlagged / negatives, partialLeaks, leakExamples, fpExamples, missExamples };
}

export function formatReport(r: EvalReport): string {
  const lines = ['| entity | gold | found | recall | precision |', '|---|---:|---:|---:|---:|'];
  for (const s of r.entities) lines.push(`| ${s.entity} | ${s.gold} | ${s.found} | ${s.recall.toFixed(3)} | ${s.precision.toFixed(3)} |`);
  lines.push('', `near-miss negatives: ${r.negatives}, flagged: ${r.negativesFlagged} (clean rate ${r.negativeClean.toFixed(3)})`, `partial leaks: ${r.partialLeaks}`);
  return lines.join('\n');
}
