// Child process of the fs lock tests: makes one conditional put and, at the moment it holds the
// key's lock (just before the rename that publishes the object), either dies by SIGKILL, as a
// crashed server would, or keeps the lock for a while and then finishes.
import { createRequire, syncBuiltinESMExports } from 'node:module';

const [dataDir, key, mode = 'die'] = process.argv.slice(2);
const fsPromises = createRequire(import.meta.url)('node:fs/promises') as typeof import('node:fs/promises');
const rename = fsPromises.rename;
fsPromises.rename = async (from, to) => {
  if (String(to).includes(`${dataDir}/objects/`)) {
    process.stdout.write('holding\n');
    if (mode === 'die') {
      process.kill(process.pid, 'SIGKILL');
      await new Promise(() => {}); // SIGKILL is asynchronous on some systems: never return
    }
    await new Promise((resolve) => setTimeout(resolve, Number(mode)));
  }
  return rename(from, to);
};
syncBuiltinESMExports();

const { FsObjectStore } = await import('../../server/store/fs-store.ts');
const store = await FsObjectStore.open(dataDir!);
await store.put(key!, 'written by the lock holder', { ifNoneMatch: '*' });
process.stdout.write('done\n');
