// Child process of the store contract: opens the store, streams part of an object that would be
// 8 MiB (or argv's total), and kills itself with SIGKILL mid-write, as a crashed server would.
import { Readable } from 'node:stream';
import pino from 'pino';
import type { StoreConfig } from '../../server/config/types.ts';
import { openStore } from '../../server/store/open.ts';

const [configJson, key, sendBytes = String(3 * 1024 * 1024), totalBytes = String(8 * 1024 * 1024)] =
  process.argv.slice(2);
const store = await openStore(JSON.parse(configJson!) as StoreConfig, pino({ level: 'silent' }));
let sent = 0;
const body = new Readable({
  read() {
    if (sent >= Number(sendBytes)) {
      // Give the driver a moment to push what it has towards the backend, then die.
      setTimeout(() => process.kill(process.pid, 'SIGKILL'), 200);
      return;
    }
    sent += 256 * 1024;
    this.push(Buffer.alloc(256 * 1024, 7));
  },
});
await store.put(key!, body, { contentLength: Number(totalBytes) });
process.exit(3); // never reached: the put cannot finish
