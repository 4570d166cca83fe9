// Unit tests of the SOAP layer against replies recorded from vcsim (govmomi 0.24.2) and shaped like vCenter's.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CofferError } from '../shared/index.js';
import { buildInventory, selectVms } from './inventory.js';
import { parseFault, faultError } from './vim-client.js';
import { parseConfigInfo } from './vm-model.js';
import { parseVsphereUrl } from './vsphere-url.js';
import { normalizeThumbprint } from './https-client.js';
import { MoRef, child, envelope, parseXml, serialize } from './xml.js';

// vcsim binds the XML Schema instance namespace to the prefix "XMLSchema-instance"
const VCSIM_DEVICE_REPLY =
  '<?xml version="1.0" encoding="UTF-8"?>\n' +
  '<soapenv:Envelope xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/" ' +
  'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" ' +
  'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">' +
  '<soapenv:Body><RetrievePropertiesExResponse xmlns="urn:vim25"><returnval><objects><obj type="VirtualMachine">' +
  'vm-57</obj><propSet><name>config</name>' +
  '<val xmlns:XMLSchema-instance="http://www.w3.org/2001/XMLSchema-instance" ' +
  'XMLSchema-instance:type="VirtualMachineConfigInfo">' +
  '<name>DC0_H0_VM0</name><guestFullName>otherGuest</guestFullName><version>vmx-13</version><uuid>' +
  '265104de-1472-547c-b873-6dc7883fb6cb</uuid><template>false</template><guestId>otherGuest</guestId><annotation>' +
  'web &amp; db</annotation><files><vmPathName>[LocalDS_0] DC0_H0_VM0/DC0_H0_VM0.vmx</vmPathName></files>' +
  '<hardware><numCPU>2</numCPU><numCoresPerSocket>1</numCoresPerSocket><memoryMB>64</memoryMB>' +
  '<device XMLSchema-instance:type="VirtualIDEController"><key>200</key><deviceInfo><label>IDE 0</label><summary>' +
  'IDE 0</summary></deviceInfo><busNumber>0</busNumber></device>' +
  '<device XMLSchema-instance:type="ParaVirtualSCSIController"><key>202</key><deviceInfo><label>' +
  'pvscsi-202</label><summary>pvscsi-202</summary></deviceInfo><controllerKey>100</controllerKey><unitNumber>' +
  '3</unitNumber><busNumber>0</busNumber><hotAddRemove>true</hotAddRemove><sharedBus>noSharing</sharedBus>' +
  '<scsiCtlrUnitNumber>7</scsiCtlrUnitNumber></device><device XMLSchema-instance:type="VirtualDisk"><key>' +
  '204</key><deviceInfo><label>disk-202-0</label><summary>1,024 KB</summary></deviceInfo>' +
  '<backing XMLSchema-instance:type="VirtualDiskFlatVer2BackingInfo"><fileName>' +
  '[LocalDS_0] DC0_H0_VM0/disk1.vmdk</fileName><datastore type="Datastore">' +
  '/tmp/govcsim-DC0-LocalDS_0-1@folder-5</datastore><diskMode>persistent</diskMode><thinProvisioned>' +
  'true</thinProvisioned><eagerlyScrub>false</eagerlyScrub><changeId>52 a1 b2 c3/7</changeId></backing>' +
  '<controllerKey>202</controllerKey><unitNumber>0</unitNumber><capacityInKB>1024</capacityInKB></device>' +
  '<device XMLSchema-instance:type="VirtualDisk"><key>2001</key>' +
  '<backing xsi:type="VirtualDiskFlatVer2BackingInfo"><fileName>[LocalDS_0] DC0_H0_VM0/disk2.vmdk</fileName>' +
  '<diskMode>persistent</diskMode><thinProvisioned>false</thinProvisioned></backing><controllerKey>' +
  '202</controllerKey><unitNumber>1</unitNumber><capacityInKB>1</capacityInKB><capacityInBytes>' +
  '5242880</capacityInBytes></device><device XMLSchema-instance:type="VirtualE1000"><key>4000</key><deviceInfo>' +
  '<label>ethernet-0</label></deviceInfo>' +
  '<backing XMLSchema-instance:type="VirtualEthernetCardNetworkBackingInfo"><deviceName>VM Network</deviceName>' +
  '<network type="Network">network-7</network></backing><controllerKey>100</controllerKey><unitNumber>' +
  '7</unitNumber><addressType>generated</addressType><macAddress>00:0c:29:36:63:8b</macAddress></device>' +
  '</hardware><changeTrackingEnabled>true</changeTrackingEnabled><firmware>bios</firmware></val></propSet>' +
  '</objects></returnval></RetrievePropertiesExResponse></soapenv:Body></soapenv:Envelope>';

test('xsi:type is resolved by namespace URI, whatever the prefix (vcsim: XMLSchema-instance:type)', () => {
  const doc = parseXml(VCSIM_DEVICE_REPLY);
  const res = child(child(doc, 'Body')!, 'RetrievePropertiesExResponse')!;
  const val = child(child(child(child(res, 'returnval')!, 'objects')!, 'propSet')!, 'val')!;
  assert.equal(val.xsiType, 'VirtualMachineConfigInfo');
  const cfg = parseConfigInfo(val);
  assert.equal(cfg.name, 'DC0_H0_VM0');
  assert.equal(cfg.annotation, 'web & db');
  assert.equal(cfg.numCPU, 2);
  assert.equal(cfg.memoryMB, 64);
  assert.equal(cfg.changeTrackingEnabled, true);
  assert.equal(cfg.disks.length, 2);
  // capacityInKB only -> *1024; capacityInBytes wins when present
  assert.deepEqual(
    cfg.disks.map((d) => d.capacityBytes),
    [1024 * 1024, 5 * 1024 * 1024],
  );
  assert.equal(cfg.disks[0]!.changeId, '52 a1 b2 c3/7');
  assert.equal(cfg.disks[0]!.thinProvisioned, true);
  assert.equal(cfg.disks[1]!.thinProvisioned, false);
  assert.equal(cfg.disks[0]!.datastore?.value, '/tmp/govcsim-DC0-LocalDS_0-1@folder-5');
  assert.deepEqual(
    cfg.controllers.map((c) => [c.key, c.type, c.busNumber]),
    [
      [200, 'VirtualIDEController', 0],
      [202, 'ParaVirtualSCSIController', 0],
    ],
  );
  assert.equal(cfg.nics.length, 1);
  assert.equal(cfg.nics[0]!.network, 'VM Network');
  assert.equal(cfg.nics[0]!.macAddress, '00:0c:29:36:63:8b');
});

test('an unbound prefix on "type" is not taken as xsi:type', () => {
  const doc = parseXml('<a xmlns:foo="urn:other"><b foo:type="X">1</b></a>');
  assert.equal(doc.children[0]!.xsiType, undefined);
});

test('SOAP faults map to codes: InvalidLogin -> VSPHERE_AUTH, others VSPHERE_FAULT with the fault type', () => {
  const fault = (type: string) =>
    parseFault(
      child(
        child(
          parseXml(
            '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>' +
              '<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>' +
              `Cannot complete login due to an incorrect user name or password.</faultstring><detail><${type}` +
              'Fault xmlns:XMLSchema-instance="http://www.w3.org/2001/XMLSchema-instance" XMLSchema-instance:type="' +
              `${type}"></${type}Fault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>`,
          ),
          'Body',
        )!,
        'Fault',
      )!,
    );
  const login = faultError('Login', fault('InvalidLogin'));
  assert.equal(login.code, 'VSPHERE_AUTH');
  assert.ok(login.hint);
  const other = faultError('CreateSnapshot_Task', fault('InvalidState'));
  assert.equal(other.code, 'VSPHERE_FAULT');
  assert.equal(other.details.fault, 'InvalidState');
  assert.equal(faultError('X', fault('NotAuthenticated')).details.fault, 'NotAuthenticated');
});

test('hostile or broken XML is a VSPHERE_FAULT, never a crash', () => {
  for (const bad of [
    '',
    '<',
    '<a><b></a>',
    'not xml at all',
    '<a/><b/>',
    '<'.repeat(1000),
    '<a>'.repeat(100) + '</a>'.repeat(100),
  ]) {
    try {
      parseXml(bad);
      assert.fail(`accepted ${JSON.stringify(bad.slice(0, 30))}`);
    } catch (e) {
      assert.ok(e instanceof CofferError, String(e));
      assert.equal(e.code, 'VSPHERE_FAULT');
    }
  }
});

test('requests are serialized in field order with escaping, MoRefs and xsi:type', () => {
  const xml = serialize('spec', {
    _type: 'VirtualMachineConfigSpec',
    name: 'a<b>&"c"',
    numCPUs: 2,
    deviceChange: [{ operation: 'add' }, { operation: 'edit' }],
    skip: undefined,
    pool: new MoRef('ResourcePool', 'resgroup-1'),
  });
  assert.equal(
    xml,
    '<spec xsi:type="VirtualMachineConfigSpec"><name>a&lt;b&gt;&amp;&quot;c&quot;</name><numCPUs>2</numCPUs>' +
      '<deviceChange><operation>add</operation></deviceChange><deviceChange><operation>edit</operation>' +
      '</deviceChange><pool type="ResourcePool">resgroup-1</pool></spec>',
  );
  const env = envelope('Login', new MoRef('SessionManager', 'SessionManager'), { userName: 'u', password: 'p&' });
  assert.match(
    env,
    new RegExp(
      '<Login xmlns="urn:vim25"><_this type="SessionManager">SessionManager</_this>' +
        '<userName>u</userName><password>p&amp;</password></Login>',
    ),
  );
  // the round trip through our parser
  assert.equal(child(parseXml(xml), 'name')!.text, 'a<b>&"c"');
});

test('vsphere:// URLs: credentials, port, VM selector; display never carries the password', () => {
  const u = parseVsphereUrl('vsphere://admin%40vsphere.local:s3cr%3At@vc.example:8443/DC0/vm/web%2001');
  assert.equal(u.user, 'admin@vsphere.local');
  assert.equal(u.password, 's3cr:t');
  assert.equal(u.port, 8443);
  assert.equal(u.vm, 'DC0/vm/web 01');
  assert.ok(!u.display.includes('s3cr'));
  assert.equal(parseVsphereUrl('vsphere://vc').port, 443);
  assert.throws(
    () => parseVsphereUrl('vsphere://'),
    (e: CofferError) => e.code === 'USAGE',
  );
  assert.throws(
    () => parseVsphereUrl('vsphere://h:99999/x'),
    (e: CofferError) => e.code === 'USAGE',
  );
});

test('thumbprints: SHA-256 or SHA-1, colons and case ignored; anything else is USAGE', () => {
  assert.equal(normalizeThumbprint('AB:'.repeat(31) + 'AB'), 'ab'.repeat(32));
  assert.equal(normalizeThumbprint('ab'.repeat(20)), 'ab'.repeat(20));
  assert.throws(
    () => normalizeThumbprint('xyz'),
    (e: CofferError) => e.code === 'USAGE',
  );
});

test('VM selection by name, moref, inventory path, folder and glob', () => {
  const root = new MoRef('Folder', 'group-d1');
  const o = (type: string, value: string, name: string, parent?: MoRef) => {
    const props = new Map();
    props.set('name', parseXml(`<val>${name}</val>`));
    if (parent) props.set('parent', parseXml(`<val type="${parent.type}">${parent.value}</val>`));
    return { obj: new MoRef(type, value), props };
  };
  const dc = new MoRef('Datacenter', 'dc-1');
  const vmf = new MoRef('Folder', 'f-vm');
  const prod = new MoRef('Folder', 'f-prod');
  const inv = buildInventory(
    [
      o('Folder', 'group-d1', 'Datacenters'),
      o('Datacenter', 'dc-1', 'DC0', root),
      o('Folder', 'f-vm', 'vm', dc),
      o('Folder', 'f-prod', 'prod', vmf),
      o('VirtualMachine', 'vm-1', 'web-1', prod),
      o('VirtualMachine', 'vm-2', 'web-2', prod),
      o('VirtualMachine', 'vm-3', 'db', vmf),
      o('VirtualMachine', 'vm-4', 'db', prod),
    ],
    root,
  );
  const names = (spec: string, single = false) =>
    selectVms(inv.vms, spec, single)
      .map((v) => v.ref.value)
      .sort();
  assert.deepEqual(names('vm-2'), ['vm-2']);
  assert.deepEqual(names('/DC0/vm/prod/web-1'), ['vm-1']);
  assert.deepEqual(names('DC0/vm/prod'), ['vm-1', 'vm-2', 'vm-4']);
  assert.deepEqual(names('web-*'), ['vm-1', 'vm-2']);
  assert.deepEqual(names('/DC0/vm/*/db'), ['vm-4']);
  assert.deepEqual(names('db'), ['vm-3', 'vm-4']);
  assert.throws(
    () => names('db', true),
    (e: CofferError) => e.code === 'AMBIGUOUS',
  );
  assert.throws(
    () => names('nope'),
    (e: CofferError) => e.code === 'NOT_FOUND',
  );
  assert.equal(inv.vms.find((v) => v.ref.value === 'vm-1')!.datacenter?.name, 'DC0');
});
