// RetrievePropertiesEx paging with a stand-in client (vcsim 0.24 never pages): the token is followed with
// ContinueRetrievePropertiesEx until a page comes without one; an empty result has no returnval.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { retrieve } from './property-collector.js';
import type { VimClient } from './vim-client.js';
import { MoRef, parseXml } from './xml.js';

const obj = (id: string) =>
  `<objects><obj type="VirtualMachine">${id}</obj><propSet><name>name</name><val ` +
  `xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="xsd:string">n-${id}</val></propSet></objects>`;

function client(pages: string[]) {
  const calls: [string, unknown][] = [];
  const c = {
    serviceContent: { propertyCollector: new MoRef('PropertyCollector', 'propertyCollector') },
    async invoke(method: string, _self: MoRef, args: Record<string, unknown>) {
      calls.push([
        method,
        method === 'ContinueRetrievePropertiesEx'
          ? args['token']
          : (args['options'] as { maxObjects: number }).maxObjects,
      ]);
      return parseXml(`<${method}Response>${pages.shift() ?? ''}</${method}Response>`);
    },
  } as unknown as VimClient;
  return { c, calls };
}

test('pages are followed by token until the last one', async () => {
  const { c, calls } = client([
    `<returnval><token>t1</token>${obj('vm-1')}${obj('vm-2')}</returnval>`,
    `<returnval><token>t2</token>${obj('vm-3')}</returnval>`,
    `<returnval>${obj('vm-4')}</returnval>`,
  ]);
  const out = await retrieve(c, { propSet: [{ type: 'VirtualMachine', pathSet: ['name'] }] });
  assert.deepEqual(
    out.map((o) => o.obj.value),
    ['vm-1', 'vm-2', 'vm-3', 'vm-4'],
  );
  assert.equal(out[2]!.props.get('name')!.text, 'n-vm-3');
  assert.deepEqual(calls, [
    ['RetrievePropertiesEx', 100],
    ['ContinueRetrievePropertiesEx', 't1'],
    ['ContinueRetrievePropertiesEx', 't2'],
  ]);
});

test('no match: no returnval, an empty list', async () => {
  const { c } = client(['']);
  assert.deepEqual(await retrieve(c, { propSet: [] }), []);
});
