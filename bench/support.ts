import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';

/** What every benchmark needs to start servers side by side: a free port, and waiting until one answers. */
export { freePort } from '../test/support/spawn-wharf.ts';

/**
 * Resolves once `url` answers with a status `ok` accepts (by default any answer at all: the process
 * listens); rejects after 30 s.
 */
export async function waitFor(url: string, ok: (status: number) => boolean = () => true): Promise<void> {
  for (let attempt = 0; attempt < 300; attempt++) {
    try {
      if (ok((await fetch(url)).status)) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${url} did not come up`);
}

/**
 * wharf as deployed (Dockerfile, `npm start`): the compiled JavaScript with the same GC flags
 * (docs/oci.md), listening on 127.0.0.1:`port`, with only PATH from this environment plus `env`.
 */
export function spawnDeployedWharf(root: string, port: number, env: Record<string, string>): ChildProcess {
  return spawn(
    path.join(root, 'node_modules/.bin/node'),
    ['--max-semi-space-size=1', '--heap-growing-percent=300', '--enable-source-maps', 'dist/server/main.js'],
    {
      cwd: root,
      stdio: 'ignore',
      env: { PATH: process.env.PATH, HOST: '127.0.0.1', PORT: String(port), ...env },
    },
  );
}
