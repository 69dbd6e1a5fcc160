// The chart's pre-delete hook (templates/cleanup-hook.yaml): deletes the wharf custom resources the
// operator manages and waits until the operator has finalized them (its finalizers release buckets
// and claims per deletionPolicy), so `helm uninstall` never leaves a resource with a finalizer that
// no operator will remove. Runs in the wharf image with nothing but Node: in-cluster credentials,
// node:https. Exits 1 naming what is left when the operator does not finish in time.
import { readFileSync } from 'node:fs';
import { request } from 'node:https';

const ACCOUNT = '/var/run/secrets/kubernetes.io/serviceaccount';
const namespace = process.env.WHARF_WATCH_NAMESPACE ?? '';
const timeoutMs = Number(process.env.WHARF_CLEANUP_TIMEOUT_SECONDS ?? '240') * 1000;
const host = process.env.KUBERNETES_SERVICE_HOST;
const port = process.env.KUBERNETES_SERVICE_PORT ?? '443';
// Registries first: they name an AuthService, which names OpenIdProviders.
const PLURALS = ['registries', 'authservices', 'openidproviders'];

const token = readFileSync(`${ACCOUNT}/token`, 'utf8').trim();
const ca = readFileSync(`${ACCOUNT}/ca.crt`);

function call(method, path) {
  return new Promise((resolve, reject) => {
    const req = request(
      { host, port, path, method, ca, headers: { authorization: `Bearer ${token}`, accept: 'application/json' } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => (body += chunk));
        res.on('end', () => {
          // Gone already, or its CRD is (then there is nothing of that kind to wait for).
          if (res.statusCode === 404) return resolve(method === 'GET' ? { items: [] } : undefined);
          if (res.statusCode >= 300) return reject(new Error(`${method} ${path}: ${res.statusCode} ${body}`));
          resolve(JSON.parse(body));
        });
      },
    );
    req.on('error', reject);
    req.end();
  });
}

const collection = (plural) =>
  `/apis/wharf.dev/v1alpha1${namespace ? `/namespaces/${namespace}` : ''}/${plural}`;
const name = (plural, item) => `${plural}/${item.metadata.namespace}/${item.metadata.name}`;

const deadline = Date.now() + timeoutMs;
for (const plural of PLURALS) {
  const { items } = await call('GET', collection(plural));
  for (const item of items) {
    if (!item.metadata.deletionTimestamp) {
      await call('DELETE', `/apis/wharf.dev/v1alpha1/namespaces/${item.metadata.namespace}/${plural}/${item.metadata.name}`);
      console.log(`deleted ${name(plural, item)}`);
    }
  }
  for (;;) {
    const left = (await call('GET', collection(plural))).items;
    if (left.length === 0) break;
    if (Date.now() > deadline) {
      const stuck = left.map((item) => `${name(plural, item)} (finalizers: ${(item.metadata.finalizers ?? []).join(', ')})`);
      console.error(`the operator did not finalize in time: ${stuck.join('; ')}; is it running? (kubectl logs)`);
      process.exit(1);
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  console.log(`no ${plural} left`);
}
