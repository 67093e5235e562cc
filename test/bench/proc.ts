/** What the benches read about a process from /proc (Linux). */
import fs from 'node:fs';

/** Clock ticks per second of /proc/PID/stat's times (USER_HZ; 100 on Linux x86-64). */
const CLOCK_TICKS = 100;

/** CPU time (user + system, all threads) of a process so far, in ms, from /proc/PID/stat. */
export function cpuMs(pid: number | undefined): number | undefined {
  if (!pid) return undefined;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}

/** Peak resident set (VmHWM) of a process in MB. */
export function vmHwmMb(pid: number | undefined): number | undefined {
  if (!pid) return undefined;
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** The whole machine's idle and total CPU time so far (all CPUs, in clock ticks), from /proc/stat. */
export function machineTicks(): { idle: number; total: number } | undefined {
  try {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal …: idle and iowait are the time nothing ran
    return { idle: f[3]! + f[4]!, total: f.slice(0, 8).reduce((a, b) => a + b, 0) };
  } catch {
    return undefined;
  }
}

/** The share (%) of the machine's CPU time left idle between two machineTicks readings. */
export function idlePercent(a: ReturnType<typeof machineTicks>, b: ReturnType<typeof machineTicks>): number | undefined {
  if (!a || !b || b.total <= a.total) return undefined;
  return ((b.idle - a.idle) * 100) / (b.total - a.total);
}
