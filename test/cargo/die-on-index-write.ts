// Preloaded (NODE_OPTIONS=--import=…) into a real wharf process by test/cargo/crash.test.ts: the
// process kills itself with SIGKILL at the moment it would publish a Cargo index file, that is
// after the publish wrote its .crate, while it holds the index file's lock (fs store).
import { createRequire, syncBuiltinESMExports } from 'node:module';

const fsPromises = createRequire(import.meta.url)('node:fs/promises') as typeof import('node:fs/promises');
const rename = fsPromises.rename;
fsPromises.rename = async (from, to) => {
  if (String(to).includes('/objects/cargo/index/')) {
    process.kill(process.pid, 'SIGKILL');
    await new Promise(() => {});
  }
  return rename(from, to);
};
syncBuiltinESMExports();
