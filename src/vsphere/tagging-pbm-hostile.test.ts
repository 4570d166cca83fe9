// The tagging (vAPI) and storage policy (PBM) clients with replies a real vCenter does not send (a stand-in HTTP
// client: vcsim answers correctly, these are the hostile cases): each one a coded error, never a raw Error or crash.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CofferError } from '../shared/index.js';
import { PbmClient } from './pbm-client.js';
import { TaggingClient } from './tagging-client.js';
import type { VimClient } from './vim-client.js';
import { MoRef } from './xml.js';

type Reply = { status: number; body: string };

function vim(replies: (path: string, method: string) => Reply) {
  return {
    sessionCookie: 'vmware_soap_session="abc"',
    apiVersion: '7.0',
    serviceContent: { instanceUuid: 'u' },
    basicAuthorization: () => 'Basic dTpw',
    http: {
      async request(req: { path: string; method: string }) {
        const r = replies(req.path, req.method);
        return { status: r.status, headers: {}, body: Buffer.from(r.body, 'utf8') };
      },
    },
  } as unknown as VimClient;
}

const coded = (codes: string[]) => (e: unknown) => e instanceof CofferError && codes.includes(e.code);
const VM = new MoRef('VirtualMachine', 'vm-1');

test('tagging: hostile vAPI replies are VSPHERE_FAULT / VSPHERE_AUTH / NOT_FOUND', async () => {
  const session = (body: string, status = 200) =>
    TaggingClient.connect(vim((p) => (p.endsWith('/session') ? { status, body } : { status: 500, body: '' })));
  await assert.rejects(session('', 401), coded(['VSPHERE_AUTH']));
  await assert.rejects(session('not json'), coded(['VSPHERE_FAULT']));
  await assert.rejects(session('[1,2]'), coded(['VSPHERE_FAULT']));
  await assert.rejects(session('{"value": 42}'), coded(['VSPHERE_FAULT']));
  await assert.rejects(session('{"value": ""}'), coded(['VSPHERE_FAULT']));
  const hostile: Record<string, string>[] = [
    { assoc: '{"value": "tag-1"}' },
    { assoc: '{"value": [1]}' },
    { assoc: `{"value": ${JSON.stringify(Array.from({ length: 20_000 }, (_, i) => `t${i}`))}}` },
    { assoc: '{"value": ["t1"]}', tag: '{"value": null}' },
    { assoc: '{"value": ["t1"]}', tag: '{"value": {"name": 5, "category_id": "c"}}' },
    { assoc: '{"value": ["t1"]}', tag: '{"value": {"name": "x"}}' },
    { assoc: '{"value": ["t1"]}', tag: '{"value": {"name": "x", "category_id": "c"}}', cat: '{"value": {}}' },
    { assoc: '{"value": ["t1"]}', tag: '{"value": {"name": "x", "category_id": "c"}}', cat: '{' },
  ];
  for (const h of hostile) {
    const t = await TaggingClient.connect(
      vim((p) => {
        if (p.endsWith('/session')) return { status: 200, body: '{"value":"s1"}' };
        if (p.includes('tag-association')) return { status: 200, body: h['assoc'] ?? '' };
        if (p.includes('/tagging/tag/')) return { status: 200, body: h['tag'] ?? '' };
        if (p.includes('/tagging/category/')) return { status: 200, body: h['cat'] ?? '' };
        return { status: 404, body: '' };
      }),
    );
    await assert.rejects(t.attachedTags(VM), coded(['VSPHERE_FAULT']), JSON.stringify(h).slice(0, 200));
  }
  const t = await TaggingClient.connect(
    vim((p) => (p.endsWith('/session') ? { status: 200, body: '{"value":"s1"}' } : { status: 404, body: '{}' })),
  );
  await assert.rejects(t.attach('t1', VM), coded(['NOT_FOUND']));
});

test('PBM: hostile SOAP replies are VSPHERE_FAULT, faults keep their type', async () => {
  const env = (body: string) =>
    `<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>${body}` +
    '</soapenv:Body></soapenv:Envelope>';
  const content = env(
    '<PbmRetrieveServiceContentResponse xmlns="urn:pbm"><returnval>' +
      '<profileManager type="PbmProfileManager">ProfileManager</profileManager></returnval>' +
      '</PbmRetrieveServiceContentResponse>',
  );
  for (const body of [
    '',
    'garbage',
    '<html>404</html>',
    env('<WrongResponse/>'),
    env('<PbmRetrieveServiceContentResponse><returnval/></PbmRetrieveServiceContentResponse>'),
    '<a>'.repeat(100_000),
  ])
    await assert.rejects(
      PbmClient.connect(vim(() => ({ status: 200, body }))),
      coded(['VSPHERE_FAULT']),
      body.slice(0, 80),
    );
  const fault = env(
    '<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>no</faultstring><detail>' +
      '<InvalidArgumentFault xsi:type="InvalidArgument" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"/>' +
      '</detail></soapenv:Fault>',
  );
  let n = 0;
  const pbm = await PbmClient.connect(vim(() => ({ status: n++ === 0 ? 200 : 500, body: n === 1 ? content : fault })));
  await assert.rejects(
    pbm.diskPolicyIds(VM, [2000]),
    (e: unknown) => e instanceof CofferError && e.code === 'VSPHERE_FAULT' && e.details['fault'] === 'InvalidArgument',
  );
  // a reply without ids: no policy; a policy list without names: refused by name, not a crash
  let m = 0;
  const empty = await PbmClient.connect(
    vim(() =>
      m++ === 0
        ? { status: 200, body: content }
        : { status: 200, body: env('<PbmQueryProfileResponse xmlns="urn:pbm"><returnval/></PbmQueryProfileResponse>') },
    ),
  );
  await assert.rejects(empty.policyNamed('Gold'), coded(['NOT_FOUND']));
});
