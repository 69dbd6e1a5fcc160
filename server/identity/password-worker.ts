import { parentPort } from 'node:worker_threads';
import bcrypt from 'bcryptjs';

/**
 * One thread of the password pool (password-pool.ts): runs bcrypt synchronously, one job at a time,
 * so the server's event loop never does. Inputs arrive already prepared (long passwords pre-hashed).
 */
export type PasswordJob =
  | { id: number; op: 'hash'; input: string; cost: number }
  | { id: number; op: 'verify'; input: string; hash: string };

export type PasswordAnswer = { id: number; result: string | boolean } | { id: number; error: string };

parentPort?.on('message', (job: PasswordJob) => {
  try {
    const result =
      job.op === 'hash' ? bcrypt.hashSync(job.input, job.cost) : bcrypt.compareSync(job.input, job.hash);
    parentPort?.postMessage({ id: job.id, result } satisfies PasswordAnswer);
  } catch (error) {
    // A malformed stored hash, say: the caller's promise fails, the thread lives on.
    parentPort?.postMessage({ id: job.id, error: (error as Error).message } satisfies PasswordAnswer);
  }
});

parentPort?.postMessage('ready');
