import { createHash, randomBytes } from 'node:crypto';
import type { OpenIdIdentityPort } from '../../server/auth/openid/identity-port.ts';
import { readJson, updateJson } from '../../server/store/json-doc.ts';
import type { ObjectStore } from '../../server/store/object-store.ts';

/**
 * INTERIM: a store-backed stand-in for the AuthService's user directory, used only until the
 * identity branch lands in main; then the tests run on the real AuthService. It keeps the same
 * rules that matter here: one active Ktra token per user, tokens stored as SHA-256 only.
 */
export class InterimIdentity implements OpenIdIdentityPort {
  private readonly store: ObjectStore;
  constructor(store: ObjectStore) {
    this.store = store;
  }
  async userExists(account: string) {
    return (await this.store.head(`interim/users/${account}.json`)) !== null;
  }
  async createFederatedUser(account: string) {
    await updateJson(this.store, `interim/users/${account}.json`, (current) => current ?? { ktraHash: null });
  }
  async issueKtraToken(account: string) {
    const token = `wharf_${randomBytes(32).toString('base64url')}`;
    const ktraHash = createHash('sha256').update(token).digest('hex');
    await updateJson(this.store, `interim/users/${account}.json`, () => ({ ktraHash }));
    return token;
  }
  async isActiveKtraToken(account: string, token: string) {
    const user = await readJson<{ ktraHash: string | null }>(this.store, `interim/users/${account}.json`);
    return user?.value.ktraHash === createHash('sha256').update(token).digest('hex');
  }
  /** What a registry's token check answers: the account owning this token, or null. */
  async accountOfToken(token: string): Promise<string | null> {
    const hash = createHash('sha256').update(token).digest('hex');
    const page = await this.store.list({ prefix: 'interim/users/' });
    for (const object of page.objects) {
      const user = await readJson<{ ktraHash: string | null }>(this.store, object.key);
      if (user?.value.ktraHash === hash) return object.key.slice('interim/users/'.length, -'.json'.length);
    }
    return null;
  }
}
