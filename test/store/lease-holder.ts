// Child process of the lease tests: takes a lease on the store given as JSON config, says so, and
// dies by SIGKILL while holding it, as a crashed replica would.
import pino from 'pino';
import type { StoreConfig } from '../../server/config/types.ts';
import { tryAcquireLease } from '../../server/store/lease.ts';
import { openStore } from '../../server/store/open.ts';

const [configJson, key, durationMs] = process.argv.slice(2);
const store = await openStore(JSON.parse(configJson!) as StoreConfig, pino({ level: 'silent' }));
const attempt = await tryAcquireLease(store, key!, {
  holder: `child-${process.pid}`,
  durationMs: Number(durationMs),
});
process.stdout.write(attempt.acquired ? 'acquired\n' : `refused by ${attempt.holder}\n`);
process.kill(process.pid, 'SIGKILL');
