import { mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * A memory cgroup with a limit, as a container's `resources.limits.memory` makes one: a process
 * started in it sees the limit (Node sizes its heap from it) and is killed by the kernel beyond it.
 * Needs root and a writable cgroup v1 memory controller or cgroup v2 hierarchy; null otherwise.
 */
export interface MemoryCgroup {
  /** `sh -c` prefix that moves the shell into the cgroup before it execs the command. */
  enter: string;
  /** The highest usage so far (bytes), as the kernel counts it (page cache included). */
  peak(): number;
  /** How many times the kernel killed a process of the cgroup for memory. */
  oomKills(): number;
  remove(): void;
}

export function memoryCgroup(name: string, limitBytes: number): MemoryCgroup | null {
  for (const version of ['v2', 'v1'] as const) {
    const root = version === 'v2' ? '/sys/fs/cgroup/unified' : '/sys/fs/cgroup/memory';
    const dir = path.join(root, name);
    try {
      if (version === 'v2' && !readFileSync(path.join(root, 'cgroup.controllers'), 'utf8').includes('memory'))
        continue;
      mkdirSync(dir, { recursive: true });
      writeFileSync(
        path.join(dir, version === 'v2' ? 'memory.max' : 'memory.limit_in_bytes'),
        String(limitBytes),
      );
    } catch {
      continue;
    }
    const read = (file: string) => readFileSync(path.join(dir, file), 'utf8');
    return {
      enter: `echo $$ > ${path.join(dir, 'cgroup.procs')} && exec`,
      peak: () => Number(read(version === 'v2' ? 'memory.peak' : 'memory.max_usage_in_bytes')),
      oomKills: () =>
        Number(
          /oom_kill (\d+)/.exec(read(version === 'v2' ? 'memory.events' : 'memory.oom_control'))?.[1] ?? 0,
        ),
      remove: () => {
        try {
          rmdirSync(dir);
        } catch {
          // still has a process: left for the next run's mkdir to reuse
        }
      },
    };
  }
  return null;
}

/** `256Mi`, `1Gi`, `512M` → bytes. */
export function quantityBytes(quantity: string): number {
  const match = /^(\d+)(Ki|Mi|Gi|K|M|G)?$/.exec(quantity);
  if (!match) throw new Error(`not a memory quantity: ${quantity}`);
  const units: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, K: 1e3, M: 1e6, G: 1e9 };
  return Number(match[1]) * (units[match[2] ?? ''] ?? 1);
}
