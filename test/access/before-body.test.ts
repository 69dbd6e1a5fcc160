import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../support/wharf.ts';

/**
 * Credentials are checked before a body is read: an anonymous `cargo publish` of 10 MiB, or one with
 * a revoked token, is answered at once while the client is still sending, and the connection is
 * closed (nothing buffered). Found: 20 unfinished anonymous publishes took the server from 114 to
 * 360 MB, because the whole body was read before the token was looked at.
 */
describe('credentials before the body', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer({ logLevel: 'warn', auth: { bcryptCost: 10 } });
  });
  afterAll(async () => server?.stop());

  /** Sends headers announcing `length` bytes and only the first kilobyte, then waits for an answer. */
  function partialUpload(
    path: string,
    length: number,
    headers: Record<string, string>,
    method = 'PUT',
  ): Promise<string> {
    const url = new URL(server.url);
    return new Promise((resolve, reject) => {
      const socket = connect(Number(url.port), url.hostname);
      let answer = '';
      socket.on('data', (chunk) => {
        answer += chunk.toString('latin1');
      });
      socket.on('close', () => resolve(answer));
      socket.on('error', reject);
      const lines = [
        `${method} ${path} HTTP/1.1`,
        `Host: ${url.host}`,
        `Content-Length: ${length}`,
        ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
        '',
        '',
      ];
      socket.write(lines.join('\r\n'));
      socket.write(Buffer.alloc(1024));
      // The rest never comes: only an answer given before the body was read can arrive.
    });
  }

  it('an anonymous publish is refused with 401 before its body, and the connection closed', async () => {
    const answer = await partialUpload('/api/v1/crates/new', 10 * 1024 * 1024, {});
    expect(answer).toMatch(/^HTTP\/1\.1 401 /);
    expect(answer.toLowerCase()).toContain('connection: close');
    expect(answer).toContain('www-authenticate: Cargo login_url=');
    expect(answer).toContain('{"errors":[{"detail":');
  });

  it('a publish with an invalid token is refused with 403 before its body', async () => {
    const answer = await partialUpload('/api/v1/crates/new', 10 * 1024 * 1024, {
      Authorization: 'wharf_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
    });
    expect(answer).toMatch(/^HTTP\/1\.1 403 /);
    expect(answer).toContain('invalid, expired or revoked');
  });

  it('the token API refuses an anonymous body before reading it', async () => {
    const answer = await partialUpload(
      '/auth/api/v1/tokens',
      1024 * 1024,
      { 'Content-Type': 'application/json' },
      'POST',
    );
    expect(answer).toMatch(/^HTTP\/1\.1 401 /);
  });

  it('API v1 refuses HTTP Basic before reading the body', async () => {
    const answer = await partialUpload('/api/v1/repository/a/b', 1024 * 1024, {
      'Content-Type': 'application/json',
      Authorization: `Basic ${Buffer.from('a:b').toString('base64')}`,
    });
    expect(answer).toMatch(/^HTTP\/1\.1 401 /);
  });
});
