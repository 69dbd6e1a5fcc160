/**
 * The operator program: `node operator/main.ts`. Settings come from the environment (the Helm chart
 * sets them); the kubeconfig from KUBECONFIG, ~/.kube/config or the in-cluster service account.
 */
import { hostname } from 'node:os';
import { pino } from 'pino';
import { KubeClient } from './kube/client.ts';
import { Manager } from './manager.ts';

const env = process.env;
const number = (name: string, fallback: number) => {
  const value = env[name];
  if (value === undefined || value === '') return fallback;
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed < 0) {
    process.stderr.write(
      `wharf-operator: ${name} must be a non-negative number, got ${JSON.stringify(value)}\n`,
    );
    process.exit(2);
  }
  return parsed;
};

const log = pino({ name: 'wharf-operator', level: env.WHARF_OPERATOR_LOG_LEVEL ?? 'info' });
const podNamespace = env.POD_NAMESPACE ?? env.WHARF_OPERATOR_NAMESPACE ?? 'wharf-system';
const leaderElect = !/^(0|false|no|off)$/i.test(env.WHARF_LEADER_ELECT ?? 'true');

const manager = new Manager({
  client: KubeClient.fromDefault(),
  log,
  watchNamespace: env.WHARF_WATCH_NAMESPACE || undefined,
  defaultImage: env.WHARF_IMAGE ?? 'ghcr.io/wharf-dev/wharf:0.1.0',
  resyncSeconds: number('WHARF_RESYNC_SECONDS', 300),
  externalRecheckSeconds: number('WHARF_EXTERNAL_RECHECK_SECONDS', 300),
  host: env.WHARF_OPERATOR_HOST ?? '0.0.0.0',
  port: number('WHARF_OPERATOR_PORT', 8081),
  ...(leaderElect
    ? {
        leaderElection: {
          namespace: podNamespace,
          name: env.WHARF_LEASE_NAME ?? 'wharf-operator',
          identity: env.POD_NAME ?? `${hostname()}-${process.pid}`,
          leaseDurationSeconds: number('WHARF_LEASE_DURATION_SECONDS', 15),
          renewDeadlineSeconds: number('WHARF_RENEW_DEADLINE_SECONDS', 10),
          retryPeriodSeconds: number('WHARF_RETRY_PERIOD_SECONDS', 2),
        },
      }
    : {}),
});

await manager.start();
log.info({ port: manager.port, leaderElect }, 'wharf-operator started');

let stopping = false;
const stop = (signal: string) => {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, 'shutting down');
  const timer = setTimeout(() => process.exit(1), 25_000);
  timer.unref();
  manager.stop().then(
    () => process.exit(0),
    (error: unknown) => {
      log.error({ err: error }, 'shutdown failed');
      process.exit(1);
    },
  );
};
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
