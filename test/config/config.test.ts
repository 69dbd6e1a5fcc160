import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../server/config/load.ts';
import { startServer } from '../support/wharf.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'wharf-config-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('configuration', () => {
  it('runs every role on the filesystem store on port 8080 when nothing is configured', () => {
    const config = loadConfig({ argv: [], env: {} });
    expect(config.roles).toEqual(['auth', 'registry']);
    expect(config.port).toBe(8080);
    expect(config.store).toMatchObject({ driver: 'fs', dataDir: './data' });
    expect(config.auth.bcryptCost).toBeGreaterThanOrEqual(10);
    expect(config.auth.signup).toBe('admin');
  });

  it('reads a YAML file given by --config and lets the environment override it', async () => {
    const file = path.join(dir, 'wharf.yaml');
    await writeFile(file, 'port: 9000\nstore:\n  dataDir: /var/lib/wharf\nauth:\n  signup: open\n');
    const config = loadConfig({ argv: ['--config', file], env: { PORT: '9100' } });
    expect(config.port).toBe(9100);
    expect(config.store.dataDir).toBe('/var/lib/wharf');
    expect(config.auth.signup).toBe('open');
    expect(loadConfig({ argv: [], env: { WHARF_CONFIG: file } }).port).toBe(9000);
  });

  it.each([
    [{ PORT: 'eighty' }, /PORT must be an integer/],
    [{ PORT: '70000' }, /"port" \(PORT\)/],
    [{ WHARF_SIGNUP: 'maybe' }, /"auth.signup" \(WHARF_SIGNUP\) must be one of "admin", "open", "disabled"/],
    [{ WHARF_BCRYPT_COST: '4' }, /"auth.bcryptCost" \(WHARF_BCRYPT_COST\)/],
    [{ WHARF_STORE: 's3' }, /"store.s3.bucket" \(WHARF_S3_BUCKET\) is required/],
    [{ WHARF_ROLES: 'registry' }, /"registry.authUrl" \(WHARF_AUTH_URL\) is required/],
    [{ WHARF_ROLES: 'auth,billing' }, /"roles.1" \(WHARF_ROLES\) must be one of "auth", "registry"/],
    [{ WHARF_S3_FORCE_PATH_STYLE: 'perhaps' }, /WHARF_S3_FORCE_PATH_STYLE must be true or false/],
  ])('names the wrong setting %j', (env, message) => {
    expect(() => loadConfig({ argv: [], env })).toThrow(ConfigError);
    expect(() => loadConfig({ argv: [], env })).toThrow(message);
  });

  it('limits password guessing by default, and keeps the former perUser setting working as perAccount', async () => {
    expect(loadConfig({ argv: [], env: {} }).auth.rateLimit).toEqual({
      perAccountAndAddress: 10,
      perAccount: 50,
      perAddress: 100,
      windowSeconds: 900,
    });
    const file = path.join(dir, 'old-limits.yaml');
    await writeFile(file, 'auth:\n  rateLimit:\n    perUser: 7\n    windowSeconds: 60\n');
    expect(loadConfig({ argv: ['--config', file], env: {} }).auth.rateLimit).toMatchObject({
      perAccount: 7,
      windowSeconds: 60,
    });
    expect(loadConfig({ argv: [], env: { WHARF_RATE_LIMIT_PER_USER: '8' } }).auth.rateLimit.perAccount).toBe(
      8,
    );
    expect(() =>
      loadConfig({ argv: ['--config', file], env: { WHARF_RATE_LIMIT_PER_ACCOUNT: '9' } }),
    ).toThrow(
      'configuration settings "auth.rateLimit.perUser" and "auth.rateLimit.perAccount" (WHARF_RATE_LIMIT_PER_ACCOUNT) are both set: perUser is the deprecated name of perAccount, keep only perAccount',
    );
    // The auth role says so at start-up.
    const server = await startServer({ roles: ['auth'], auth: { rateLimit: { perUser: 7 } } });
    try {
      expect(server.logs()).toContain('auth.rateLimit.perUser (WHARF_RATE_LIMIT_PER_USER) is deprecated');
    } finally {
      await server.stop();
    }
  });

  it('names an unknown setting in the file, and the file', async () => {
    const file = path.join(dir, 'typo.yaml');
    await writeFile(file, 'store:\n  datadir: /tmp/x\n');
    expect(() => loadConfig({ argv: [`--config=${file}`], env: {} })).toThrow(
      `configuration setting "store.datadir" (in ${file}) is not a known setting`,
    );
  });

  it('reads secrets from files', async () => {
    const secret = path.join(dir, 'admin-password');
    await writeFile(secret, 'correct horse battery staple\n');
    const config = loadConfig({ argv: [], env: { WHARF_ADMIN_PASSWORD_FILE: secret } });
    expect(config.auth.adminPassword).toBe('correct horse battery staple');
    expect(() =>
      loadConfig({ argv: [], env: { WHARF_ADMIN_PASSWORD_FILE: path.join(dir, 'nope') } }),
    ).toThrow(/"auth.adminPasswordFile": cannot read/);
  });

  it('stops the program with exit code 2 and the setting named on stderr', async () => {
    const { code, stderr } = await run(['server/main.ts'], { WHARF_LOG_LEVEL: 'loud' });
    expect(code).toBe(2);
    expect(stderr).toContain('"logLevel" (WHARF_LOG_LEVEL) must be one of');
  });
});

function run(args: string[], env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stderr }));
  });
}
