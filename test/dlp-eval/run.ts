/** `npx tsx test/dlp-eval/run.ts [seed] [perEntity]` — prints per-entity precision/recall and leaks. */
import { generateCorpus } from './corpus.js';
import { evaluate, formatReport } from './evaluate.js';

const seed = Number(process.argv[2] ?? 1);
const per = Number(process.argv[3] ?? 200);
const samples = generateCorpus(seed, per, Math.ceil(per / 2));
const report = evaluate(samples);
console.log(`seed ${seed}, ${samples.length} samples\n`);
console.log(formatReport(report));
if (report.missExamples.length > 0) console.log('\nmisses:\n' + report.missExamples.join('\n'));
if (report.fpExamples.length > 0) console.log('\nfalse positives:\n' + report.fpExamples.join('\n'));
if (report.leakExamples.length > 0) console.log('\nleaks:\n' + report.leakExamples.join('\n'));
