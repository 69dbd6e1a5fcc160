import { request } from 'node:http';

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  body: unknown;
}

/**
 * An HTTP request whose socket is bound to `from`, a loopback address of our choosing (Linux
 * routes all of 127.0.0.0/8 to lo): the server sees a real peer address, no header involved, so
 * tests can play an attacker and a user on different addresses. A fresh connection each time.
 */
export function requestFrom(
  from: string,
  url: string,
  {
    method = 'GET',
    headers = {},
    json,
    form,
  }: {
    method?: string;
    headers?: Record<string, string>;
    json?: unknown;
    form?: Record<string, string>;
  } = {},
): Promise<Answer> {
  const body =
    json !== undefined ? JSON.stringify(json) : form ? new URLSearchParams(form).toString() : undefined;
  const contentType =
    json !== undefined ? 'application/json' : form ? 'application/x-www-form-urlencoded' : undefined;
  return new Promise((resolve, reject) => {
    const outgoing = request(
      url,
      {
        method,
        localAddress: from,
        agent: false,
        headers: {
          ...headers,
          ...(contentType ? { 'content-type': contentType } : {}),
          ...(body !== undefined ? { 'content-length': String(Buffer.byteLength(body)) } : {}),
        },
      },
      (incoming) => {
        const chunks: Buffer[] = [];
        incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
        incoming.on('error', reject);
        incoming.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {}
          resolve({ status: incoming.statusCode ?? 0, headers: incoming.headers, text, body: parsed });
        });
      },
    );
    outgoing.on('error', reject);
    outgoing.end(body);
  });
}

export function basicAuth(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
}
