/** What the fresh-pair A/B scripts (postgres-ab.ts, http-ab.ts) share: the median they report and its table row. */

/** The middle value (the upper one of two for an even count). */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** `| label | CPU median | each pair | rate median | each pair |`, '–' where a build gave no figure. */
export function abRow(label: string, cpu: number[], rate: number[], rateDigits = 0): string {
  const med = (xs: number[], digits: number): string => (xs.length ? median(xs).toFixed(digits) : '–');
  const each = (xs: number[], digits: number): string => xs.map((x) => x.toFixed(digits)).join(' ');
  return `| ${label} | ${med(cpu, 1)} | ${each(cpu, 1)} | ${med(rate, rateDigits)} | ${each(rate, rateDigits)} |`;
}
