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
