import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The repository root: hack/ scripts run from here. */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

const resolved = new Map<string, Promise<string>>();

/**
 * The absolute path of a real tool the tests drive (minio, skopeo, crane, helm...): runs
 * `bash hack/<name>.sh`, which installs or builds it once into ~/.cache/wharf and prints its path as
 * the last stdout line. Cached per process; a cold build can take minutes, a warm cache is instant.
 */
export function toolPath(name: string): Promise<string> {
  if (!/^[a-z0-9-]+$/.test(name)) throw new Error(`invalid tool name ${JSON.stringify(name)}`);
  let path = resolved.get(name);
  if (!path) {
    path = runInstaller(name);
    resolved.set(name, path);
    path.catch(() => resolved.delete(name)); // let a later caller try again
  }
  return path;
}

function runInstaller(name: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'bash',
      [`hack/${name}.sh`],
      { cwd: REPO_ROOT, maxBuffer: 16 * 1024 * 1024, timeout: 30 * 60_000 },
      (error, stdout, stderr) => {
        if (error) {
          reject(new Error(`bash hack/${name}.sh failed: ${error.message}\n${stderr.slice(-4000)}`));
          return;
        }
        const last = stdout.trim().split('\n').pop()?.trim();
        if (!last?.startsWith('/')) {
          reject(
            new Error(`bash hack/${name}.sh printed no absolute path (last line: ${JSON.stringify(last)})`),
          );
          return;
        }
        resolve(last);
      },
    );
  });
}
