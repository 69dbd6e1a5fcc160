import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isAuthorized } from '../../server/auth/openid/access.ts';
import { TokenSealer } from '../../server/auth/openid/token-sealer.ts';
import { loadConfig, validateConfig } from '../../server/config/load.ts';

const key = randomBytes(32).toString('base64');
const provider = {
  name: 'gitlab',
  issuerUrl: 'https://gitlab.example.com',
  clientId: 'client',
  clientSecret: 'secret',
};

describe('OpenID settings', () => {
  it('fills the defaults: GitLab-like claims, profile and email scopes, redirect base from publicUrl', () => {
    const config = validateConfig({
      publicUrl: 'https://crates.example.com',
      openid: { tokenEncryptionKey: key, providers: [provider] },
    });
    expect(config.openid.providers[0]).toMatchObject({
      usernameClaim: 'preferred_username',
      groupsClaim: 'groups',
      additionalScopes: ['profile', 'email'],
      authorizedGroups: [],
      authorizedUsers: [],
      redirectBaseUrl: 'https://crates.example.com',
      allowInsecureRequests: false,
    });
    expect(config.openid.sessionSeconds).toBe(28800);
  });

  it.each([
    [
      { openid: { providers: [provider] }, publicUrl: 'https://x.example' },
      /"openid.tokenEncryptionKey".*required/,
    ],
    [
      { openid: { tokenEncryptionKey: key, providers: [provider] } },
      /"openid.providers\[0\] \(gitlab\).redirectBaseUrl" is required/,
    ],
    [
      {
        publicUrl: 'https://x.example',
        openid: { tokenEncryptionKey: key, providers: [{ ...provider, clientSecret: undefined }] },
      },
      /"openid.providers\[0\] \(gitlab\)" needs clientSecret or clientSecretFile/,
    ],
    [
      {
        publicUrl: 'https://x.example',
        openid: { tokenEncryptionKey: key, providers: [provider, provider] },
      },
      /"openid.providers\[1\] \(gitlab\).name" is used twice/,
    ],
    [{ openid: { providers: [{ ...provider, name: 'Git Lab' }] } }, /openid.providers.0.name/],
  ])('refuses %j', (raw, message) => {
    expect(() => validateConfig(raw)).toThrow(message);
  });

  it('reads the client secret and the token key from files (Kubernetes Secrets)', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'wharf-openid-'));
    try {
      await writeFile(path.join(dir, 'secret'), 'from-file\n');
      await writeFile(path.join(dir, 'key'), `${key}\n`);
      const file = path.join(dir, 'wharf.yaml');
      await writeFile(
        file,
        JSON.stringify({
          publicUrl: 'https://x.example',
          openid: {
            providers: [{ ...provider, clientSecret: undefined, clientSecretFile: path.join(dir, 'secret') }],
          },
        }),
      );
      const config = loadConfig({
        argv: ['--config', file],
        env: { WHARF_OPENID_TOKEN_KEY_FILE: path.join(dir, 'key') },
      });
      expect(config.openid.providers[0]!.clientSecret).toBe('from-file');
      expect(config.openid.tokenEncryptionKey).toBe(key);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('allow-lists (Ktra rule)', () => {
  const settings = validateConfig({
    publicUrl: 'https://x.example',
    openid: {
      tokenEncryptionKey: key,
      providers: [{ ...provider, authorizedGroups: ['firm/crate_owners'], authorizedUsers: ['Gagbo'] }],
    },
  }).openid.providers[0]!;
  const user = (identity: string, groups: string[]) => ({
    provider: 'gitlab',
    subject: '1',
    identity,
    groups,
  });

  it('admits listed users (any case) and members of any listed group, and nobody else', () => {
    expect(isAuthorized(settings, user('gagbo', []))).toBe(true);
    expect(isAuthorized(settings, user('someone', ['firm', 'firm/crate_owners']))).toBe(true);
    expect(isAuthorized(settings, user('someone', ['firm', 'firm/crate_owners/sub']))).toBe(false);
    expect(isAuthorized(settings, user('someone', []))).toBe(false);
  });

  it('admits everyone when both lists are empty', () => {
    expect(isAuthorized({ ...settings, authorizedGroups: [], authorizedUsers: [] }, user('anyone', []))).toBe(
      true,
    );
  });
});

describe('sealed tokens', () => {
  it('open only for the account they were sealed for, and only with the same key', () => {
    const sealer = new TokenSealer(key);
    const sealed = sealer.seal('alice', 'wharf_secret-token');
    expect(sealed).not.toContain('secret-token');
    expect(sealer.open('alice', sealed)).toBe('wharf_secret-token');
    expect(sealer.open('mallory', sealed)).toBeNull();
    expect(new TokenSealer(randomBytes(32).toString('hex')).open('alice', sealed)).toBeNull();
  });

  it('refuses a key that is not 32 bytes', () => {
    expect(() => new TokenSealer(randomBytes(16).toString('base64').repeat(2))).toThrow(/32 bytes/);
  });
});
