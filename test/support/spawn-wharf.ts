import { type ChildProcess, spawn } from 'node:child_process';
import { type AddressInfo, createServer } from 'node:net';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '../..');

export interface WharfProcess {
  child: ChildProcess;
  /** http://127.0.0.1:PORT once the server listens. */
  url: string;
  /** The `/metrics` listener's http://127.0.0.1:PORT, when known (see startWharfProcess). */
  metricsUrl: string | undefined;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  stop(): Promise<number | null>;
}

/**
 * Runs `node server/main.ts` (the real program) with `env` on top of a minimal environment, which
 * puts the metrics listener on a free port (tests run several servers on one machine).
 */
export function runWharf(env: Record<string, string>): {
  child: ChildProcess;
  output: () => string;
  exit: Promise<number | null>;
} {
  // The test runner runs on the project's Node (24); spawning it directly (not through npx) means
  // signals reach the server itself and no orphan is left behind when a test stops it.
  const child = spawn(process.execPath, ['server/main.ts'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? '/tmp',
      WHARF_METRICS_PORT: '0',
      ...env,
    },
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => output, exit };
}

const METRICS_LINE = /Metrics listening at (http:\/\/127\.0\.0\.1:\d+)/;

/** A port that was free a moment ago, for a process whose logs are too quiet to announce its own. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts the program on a random loopback port and waits until it listens: it learns the port
 * from the "Server listening" log line, or, with `PORT` given (quiet log levels), polls /healthz.
 * The metrics port comes from the "Metrics listening" line, or from `WHARF_METRICS_PORT` if given.
 */
export async function startWharfProcess(env: Record<string, string>): Promise<WharfProcess> {
  const run = runWharf({ HOST: '127.0.0.1', PORT: '0', ...env });
  const url = await new Promise<string>((resolve, reject) => {
    if (env.PORT && env.PORT !== '0') {
      const candidate = `http://127.0.0.1:${env.PORT}`;
      const poll = async () => {
        for (const deadline = Date.now() + 60_000; Date.now() < deadline && run.child.exitCode === null; ) {
          try {
            if ((await fetch(`${candidate}/healthz`)).ok) return resolve(candidate);
          } catch {}
          await new Promise((wait) => setTimeout(wait, 100));
        }
        reject(new Error(`wharf did not start:\n${run.output()}`));
      };
      void poll();
      return;
    }
    const timer = setTimeout(() => reject(new Error(`wharf did not start:\n${run.output()}`)), 60_000);
    const look = () => {
      const match = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(run.output());
      // main.ts listens on the main port first, so once the metrics line is there both are.
      if (match && METRICS_LINE.test(run.output())) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    };
    run.child.stdout?.on('data', look);
    run.exit.then((code) => {
      clearTimeout(timer);
      reject(new Error(`wharf exited with ${code}:\n${run.output()}`));
    });
  });
  const fixedMetricsPort = env.WHARF_METRICS_PORT && env.WHARF_METRICS_PORT !== '0';
  return {
    child: run.child,
    url,
    metricsUrl: fixedMetricsPort
      ? `http://127.0.0.1:${env.WHARF_METRICS_PORT}`
      : METRICS_LINE.exec(run.output())?.[1],
    output: run.output,
    async stop() {
      if (run.child.exitCode === null) run.child.kill('SIGTERM');
      return run.exit;
    },
  };
}
