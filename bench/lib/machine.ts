// What a figure was measured on, and what a process costs: CPU time and memory read from /proc.
import { closeSync, fstatSync, openSync, readdirSync, readFileSync } from "node:fs";
import { cpus, loadavg, totalmem } from "node:os";

export interface Machine {
  nproc: number;
  cpu: string;
  memGiB: number;
  load: [number, number, number];
  bun: string;
  node?: string;
  kernel: string;
  openFiles: number;
  /**
   * What a system call costs here: µs per `fstat` from Bun (the call's JavaScript included). Every socket write
   * and wake-up pays it, so servers, Postgres and the generator all slow down with it, while a long COPY barely
   * does: figures from machines whose syscalls differ are not comparable.
   */
  syscallUs?: number;
  /** kernel page-table isolation on, and whether the CPU has PCID (without it every syscall flushes the TLB) */
  pti?: "on, PCID" | "on, no PCID";
}

export function machine(): Machine {
  let node: string | undefined;
  try {
    node = Bun.spawnSync(["node", "--version"]).stdout.toString().trim() || undefined;
  } catch {}
  let openFiles = 0;
  try {
    openFiles = Number(readFileSync("/proc/self/limits", "utf8").match(/Max open files\s+(\d+)/)?.[1] ?? 0);
  } catch {}
  return {
    nproc: cpus().length,
    cpu: cpus()[0]?.model ?? "unknown",
    memGiB: Math.round(totalmem() / 2 ** 30),
    load: load(),
    bun: Bun.version,
    node,
    kernel: readFileSync("/proc/sys/kernel/osrelease", "utf8").trim(),
    openFiles,
    syscallUs: syscallCost(),
    pti: pti(),
  };
}

/** The load average (1, 5 and 15 minutes), to two decimals. */
export function load(): Machine["load"] {
  return loadavg().map((x) => Math.round(x * 100) / 100) as Machine["load"];
}

/** The median of 5 rounds of 20,000 `fstat` calls, in µs per call. */
function syscallCost(): number {
  const fd = openSync("/dev/null", "r");
  try {
    const rounds: number[] = [];
    for (let r = 0; r < 6; r++) {
      const t = performance.now();
      for (let i = 0; i < 20_000; i++) fstatSync(fd);
      if (r) rounds.push((performance.now() - t) / 20);
    }
    return Math.round(rounds.sort((a, b) => a - b)[2]! * 100) / 100;
  } finally {
    closeSync(fd);
  }
}

function pti(): Machine["pti"] {
  try {
    if (!readFileSync("/sys/devices/system/cpu/vulnerabilities/meltdown", "utf8").includes("PTI")) return undefined;
    return /^flags\s*:.*\bpcid\b/m.test(readFileSync("/proc/cpuinfo", "utf8")) ? "on, PCID" : "on, no PCID";
  } catch {
    return undefined;
  }
}

const TICK = 100; // USER_HZ: /proc times are in 1/100 s on Linux

/** CPU seconds (user + system, all threads) a process has used so far; 0 once it is gone. */
export function cpuSeconds(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / TICK;
  } catch {
    return 0;
  }
}

/** Resident memory of a process in bytes. */
export function rssBytes(pid: number): number {
  try {
    const m = readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+) kB/);
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** A process and its descendants (Postgres forks a backend per connection). */
export function withChildren(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const s = readFileSync(`/proc/${d}/stat`, "utf8");
      parent.set(Number(d), Number(s.slice(s.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {}
  }
  const out = [pid];
  for (let i = 0; i < out.length; i++) for (const [c, p] of parent) if (p === out[i]) out.push(c);
  return out;
}

/** CPU seconds of a group of processes (children looked up again each time: backends come and go). */
export function groupCpu(pids: () => number[]): number {
  return pids().reduce((s, p) => s + cpuSeconds(p), 0);
}

/** The machine's CPU time so far (all cores, /proc/stat, in seconds): busy (not idle nor waiting on I/O) and total. */
export function machineCpu(): { busy: number; total: number } {
  try {
    const f = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    return { busy: (total - f[3]! - f[4]!) / TICK, total: total / TICK };
  } catch {
    return { busy: NaN, total: NaN };
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
