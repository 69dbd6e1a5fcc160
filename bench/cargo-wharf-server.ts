/**
 * wharf's Cargo registry in its own process for bench/cargo.ts: the registry role on an fs store,
 * with a STAND-IN identity (one user `bench`, token from WHARF_BENCH_TOKEN) until the AuthService's
 * token endpoints are in main. Prints the URL on stdout when ready.
 */
import { StandInIdentity, startRegistry } from '../test/cargo/support.ts';

const identity = new StandInIdentity();
identity.addUser('bench');
const token = identity.issueToken('bench');
const registry = await startRegistry({ identity, dataDir: process.env.WHARF_BENCH_DATA_DIR });
process.stdout.write(`${JSON.stringify({ url: registry.url, token })}\n`);
process.on('SIGTERM', () => void registry.close().then(() => process.exit(0)));
