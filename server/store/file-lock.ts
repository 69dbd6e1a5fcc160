import { randomBytes } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';
import { link, open, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';

/**
 * Lock files for processes sharing a directory (the fs store's per-key and per-upload locks).
 *
 * A lock is a file, created only if absent, that names its holder: pid, process start time, boot id and
 * PID namespace. A waiter that finds the lock taken asks whether that holder still lives: a holder
 * on this kernel and in this PID namespace that is gone (or whose pid now belongs to a process
 * started at another time) frees the lock at once, so a process killed while holding it never makes
 * the next writer wait. A holder the waiter cannot see (another machine on a shared volume, another
 * container, a lock file of an older version) is judged by age instead: the holder refreshes the
 * file's mtime while it holds the lock, and one not refreshed for `staleMs` is taken over.
 *
 * Taking over is itself serialized by a second lock file (`<lock>.breaking`), and the lock is
 * removed only if it is still the very file (inode) that was judged, so two waiters breaking one
 * dead lock cannot remove a lock that a third process has just taken.
 */
export interface FileLockOptions {
  /** A holder that cannot be checked for liveness is stale when its mtime is older than this. */
  staleMs?: number;
}

export type Release = () => Promise<void>;

const DEFAULT_STALE_MS = 30_000;
/** Breaking takes a stat and an unlink: a breaker lock older than this was left by a dead waiter. */
const BREAKER_STALE_MS = 5_000;

interface Holder {
  pid: number;
  /** Process start time in clock ticks since boot (/proc/<pid>/stat field 22), as text. */
  start: string | null;
  boot: string | null;
  pidns: string | null;
  host: string;
}

/** Takes the lock, waiting as long as a live holder keeps it. */
export async function acquireFileLock(file: string, options: FileLockOptions = {}): Promise<Release> {
  for (let attempt = 0; ; attempt++) {
    const release = await tryAcquireFileLock(file, options);
    if (release) return release;
    await new Promise((resolve) => setTimeout(resolve, Math.min(50, 1 + attempt)));
  }
}

/** Takes the lock if it is free or its holder is dead or stale; `null` when a live holder has it. */
export async function tryAcquireFileLock(
  file: string,
  options: FileLockOptions = {},
): Promise<Release | null> {
  const staleMs = options.staleMs ?? DEFAULT_STALE_MS;
  for (let attempt = 0; attempt < 2; attempt++) {
    const created = await createExclusive(file);
    if (created !== null) return holding(file, created, staleMs);
    const seen = await inspect(file);
    if (!seen) continue; // released meanwhile: try again
    if (!isAbandoned(seen, staleMs)) return null;
    await breakLock(file, seen.ino, staleMs);
  }
  return null;
}

/**
 * Creates the lock file with its holder already in it (written aside, then hard-linked into place,
 * which fails if the name exists), so no waiter ever sees a lock without a holder. The inode of the
 * new lock, or null when it exists.
 */
async function createExclusive(file: string): Promise<bigint | null> {
  const aside = `${file}.${process.pid}.${randomBytes(6).toString('hex')}`;
  await writeFile(aside, JSON.stringify(SELF));
  try {
    await link(aside, file);
    return (await stat(aside, { bigint: true })).ino;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return null;
    throw error;
  } finally {
    await unlink(aside).catch(() => undefined);
  }
}

/** Holds the lock: refreshes its mtime so that it never looks stale, and releases only our own file. */
function holding(file: string, ino: bigint, staleMs: number): Release {
  const refresh = setInterval(() => {
    const now = new Date();
    utimes(file, now, now).catch(() => undefined);
  }, staleMs / 4);
  refresh.unref();
  return async () => {
    clearInterval(refresh);
    const current = await stat(file, { bigint: true }).catch(() => null);
    if (current?.ino === ino) await unlink(file).catch(() => undefined);
  };
}

interface Seen {
  ino: bigint;
  mtimeMs: number;
  holder: Holder | null;
}

async function inspect(file: string): Promise<Seen | null> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(file, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  try {
    const info = await handle.stat({ bigint: true });
    return {
      ino: info.ino,
      mtimeMs: Number(info.mtimeMs),
      holder: parseHolder(await handle.readFile('utf8')),
    };
  } finally {
    await handle.close();
  }
}

function isAbandoned(seen: Seen, staleMs: number): boolean {
  const liveness = seen.holder ? holderLiveness(seen.holder) : 'unknown';
  if (liveness === 'dead') return true;
  if (liveness === 'alive') return false;
  return Date.now() - seen.mtimeMs > staleMs;
}

/** Removes an abandoned lock, if it is still the file that was judged, under the breaker lock. */
async function breakLock(file: string, judged: bigint, staleMs: number): Promise<void> {
  const breaker = `${file}.breaking`;
  const created = await createExclusive(breaker);
  if (created === null) {
    // Another waiter is breaking it (or died doing so, which this clears for the next attempt).
    const other = await inspect(breaker);
    if (other && isAbandoned(other, BREAKER_STALE_MS)) await unlink(breaker).catch(() => undefined);
    return;
  }
  try {
    const seen = await inspect(file);
    if (seen && seen.ino === judged && isAbandoned(seen, staleMs)) await unlink(file).catch(() => undefined);
  } finally {
    const current = await stat(breaker, { bigint: true }).catch(() => null);
    if (current?.ino === created) await unlink(breaker).catch(() => undefined);
  }
}

function parseHolder(text: string): Holder | null {
  try {
    const value = JSON.parse(text) as Partial<Holder>;
    if (typeof value.pid !== 'number' || !Number.isInteger(value.pid) || value.pid <= 0) return null;
    return {
      pid: value.pid,
      start: typeof value.start === 'string' ? value.start : null,
      boot: typeof value.boot === 'string' ? value.boot : null,
      pidns: typeof value.pidns === 'string' ? value.pidns : null,
      host: typeof value.host === 'string' ? value.host : '',
    };
  } catch {
    return null; // a lock file of an older version (empty)
  }
}

/**
 * `dead` only when certain: the holder ran on this kernel, in this PID namespace, and its pid is
 * gone or belongs to a process started at another time. `unknown` when it cannot be seen from here.
 */
export function holderLiveness(holder: Holder): 'alive' | 'dead' | 'unknown' {
  if (!SELF.boot || !SELF.pidns || holder.boot !== SELF.boot || holder.pidns !== SELF.pidns) return 'unknown';
  try {
    process.kill(holder.pid, 0);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ESRCH') return 'dead';
    if (code !== 'EPERM') return 'unknown';
  }
  if (!holder.start) return 'alive';
  const start = processStart(holder.pid);
  if (start === null) return 'alive'; // exists, but /proc hides it (hidepid): trust the signal
  return start === holder.start ? 'alive' : 'dead';
}

function processStart(pid: number | 'self'): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces and parentheses) start at its last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? null; // field 22 overall: starttime
  } catch {
    return null;
  }
}

function readProc(file: string): string | null {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return null;
  }
}

function pidNamespace(): string | null {
  try {
    return readlinkSync('/proc/self/ns/pid');
  } catch {
    return null;
  }
}

/** This process, as written into the locks it takes. */
const SELF: Holder = {
  pid: process.pid,
  start: processStart('self'),
  boot: readProc('/proc/sys/kernel/random/boot_id'),
  pidns: pidNamespace(),
  host: hostname(),
};
