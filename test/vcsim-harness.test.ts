import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { retrieveProperties, startVcsim, vcLogin, xmlText, type Vcsim } from './helpers/vcsim.js';

let vc: Vcsim;
before(async () => {
  vc = await startVcsim({ diskMiB: [4, 2] });
});
after(async () => {
  await vc?.stop();
});

test('vcsim: starts on 127.0.0.1 over https with a pinned certificate; login and RetrieveProperties work', async () => {
  assert.match(vc.url, /^https:\/\/127\.0\.0\.1:\d+\/sdk$/);
  assert.match(vc.thumbprint, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  const s = await vcLogin(vc);
  const vm = vc.vm('DC0_H0_VM0');
  const xml = await retrieveProperties(s, 'VirtualMachine', vm.ref, ['name', 'config.changeTrackingEnabled']);
  assert.equal(xmlText(xml, 'val'), 'DC0_H0_VM0');
  assert.equal(vm.disks.length, 2);
  assert.deepEqual(vm.disks.map((d) => d.capacityBytes), [4 << 20, 2 << 20]);
});
