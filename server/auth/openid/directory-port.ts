import type { CredentialRef, Principal } from '../../identity/principal.ts';
import type { OpenIdIdentityPort } from './identity-port.ts';

/**
 * The user directory methods OpenID login uses (server/identity/directory.ts), typed by shape so
 * that this adapter stays a thin translation.
 */
interface UserLike {
  name: string;
  disabled: boolean;
}

export interface DirectoryForOpenId {
  getUser(name: string): Promise<UserLike | null>;
  createUser(name: string, password: string | null): Promise<unknown>;
  issueToken(name: string, options: { kind: 'ktra' }): Promise<{ token: string } | null>;
  checkToken(token: string): Promise<{ user: { name: string }; entry: { kind: string } } | null>;
  /** Gets back the record getUser returned (method parameters are bivariant: UserRecord fits). */
  principalFor(user: UserLike, credential: CredentialRef, scopes: null): Promise<Principal>;
}

/** OpenID login on the AuthService's user directory: federated users have no password. */
export function directoryIdentity(directory: DirectoryForOpenId): OpenIdIdentityPort {
  return {
    userExists: async (account) => (await directory.getUser(account)) !== null,
    async createFederatedUser(account) {
      try {
        await directory.createUser(account, null);
      } catch (error) {
        // Created at the same moment by this person's other sign-in: the outcome we wanted.
        if ((error as { reason?: string }).reason !== 'exists') throw error;
      }
    },
    async issueKtraToken(account) {
      const issued = await directory.issueToken(account, { kind: 'ktra' });
      if (!issued) throw new Error(`account ${account} disappeared while its token was issued`);
      return issued.token;
    },
    async principalOf(account) {
      const user = await directory.getUser(account);
      return user && !user.disabled
        ? directory.principalFor(user, { type: 'account', user: user.name }, null)
        : null;
    },
    async isActiveKtraToken(account, token) {
      const found = await directory.checkToken(token);
      return found !== null && found.user.name === account && found.entry.kind === 'ktra';
    },
  };
}
