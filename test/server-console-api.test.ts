// Issue 20 item 1: the console is typed against the server's API and this file fails when the two drift apart.
// - the request side: web/src/api/openapi.gen.ts is what web/scripts/gen-api.mjs makes of the running server's
//   /api/openapi.json (paths, methods, parameters, bodies); a route renamed or a body changed fails here (and the
//   console's `api('get /api/v1/...')` calls stop compiling once the file is regenerated);
// - the response side (the OpenAPI document has no response schemas): real answers of a server with a real
//   repository carry every required key of the console's response types (web/src/api/shapes.ts, whose key lists are
//   checked against those types at compile time).
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { capabilities, type OpenApi } from '../web/src/api/capabilities.js';
import { SHAPES } from '../web/src/api/shapes.js';
import { coffer, tempDir, TEST_PASSWORD } from './helpers/cli.js';
import { makeDisk } from './helpers/disks.js';
import { api, makeToken, startServer, waitJob, type RunningServer } from './helpers/coffer-server.js';

const GEN = resolve('web/scripts/gen-api.mjs');
const COMMITTED = resolve('web/src/api/openapi.gen.ts');

/** The keys of `shape` that `value` lacks (`value` is one real answer). */
function missing(shape: readonly string[], value: unknown): string[] {
  assert.ok(value && typeof value === 'object', `not an object: ${JSON.stringify(value)}`);
  return shape.filter((k) => !(k in (value as Record<string, unknown>)));
}

describe('console API types against the running server', () => {
  const tmp = tempDir('coffer-console-api-');
  const dir = tmp.path;
  const dataDir = join(dir, 'data');
  let server: RunningServer;
  let admin: string;

  before(async () => {
    const repo = join(dir, 'repo');
    const disk = join(dir, 'web01.raw');
    makeDisk(disk, 1024 * 1024, 'console-api');
    assert.equal(coffer(['init', '--repo', repo, '--chunk-size', '64K', '--kdf-cost', '1024']).code, 0);
    writeFileSync(join(dir, 'pw'), TEST_PASSWORD);
    server = await startServer({
      dir,
      dataDir,
      config: {
        repositories: [{ name: 'main', location: repo, passwordFile: join(dir, 'pw') }],
        inventory: [{ name: 'web01', disks: [disk] }],
      },
    });
    admin = makeToken(dataDir, 'admin');
    const p = await api(server.url, 'POST', '/api/v1/policies', {
      token: admin,
      body: { name: 'web', repository: 'main', vms: [{ pattern: 'web*' }], retention: { keepLast: 5 } },
    });
    assert.equal(p.status, 201, p.text);
    const j = await api(server.url, 'POST', '/api/v1/jobs', { token: admin, body: { kind: 'backup', policy: 'web' } });
    assert.equal(j.status, 202, j.text);
    assert.equal((await waitJob(server.url, admin, j.body.items[0].id)).status, 'succeeded');
    const u = coffer(['user', 'add', '--data', dataDir, '--name', 'ursula', '--role', 'viewer'], {
      COFFER_USER_PASSWORD: 'viewer-password',
    });
    assert.equal(u.code, 0, u.stderr);
  });

  after(async () => {
    await server?.stop();
    tmp.cleanup();
  });

  it("web/src/api/openapi.gen.ts is what gen-api.mjs makes of the server's OpenAPI document", async () => {
    const doc = (await api(server.url, 'GET', '/api/openapi.json')).body;
    const { generate } = (await import(pathToFileURL(GEN).href)) as { generate: (d: unknown) => string };
    const fresh = generate(doc);
    if (fresh !== readFileSync(COMMITTED, 'utf8')) {
      mkdirSync(resolve('test-artifacts'), { recursive: true });
      writeFileSync(resolve('test-artifacts/openapi.gen.ts'), fresh);
    }
    assert.equal(
      fresh,
      readFileSync(COMMITTED, 'utf8'),
      'the API changed: run `node web/scripts/gen-api.mjs URL/api/openapi.json` (or copy ' +
        'test-artifacts/openapi.gen.ts), then `npm run build:web` and fix what no longer compiles',
    );
    // and the generator sees what matters: a path, a query parameter, a body field and a job kind
    assert.match(fresh, /"\/api\/v1\/jobs": \{[\s\S]*?status\?: "queued" \| "retrying"/);
    assert.match(fresh, /kind: "restore";\n\s+repository: string;\n\s+pointId: string;/);
  });

  it('a changed schema changes the generated types (the check above can fail)', async () => {
    const doc = (await api(server.url, 'GET', '/api/openapi.json')).body;
    const { generate } = (await import(pathToFileURL(GEN).href)) as { generate: (d: unknown) => string };
    const renamed = structuredClone(doc);
    renamed.paths['/api/v1/virtual-machines'] = renamed.paths['/api/v1/vms'];
    delete renamed.paths['/api/v1/vms'];
    assert.notEqual(generate(renamed), generate(doc));
  });

  it("real answers carry every required key of the console's response types", async () => {
    const get = async (path: string, token = admin) => {
      const r = await api(server.url, 'GET', path, { token });
      assert.equal(r.status, 200, `${path}: ${r.text}`);
      return r.body;
    };
    const one = (page: { items: unknown[] }, what: string) => {
      assert.ok(page.items.length > 0, `${what}: the fixture has one`);
      return page.items[0];
    };
    const checks: [string, readonly string[], unknown][] = [
      ['me', SHAPES.me, await get('/api/v1/me')],
      ['vm', SHAPES.vm, one(await get('/api/v1/vms'), 'vms')],
      ['dashboard', SHAPES.dashboard, await get('/api/v1/dashboard')],
      ['repository', SHAPES.repository, one(await get('/api/v1/repositories'), 'repositories')],
      ['restorePoint', SHAPES.restorePoint, one(await get('/api/v1/restore-points'), 'restore points')],
      ['job', SHAPES.job, one(await get('/api/v1/jobs'), 'jobs')],
      ['policy', SHAPES.policy, one(await get('/api/v1/policies'), 'policies')],
      ['user', SHAPES.user, one(await get('/api/v1/users'), 'users')],
      ['token', SHAPES.token, one(await get('/api/v1/tokens'), 'tokens')],
      ['audit', SHAPES.audit, one(await get('/api/v1/audit'), 'audit records')],
      ['proxy', SHAPES.proxy, one(await get('/api/v1/proxies'), "proxies (the server's own)")],
    ];
    const pointId = (one(await get('/api/v1/restore-points'), 'points') as { id: string }).id;
    checks.push(['vmConfig', SHAPES.vmConfig, await get(`/api/v1/restore-points/${pointId}/vm-config`)]);
    const ir = await api(server.url, 'POST', '/api/v1/instant-recoveries', {
      token: admin,
      body: { repository: 'main', pointId, disk: 0 },
    });
    assert.equal(ir.status, 201, ir.text);
    checks.push(['instantRecovery', SHAPES.instantRecovery, one(await get('/api/v1/instant-recoveries'), 'exports')]);
    assert.equal(
      (await api(server.url, 'DELETE', `/api/v1/instant-recoveries/${ir.body.id}`, { token: admin })).status,
      200,
    );
    for (const [what, shape, value] of checks) assert.deepEqual(missing(shape, value), [], `${what}: keys missing`);
    const vm = one(await get('/api/v1/vms'), 'vms') as { lastPoint: Record<string, unknown> };
    assert.deepEqual(missing(['id', 'repository', 'time', 'endTime'], vm.lastPoint), []);
    const point = one(await get('/api/v1/restore-points'), 'points') as { status: Record<string, unknown> };
    assert.deepEqual(missing(['state', 'suspicious', 'score', 'reasons'], point.status), []);
  });

  it("the restore wizard offers what the server's OpenAPI document has, and learns new job kinds from it", async () => {
    const doc = (await api(server.url, 'GET', '/api/openapi.json')).body as OpenApi;
    const caps = capabilities(doc);
    assert.deepEqual([...caps.jobKinds.keys()].sort(), ['backup', 'check', 'prune', 'restore', 'restore-vm', 'verify']);
    assert.deepEqual(caps.jobKinds.get('restore')?.required, ['kind', 'repository', 'pointId', 'disk', 'target']);
    assert.deepEqual(caps.jobKinds.get('restore')?.properties?.format?.enum, ['raw', 'qcow2', 'vmdk', 'vhdx']);
    assert.deepEqual(caps.jobKinds.get('restore-vm')?.required, [
      'kind',
      'repository',
      'pointId',
      'vcenter',
      'name',
      'datastore',
    ]);
    // instant recovery: start with POST, stop with DELETE {id}
    assert.equal(caps.instantRecovery?.start, '/api/v1/instant-recoveries');
    assert.equal(caps.instantRecovery?.stop, '/api/v1/instant-recoveries/{id}');
    assert.deepEqual(Object.keys(caps.instantRecovery?.startSchema?.properties ?? {}), [
      'repository',
      'pointId',
      'disk',
      'writable',
    ]);
    assert.equal(caps.has('get', '/api/v1/vcenters'), true);
    // a server that gains another job kind (made up here: no server of this branch has it) gets it offered, with
    // the fields of its schema
    const more = structuredClone(doc);
    const body = more.paths['/api/v1/jobs']!.post!.requestBody!.content!['application/json']!.schema!;
    body.oneOf!.push({
      type: 'object',
      properties: { kind: { const: 'restore-hyperv' }, host: { type: 'string' } },
      required: ['kind', 'host'],
    });
    const caps2 = capabilities(more);
    assert.deepEqual(Object.keys(caps2.jobKinds.get('restore-hyperv')?.properties ?? {}), ['kind', 'host']);
    assert.equal(capabilities(doc).jobKinds.has('restore-hyperv'), false);
  });
});
