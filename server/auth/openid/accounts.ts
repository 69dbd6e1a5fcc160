import type { OpenIdProviderConfig } from '../../config/types.ts';
import { readJson, updateJson } from '../../store/json-doc.ts';
import type { ObjectStore } from '../../store/object-store.ts';
import { accountNameFor, type FederatedUser } from './access.ts';
import type { OpenIdIdentityPort } from './identity-port.ts';
import type { TokenSealer } from './token-sealer.ts';

/**
 * The link between a wharf account and the provider identity that owns it, plus the account's
 * Ktra token sealed at rest. `openid/accounts/<account>.json`.
 *
 * The link is made on the first login and checked on every later one: an account is only ever
 * signed into by the provider subject (`sub`, stable even when a username changes) that created
 * it, so a renamed or recycled IdP username, another provider, or a local password account of the
 * same name can never be taken over.
 */
export interface AccountLink {
  account: string;
  provider: string;
  subject: string;
  identity: string;
  createdAt: string;
  sealedToken?: string;
}

export type MeReply =
  | { username: string; existing_token: string }
  | { username: string; new_token: string; revoked_token: string | null };

export type LinkRefusal = { refused: 'invalid-name' | 'taken'; account: string | null };

export class FederatedAccounts {
  private readonly store: ObjectStore;
  private readonly identity: OpenIdIdentityPort;
  private readonly sealer: TokenSealer;

  constructor(store: ObjectStore, identity: OpenIdIdentityPort, sealer: TokenSealer) {
    this.store = store;
    this.identity = identity;
    this.sealer = sealer;
  }

  /** The account of this federated user, created and linked on first login. */
  async link(
    settings: OpenIdProviderConfig,
    user: FederatedUser,
  ): Promise<{ account: string } | LinkRefusal> {
    const account = accountNameFor(settings, user);
    if (!account) return { refused: 'invalid-name', account: null };
    const existing = (await readJson<AccountLink>(this.store, linkKey(account)))?.value;
    if (existing) {
      if (existing.provider !== user.provider || existing.subject !== user.subject)
        return { refused: 'taken', account };
      // An administrator may have deleted the account; the provider still vouches for this person.
      if (!(await this.identity.userExists(account))) await this.identity.createFederatedUser(account);
      return { account };
    }
    // A local account (password user, bootstrap admin, robot) with that name is never federated.
    if (await this.identity.userExists(account)) return { refused: 'taken', account };
    let ours = false;
    await updateJson<AccountLink>(this.store, linkKey(account), (current) => {
      if (current) {
        ours = current.provider === user.provider && current.subject === user.subject;
        return undefined;
      }
      ours = true;
      return {
        account,
        provider: user.provider,
        subject: user.subject,
        identity: user.identity,
        createdAt: new Date().toISOString(),
      };
    });
    if (!ours) return { refused: 'taken', account };
    if (!(await this.identity.userExists(account))) await this.identity.createFederatedUser(account);
    return { account };
  }

  /** Ktra's `/me`: the existing token when it is still active, else a first one. */
  async me(account: string, username: string): Promise<MeReply> {
    const current = await this.activeToken(account);
    if (current) return { username, existing_token: current };
    return { username, new_token: await this.issue(account), revoked_token: null };
  }

  /** Ktra's `/replace_token`: a new token; the previous one stops working before this returns. */
  async replace(account: string, username: string): Promise<MeReply> {
    const previous = await this.activeToken(account);
    const next = await this.issue(account);
    return { username, new_token: next, revoked_token: previous };
  }

  private async activeToken(account: string): Promise<string | null> {
    const sealed = (await readJson<AccountLink>(this.store, linkKey(account)))?.value.sealedToken;
    const token = sealed ? this.sealer.open(account, sealed) : null;
    return token && (await this.identity.isActiveKtraToken(account, token)) ? token : null;
  }

  private async issue(account: string): Promise<string> {
    const token = await this.identity.issueKtraToken(account);
    const sealedToken = this.sealer.seal(account, token);
    await updateJson<AccountLink>(this.store, linkKey(account), (link) =>
      link ? { ...link, sealedToken } : undefined,
    );
    return token;
  }
}

const linkKey = (account: string) => `openid/accounts/${account}.json`;
