import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { CredentialRef, Principal } from '../../identity/principal.ts';
import { createJson, readJson } from '../../store/json-doc.ts';
import type { ObjectStore } from '../../store/object-store.ts';
import { keys } from './names.ts';
import { listAll } from './storage/manifests.ts';

/** A robot account (`namespace+name`): token only, for CI. Only the token's SHA-256 is stored. */
export interface Robot {
  namespace: string;
  name: string;
  description: string;
  tokenSha256: string;
  createdAt: string;
}

export const ROBOT_NAME = /^[a-z][a-z0-9_]{1,254}$/;

export function robotFullName(namespace: string, name: string): string {
  return `${namespace}+${name}`;
}

export class RobotStore {
  private readonly store: ObjectStore;
  constructor(store: ObjectStore) {
    this.store = store;
  }

  /** Creates a robot and returns its token (shown once); null when the name is taken. */
  async create(
    namespace: string,
    name: string,
    description = '',
  ): Promise<{ robot: Robot; token: string } | null> {
    const token = randomBytes(32).toString('base64url');
    const robot: Robot = {
      namespace,
      name,
      description,
      tokenSha256: sha256(token),
      createdAt: new Date().toISOString(),
    };
    return (await createJson(this.store, keys.robot(namespace, name), robot)) ? { robot, token } : null;
  }

  async get(namespace: string, name: string): Promise<Robot | null> {
    return (await readJson<Robot>(this.store, keys.robot(namespace, name)))?.value ?? null;
  }

  async list(namespace: string): Promise<Robot[]> {
    const robots: Robot[] = [];
    for (const file of await listAll(this.store, keys.robotsPrefix(namespace))) {
      const robot = await this.get(namespace, file.replace(/\.json$/, ''));
      if (robot) robots.push(robot);
    }
    return robots;
  }

  async delete(namespace: string, name: string): Promise<boolean> {
    if (!(await this.get(namespace, name))) return false;
    await this.store.delete(keys.robot(namespace, name));
    return true;
  }

  /** Checks `namespace+name` with its token, in constant time. */
  async verify(fullName: string, token: string): Promise<Principal | null> {
    const robot = await this.byFullName(fullName);
    if (!robot) return null;
    const expected = Buffer.from(robot.tokenSha256, 'hex');
    const actual = Buffer.from(sha256(token), 'hex');
    return timingSafeEqual(expected, actual) ? principalOf(fullName, robot) : null;
  }

  /** The robot still exists and still has the token it was checked with (not regenerated). */
  async revalidate(credential: Extract<CredentialRef, { type: 'robot' }>): Promise<Principal | null> {
    const robot = await this.byFullName(credential.name);
    return robot?.tokenSha256.startsWith(credential.tokenDigest) ? principalOf(credential.name, robot) : null;
  }

  private async byFullName(fullName: string): Promise<Robot | null> {
    const plus = fullName.indexOf('+');
    if (plus <= 0) return null;
    const namespace = fullName.slice(0, plus);
    const name = fullName.slice(plus + 1);
    if (!ROBOT_NAME.test(name) || !/^[a-z0-9][a-z0-9._-]*$/.test(namespace)) return null;
    return this.get(namespace, name);
  }
}

function principalOf(fullName: string, robot: Robot): Principal {
  return {
    kind: 'robot',
    name: fullName,
    groups: [],
    scopes: null,
    via: 'token',
    admin: false,
    credential: { type: 'robot', name: fullName, tokenDigest: robot.tokenSha256.slice(0, 16) },
  };
}

function sha256(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}
