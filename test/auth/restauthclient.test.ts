import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basic, call, type RunningServer, startServer } from '../support/auth-server.ts';
import { toolPath } from '../support/tools.ts';

/**
 * The released RestAuth client library (RestAuthClient 0.6.2 + RestAuthCommon 0.7.0 from PyPI,
 * under Python 3.6, hack/restauthclient.sh) against a real wharf over a socket, through every
 * operation a wiki or chat server uses. A service on `restauth-0.6` must see what the released
 * RestAuth 0.6.4 server would give it (reference/restauth-0.6-observed.md); each row says what the
 * library returned or raised.
 */

const DRIVER = fileURLToPath(new URL('./restauthclient/drive.py', import.meta.url));
const WIKI_PASSWORD = 'wiki-service-password-0123';
const FORM = 'application/x-www-form-urlencoded';

type Report = { result?: unknown; error?: string; status?: number; type?: string | null };
type Row = [label: string, operation: Record<string, unknown>, expected: Report];

describe('the released RestAuth client library (restauthclient 0.6.2) against wharf', () => {
  let server: RunningServer;
  let python: string;

  beforeAll(async () => {
    python = await toolPath('restauthclient');
    server = await startServer({
      auth: {
        restauth: { pathPrefix: '' },
        // Low enough that the throttle row below reaches it.
        rateLimit: { perAccountAndAddress: 4 },
        services: [
          {
            name: 'wiki',
            password: WIKI_PASSWORD,
            permissions: ['*'],
            protocol: 'restauth-0.6',
            userNames: 'restauth',
            passwordMinLength: 6,
            groups: 'own',
          },
          { name: 'tester', password: 'service-password-0123456789', permissions: ['*'] },
        ],
      },
    });
  }, 120_000);
  afterAll(async () => server?.close());

  /** Runs the rows' operations in one Python process and compares each report with its row. */
  async function drive(rows: Row[], service = 'wiki', password = WIKI_PASSWORD): Promise<void> {
    const reports = await runClient(
      rows.map(([, operation]) => operation),
      service,
      password,
    );
    const seen = rows.map(([label], index) => [label, reports[index]]);
    // toMatchObject: a row names what matters (the exception; status and Resource-Type for a 404).
    expect(seen).toMatchObject(rows.map(([label, , expected]) => [label, expected]));
  }

  function runClient(operations: unknown[], service: string, password: string): Promise<Report[]> {
    return new Promise((resolve, reject) => {
      const child = spawn(python, [DRIVER, server.url, service, password], {
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk) => {
        stdout += chunk;
      });
      child.stderr.on('data', (chunk) => {
        stderr += chunk;
      });
      child.on('error', reject);
      child.on('close', (code) => {
        if (code !== 0) return reject(new Error(`drive.py exited ${code}: ${stderr}`));
        resolve(
          stdout
            .trim()
            .split('\n')
            .filter(Boolean)
            .map((line) => JSON.parse(line) as Report),
        );
      });
      child.stdin.end(JSON.stringify(operations));
    });
  }

  const user = (method: string, target: string | null, ...args: unknown[]) => ({
    call: `user.${method}`,
    ...(target === null ? {} : { target }),
    args,
  });
  const group = (method: string, target: string | null, ...args: unknown[]) => ({
    call: `group.${method}`,
    ...(target === null ? {} : { target }),
    args,
  });
  const ok = (result: unknown = null): Report => ({ result });
  const raised = (error: string, extra: Partial<Report> = {}): Report => ({ error, ...extra });
  const missing = (type: 'user' | 'group' | 'property'): Report => ({
    error: 'ResourceNotFound',
    status: 404,
    type,
  });

  it('creates users, also with spaces, non-ASCII letters, 6-character passwords or no password', async () => {
    await drive([
      ['create', user('create', null, 'alice', 'alice-pass-1'), ok('alice')],
      ['create an existing user', user('create', null, 'alice', 'alice-pass-2'), raised('UserExists')],
      ['create "foo/bar"', user('create', null, 'foo/bar', 'password1'), raised('PreconditionFailed')],
      ['create "foo:bar"', user('create', null, 'foo:bar', 'password1'), raised('PreconditionFailed')],
      ['create, password "x"', user('create', null, 'bob', 'x'), raised('PreconditionFailed')],
      ['create, 6-character password', user('create', null, 'carol', 'foobar'), ok('carol')],
      ['create "mati space"', user('create', null, 'mati space', 'password1'), ok('mati space')],
      ['create "mati 愉"', user('create', null, 'mati 愉', 'password1'), ok('mati 愉')],
      ['create without password', user('create', null, 'dave'), ok('dave')],
      [
        'create with properties',
        {
          ...user('create', null, 'erin', 'erin-pass-1'),
          kwargs: { properties: { email: 'e@example.org' } },
        },
        ok('erin'),
      ],
      ['dry-run create', user('create_test', null, 'zed', 'zed-pass-1'), ok()],
      ['dry-run created nothing', user('get', null, 'zed'), missing('user')],
      ['dry-run create, existing', user('create_test', null, 'alice', 'alice-pass-1'), raised('UserExists')],
      [
        'dry-run create, bad name',
        user('create_test', null, 'a/b', 'password1'),
        raised('PreconditionFailed'),
      ],
      ['dry-run create, short password', user('create_test', null, 'zed', 'x'), raised('PreconditionFailed')],
      ['exists', user('get', null, 'alice'), ok('alice')],
      ['exists, other case', user('get', null, 'Mati Space'), ok('Mati Space')],
      ['exists, unknown', user('get', null, 'nobody'), missing('user')],
      [
        'list',
        { ...user('get_all', null), kwargs: { flat: true } },
        ok(['alice', 'carol', 'dave', 'erin', 'mati space', 'mati 愉']),
      ],
      ['property given at create', user('get_property', 'erin', 'email'), ok('e@example.org')],
    ]);
  });

  it('verifies, changes and disables passwords, deletes users', async () => {
    await drive([
      ['verify, right', user('verify_password', 'alice', 'alice-pass-1'), ok(true)],
      ['verify, wrong', user('verify_password', 'alice', 'wrong-pass'), ok(false)],
      ['verify, unknown user', user('verify_password', 'nobody', 'whatever1'), ok(false)],
      ['verify, user without password', user('verify_password', 'dave', ''), ok(false)],
      ['verify, name with a space', user('verify_password', 'mati space', 'password1'), ok(true)],
      ['verify, non-ASCII name', user('verify_password', 'mati 愉', 'password1'), ok(true)],
      ['verify, 6-character password', user('verify_password', 'carol', 'foobar'), ok(true)],
      ['set password', user('set_password', 'alice', 'alice-pass-3'), ok()],
      ['old password', user('verify_password', 'alice', 'alice-pass-1'), ok(false)],
      ['new password', user('verify_password', 'alice', 'alice-pass-3'), ok(true)],
      ['set password "x"', user('set_password', 'alice', 'x'), raised('PreconditionFailed')],
      ['set password, unknown user', user('set_password', 'nobody', 'newpass-123'), missing('user')],
      ['set short password, unknown user', user('set_password', 'nobody', 'x'), missing('user')],
      ['disable password', user('set_password', 'carol'), ok()],
      ['disabled password', user('verify_password', 'carol', 'foobar'), ok(false)],
      ['still exists', user('get', null, 'carol'), ok('carol')],
      ['delete', user('remove', 'dave'), ok()],
      ['delete again', user('remove', 'dave'), missing('user')],
      ['deleted', user('verify_password', 'dave', ''), ok(false)],
    ]);
  });

  it('keeps properties: get, create, dry-run, set, set several, delete', async () => {
    const all = await runClient([user('get_properties', 'alice')], 'wiki', WIKI_PASSWORD);
    expect(all[0]?.result).toEqual({ 'date joined': expect.any(String) });
    await drive([
      ['create', user('create_property', 'alice', 'email', 'a@example.org'), ok()],
      [
        'create existing',
        user('create_property', 'alice', 'email', 'b@example.org'),
        raised('PropertyExists'),
      ],
      ['create "foo:bar"', user('create_property', 'alice', 'foo:bar', 'x'), raised('PreconditionFailed')],
      ['create, unknown user', user('create_property', 'nobody', 'email', 'x'), missing('user')],
      ['dry-run create', user('create_property_test', 'alice', 'p', 'v'), ok()],
      ['dry-run created nothing', user('get_property', 'alice', 'p'), missing('property')],
      [
        'dry-run create, existing',
        user('create_property_test', 'alice', 'email', 'v'),
        raised('PropertyExists'),
      ],
      ['get', user('get_property', 'alice', 'email'), ok('a@example.org')],
      ['get unknown', user('get_property', 'alice', 'nope'), missing('property')],
      [
        'set existing: the old value',
        user('set_property', 'alice', 'email', 'c@example.org'),
        ok('a@example.org'),
      ],
      ['set new', user('set_property', 'alice', 'lang', 'de'), ok()],
      ['set several', user('set_properties', 'alice', { lang: 'en', tz: 'UTC' }), ok()],
      [
        'set several, bad name',
        user('set_properties', 'alice', { 'foo:bar': 'x' }),
        raised('PreconditionFailed'),
      ],
      ['set several, unknown user', user('set_properties', 'nobody', { lang: 'en' }), missing('user')],
      ['value with a space', user('set_property', 'alice', 'full name', 'Alice Ä.'), ok()],
      ['get it', user('get_property', 'alice', 'full name'), ok('Alice Ä.')],
      ['delete', user('remove_property', 'alice', 'email'), ok()],
      ['delete again', user('remove_property', 'alice', 'email'), missing('property')],
    ]);
    const after = await runClient([user('get_properties', 'alice')], 'wiki', WIKI_PASSWORD);
    expect(after[0]?.result).toEqual({
      'date joined': expect.any(String),
      lang: 'en',
      tz: 'UTC',
      'full name': 'Alice Ä.',
    });
  });

  it('manages groups: create, dry-run, members, nesting, removal', async () => {
    await drive([
      ['create', group('create', null, 'staff'), ok('staff')],
      ['create existing', group('create', null, 'staff'), raised('GroupExists')],
      ['create "foo/bar"', group('create', null, 'foo/bar'), raised('PreconditionFailed')],
      ['create second', group('create', null, 'devs'), ok('devs')],
      ['dry-run create', group('create_test', null, 'zgroup'), ok(true)],
      ['dry-run created nothing', group('get', null, 'zgroup'), missing('group')],
      ['dry-run create, existing', group('create_test', null, 'staff'), raised('GroupExists')],
      ['list', { ...group('get_all', null), kwargs: { flat: true } }, ok(['devs', 'staff'])],
      ['exists', group('get', null, 'staff'), ok('staff')],
      ['exists, unknown', group('get', null, 'nogroup'), missing('group')],
      ['add member', group('add_user', 'staff', 'alice'), ok()],
      ['add member with a space', group('add_user', 'staff', 'mati space'), ok()],
      ['add unknown user', group('add_user', 'staff', 'nobody'), missing('user')],
      ['add to unknown group', group('add_user', 'nogroup', 'alice'), missing('group')],
      ['members', { ...group('get_members', 'staff'), kwargs: { flat: true } }, ok(['alice', 'mati space'])],
      ['is member', group('is_member', 'staff', 'alice'), ok(true)],
      ['is not member', group('is_member', 'devs', 'alice'), ok(false)],
      ['groups of user', { ...group('get_all', null), kwargs: { user: 'alice', flat: true } }, ok(['staff'])],
      ['groups of unknown user', { ...group('get_all', null), kwargs: { user: 'nobody' } }, missing('user')],
      ['add subgroup', group('add_group', 'staff', 'devs'), ok()],
      ['subgroups', { ...group('get_groups', 'staff'), kwargs: { flat: true } }, ok(['devs'])],
      ['metagroup member is subgroup member', group('is_member', 'devs', 'alice'), ok(true)],
      ['remove subgroup', group('remove_group', 'staff', 'devs'), ok()],
      ['remove subgroup again', group('remove_group', 'staff', 'devs'), missing('group')],
      ['no longer inherited', group('is_member', 'devs', 'alice'), ok(false)],
      ['remove member', group('remove_user', 'staff', 'alice'), ok()],
      ['remove member again', group('remove_user', 'staff', 'alice'), missing('user')],
      ['delete', group('remove', 'staff'), ok()],
      ['delete again', group('remove', 'staff'), missing('group')],
    ]);
  });

  it("keeps a service's groups its own: other services and the registries never see them", async () => {
    await drive([
      ['create', group('create', null, 'wiki-admins'), ok('wiki-admins')],
      // Its own groups name no namespace, so they may be named as its users are.
      ['create, name with a space', group('create', null, 'Wiki Admins Ä'), ok('Wiki Admins Ä')],
      ['exists, folded', group('get', null, 'wiki admins ä'), ok('wiki admins ä')],
      ['add member', group('add_user', 'Wiki Admins Ä', 'mati space'), ok()],
      ['is member', group('is_member', 'wiki admins ä', 'mati space'), ok(true)],
      ['add member', group('add_user', 'wiki-admins', 'alice'), ok()],
    ]);
    const tester = { auth: basic('tester', 'service-password-0123456789') };
    expect((await call(`${server.url}/groups/`, 'GET', tester)).body).toEqual([]);
    // A shared group still follows the registry rules: it would name a namespace.
    expect(
      (await call(`${server.url}/groups/`, 'POST', { ...tester, json: { group: 'Wiki Admins' } })).status,
    ).toBe(400);
    expect((await call(`${server.url}/groups/wiki-admins/`, 'GET', tester)).status).toBe(404);
    // The same name in the shared groups is another group.
    expect(
      (await call(`${server.url}/groups/`, 'POST', { ...tester, json: { group: 'wiki-admins' } })).status,
    ).toBe(201);
    expect((await call(`${server.url}/groups/wiki-admins/users/`, 'GET', tester)).body).toEqual([]);
    // What a registry learns of alice: no group of the wiki's.
    const principal = await call(`${server.url}/verify`, 'POST', {
      ...tester,
      json: { username: 'alice', password: 'alice-pass-3' },
    });
    expect(principal.status).toBe(200);
    expect(principal.body).toMatchObject({ name: 'alice', groups: [] });
    // Deleting a user removes it from the service's own groups too.
    await drive([
      ['create', user('create', null, 'frank', 'frank-pass-1'), ok('frank')],
      ['add member', group('add_user', 'wiki-admins', 'frank'), ok()],
      ['delete user', user('remove', 'frank'), ok()],
      ['not a member', { ...group('get_members', 'wiki-admins'), kwargs: { flat: true } }, ok(['alice'])],
    ]);
  });

  it('speaks forms as well as JSON, and raises NotAcceptable for a format wharf cannot write', async () => {
    const form = (operation: Record<string, unknown>) => ({ ...operation, mime: FORM });
    await drive([
      [
        'list users (form)',
        form({ ...user('get_all', null), kwargs: { flat: true } }),
        ok(expect.arrayContaining(['alice', 'mati 愉'])),
      ],
      ['verify (form)', form(user('verify_password', 'mati 愉', 'password1')), ok(true)],
      ['create (form)', form(user('create', null, 'gina', 'gina-pass')), ok('gina')],
      ['set property (form)', form(user('set_property', 'gina', 'lang', 'fr')), ok()],
      ['get property (form)', form(user('get_property', 'gina', 'lang')), ok('fr')],
      ['set several (form)', form(user('set_properties', 'gina', { tz: 'UTC' })), ok()],
      ['disable password (form: an empty body)', form(user('set_password', 'gina')), ok()],
      ['disabled (form)', form(user('verify_password', 'gina', 'gina-pass')), ok(false)],
      [
        'properties (form)',
        form(user('get_properties', 'gina')),
        ok({ 'date joined': expect.any(String), lang: 'fr', tz: 'UTC' }),
      ],
      [
        'pickle: no such format here',
        { ...user('get_all', null), mime: 'application/pickle' },
        raised('NotAcceptable'),
      ],
      [
        'pickle on a POST',
        { ...user('verify_password', 'gina', 'gina-pass'), mime: 'application/pickle' },
        raised('NotAcceptable'),
      ],
    ]);
  });

  it('answers a throttled password check as a wrong one (the client knows no 429)', async () => {
    await drive([['create', user('create', null, 'henry', 'henry-pass-1'), ok('henry')]]);
    const wrong = Array.from(
      { length: 4 },
      (_, i): Row => [`wrong ${i + 1}`, user('verify_password', 'henry', `wrong-${i}`), ok(false)],
    );
    await drive([
      ...wrong,
      ['right, but throttled', user('verify_password', 'henry', 'henry-pass-1'), ok(false)],
    ]);
    const raw = await call(`${server.url}/users/henry/`, 'POST', {
      auth: basic('wiki', WIKI_PASSWORD),
      json: { password: 'henry-pass-1' },
    });
    expect(raw.status).toBe(404);
    expect(raw.headers.get('resource-type')).toBe('user');
    expect(Number(raw.headers.get('retry-after'))).toBeGreaterThan(0);
  });

  it('refuses wrong service credentials as Unauthorized', async () => {
    await drive(
      [['list with a wrong password', user('get_all', null), raised('Unauthorized')]],
      'wiki',
      'wrong-password-1',
    );
  });
});
