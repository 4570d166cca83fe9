import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CofferError } from '../shared/index.js';
import { parseWith, ServerConfigSchema } from './config.js';

const vc = { name: 'prod', url: 'vsphere://vc.example:443', userEnv: 'VC_USER', passwordEnv: 'VC_PW' };
const message = (raw: unknown) => {
  try {
    parseWith(ServerConfigSchema, raw, 'config');
  } catch (e) {
    assert.ok(e instanceof CofferError && e.code === 'USAGE');
    return e.message;
  }
  return 'valid';
};

test('vcenters config: valid entries get defaults; bad fields are named with their path', () => {
  const c = parseWith(
    ServerConfigSchema,
    { vcenters: [vc, { ...vc, name: 'lab', url: 'vsphere://[::1]:8989', insecureTls: true }] },
    'config',
  );
  assert.equal(c.vcenters[0]!.insecureTls, false);
  assert.equal(c.vcenters[1]!.insecureTls, true);
  assert.match(
    message({ vcenters: [{ ...vc, url: 'https://vc.example' }] }),
    /vcenters\[0\]\.url: must be vsphere:\/\/HOST\[:PORT\]/,
  );
  assert.match(message({ vcenters: [{ ...vc, url: 'vsphere://u:p@vc.example' }] }), /vcenters\[0\]\.url: /);
  assert.match(message({ vcenters: [{ ...vc, url: 'vsphere://vc.example/VM1' }] }), /vcenters\[0\]\.url: /);
  assert.match(
    message({ vcenters: [vc, { ...vc, passwordEnv: 'bad name' }] }),
    /vcenters\[1\]\.passwordEnv: must be an environment variable name/,
  );
  assert.match(message({ vcenters: [{ ...vc, password: 'secret' }] }), /vcenters\[0\]: Unrecognized key: "password"/);
  assert.match(
    message({ vcenters: [{ ...vc, thumbprint: 'AA', insecureTls: true }] }),
    /vcenters\[0\]\.insecureTls: thumbprint and insecureTls exclude each other/,
  );
  assert.match(
    message({ vcenters: [{ name: 'x', url: 'vsphere://h' }] }),
    /vcenters\[0\]\.userEnv: .*vcenters\[0\]\.passwordEnv: /,
  );
});
