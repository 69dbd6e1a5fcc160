/**
 * A tiny ingress controller for tests, built FROM an Ingress object: it matches the Host header to a
 * rule and the path to the longest `Prefix` (element-wise, as the Ingress spec defines it), then
 * forwards to the backend Service's address, with the X-Forwarded-* headers ingress-nginx adds.
 */
import { createServer, request, type Server } from 'node:http';
import type { KubernetesObject } from '@kubernetes/client-node';
import { IDENTITY_PATHS } from '../../operator/reconcile/desired.ts';

export type IngressObject = KubernetesObject & {
  spec: {
    rules: {
      host?: string;
      http: {
        paths: {
          path: string;
          pathType: string;
          backend: { service: { name: string; port: { name?: string; number?: number } } };
        }[];
      };
    }[];
  };
};

/** Ingress `Prefix` matching: `/foo` matches `/foo` and `/foo/bar`, not `/foobar`. */
export function prefixMatches(prefix: string, requestPath: string): boolean {
  if (prefix === '/') return true;
  const trimmed = prefix.replace(/\/$/, '');
  return requestPath === trimmed || requestPath.startsWith(`${trimmed}/`);
}

/** The backend Service name for a host and path, or undefined (404). */
export function route(ingress: IngressObject, host: string, requestPath: string): string | undefined {
  const rule = ingress.spec.rules.find((item) => !item.host || item.host === host);
  let best: { length: number; service: string } | undefined;
  for (const candidate of rule?.http.paths ?? []) {
    const matches =
      candidate.pathType === 'Exact'
        ? candidate.path === requestPath
        : prefixMatches(candidate.path, requestPath);
    if (matches && (!best || candidate.path.length > best.length))
      best = { length: candidate.path.length, service: candidate.backend.service.name };
  }
  return best?.service;
}

export async function startIngressProxy(
  ingresses: IngressObject[],
  services: Record<string, { host: string; port: number }>,
  listen: { host: string; port: number },
): Promise<{ server: Server; hits: Map<string, number>; close: () => Promise<void> }> {
  const hits = new Map<string, number>();
  const server = createServer((incoming, outgoing) => {
    const host = (incoming.headers.host ?? '').replace(/:\d+$/, '');
    const requestPath = (incoming.url ?? '/').split('?')[0]!;
    const service = ingresses.map((ingress) => route(ingress, host, requestPath)).find(Boolean);
    const target = service ? services[service] : undefined;
    if (!service || !target) {
      outgoing.writeHead(404, { 'content-type': 'text/plain' }).end('no ingress rule\n');
      return;
    }
    hits.set(service, (hits.get(service) ?? 0) + 1);
    const upstream = request(
      {
        host: target.host,
        port: target.port,
        // From the controller's own address, as a controller pod's connections come from its pod IP.
        localAddress: listen.host,
        method: incoming.method,
        path: incoming.url,
        headers: {
          ...incoming.headers,
          'x-forwarded-for': incoming.socket.remoteAddress ?? '',
          'x-forwarded-host': incoming.headers.host ?? '',
          'x-forwarded-proto': 'http',
        },
      },
      (response) => {
        outgoing.writeHead(response.statusCode ?? 502, response.headers);
        response.pipe(outgoing);
      },
    );
    upstream.on('error', () => outgoing.writeHead(502).end());
    incoming.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(listen.port, listen.host, resolve));
  return { server, hits, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

/**
 * The Ingress the operator makes for a Registry (operator/reconcile/desired.ts, registryObjects):
 * its identity paths to the AuthService's Service, everything else to the Registry's. Built from the
 * operator's own list, so a test through it sees what a cluster would route.
 */
export function registryIngress(services: { registry: string; auth: string }): IngressObject {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name: services.registry },
    spec: {
      rules: [
        {
          http: {
            paths: [
              ...IDENTITY_PATHS.map((path) => ({ path, service: services.auth })),
              { path: '/', service: services.registry },
            ].map(({ path, service }) => ({
              path,
              pathType: 'Prefix',
              backend: { service: { name: service, port: { name: 'http' } } },
            })),
          },
        },
      ],
    },
  };
}
