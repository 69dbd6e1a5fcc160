import { isIP } from 'node:net';
import type { FastifyRequest } from 'fastify';

/**
 * Which peers may speak for the client through `X-Forwarded-For`, `-Proto` and `-Host`: the
 * addresses and CIDRs of `trustedProxies` (an Ingress controller, a load balancer), nobody else.
 * Fastify's `trustProxy` applies exactly this rule to `request.ip`, `request.protocol` and
 * `request.host` (it reads the forwarded headers only when the socket's peer is trusted), so the two
 * functions below are the only places that read the client's address and the public URL.
 */
export function trustProxyOption(trustedProxies: readonly string[]): false | string[] {
  return trustedProxies.length === 0 ? false : [...trustedProxies];
}

/** proxy-addr's named ranges, accepted as entries of `trustedProxies`. */
const NAMED_RANGES = new Set(['loopback', 'linklocal', 'uniquelocal']);

/** Whether an entry of `trustedProxies` is an address, a CIDR (`10.0.0.0/8`) or a named range. */
export function isTrustedProxyEntry(entry: string): boolean {
  if (NAMED_RANGES.has(entry)) return true;
  const [address = '', bits, ...rest] = entry.split('/');
  const family = isIP(address);
  if (family === 0 || rest.length > 0) return false;
  if (bits === undefined) return true;
  if (!/^\d{1,3}$/.test(bits)) return false;
  return Number(bits) <= (family === 4 ? 32 : 128);
}

/**
 * The end user's address: the peer itself, or, when the peer is a trusted proxy, the last address in
 * `X-Forwarded-For` that is not a trusted proxy (what the proxy nearest to us saw). Rate limits and
 * audit lines use this.
 */
export function clientAddress(request: FastifyRequest): string {
  return request.ip;
}

/**
 * The address that the peer behind `clientAddress(request)` says it is serving: the entry of
 * `X-Forwarded-For` just before that peer's hop (the last one it wrote, when no trusted proxy
 * stands between us). Only for callers trusted to relay it (RestAuth services with
 * `forwardsClientAddress`); from anyone else the header means nothing. Undefined when absent or not
 * an IP address.
 */
export function relayedClientAddress(request: FastifyRequest): string | undefined {
  const header = request.headers['x-forwarded-for'];
  const entries = (Array.isArray(header) ? header.join(',') : (header ?? ''))
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);
  // request.ips (with trusted proxies only) is [socket, …, the peer]: every hop after the first was
  // appended to the header by a trusted proxy, so the peer's own entry sits that far from the end.
  const trustedHops = (request.ips?.length ?? 1) - 1;
  const relayed = entries[entries.length - 1 - trustedHops];
  return relayed && isIP(relayed) ? relayed : undefined;
}

/**
 * The URL clients reach this server at: `publicUrl` when configured, else the scheme and host the
 * request arrived with (`X-Forwarded-Proto`/`-Host` count only from trusted proxies). config.json,
 * the token realm and the /me pages are built from it. No trailing slash.
 */
export function publicBaseUrl(publicUrl: string | undefined, request: FastifyRequest): string {
  if (publicUrl) return publicUrl.replace(/\/+$/, '');
  return `${request.protocol}://${request.host}`;
}

/** Whether a listen address reaches only this machine (then a Host-derived public URL is harmless). */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}
