import { Option, type Command } from 'commander';
import { CofferError, formatBytes } from '../../shared/index.js';
import {
  checkVsphere,
  connectVsphere,
  fetchThumbprint,
  formatFingerprint,
  loadInventory,
  parseVsphereUrl,
  selectVms,
  type VmInfo,
} from '../../vsphere/index.js';
import { addTlsOptions, stderrLogger, tlsPolicy, type CommandKit } from '../kit/index.js';

function vmSummary(v: VmInfo) {
  const cfg = v.config;
  return {
    name: v.name,
    moref: v.ref.value,
    path: v.path,
    datacenter: v.datacenter?.name ?? null,
    powerState: v.powerState ?? null,
    toolsRunningStatus: v.toolsRunningStatus ?? null,
    guestId: cfg?.guestId ?? null,
    numCPU: cfg?.numCPU ?? null,
    memoryMB: cfg?.memoryMB ?? null,
    changeTrackingEnabled: cfg?.changeTrackingEnabled ?? false,
    template: cfg?.template ?? false,
    snapshots: v.snapshots.map((s) => ({ name: s.name, moref: s.ref.value })),
    disks: (cfg?.disks ?? []).map((d) => {
      const ctl = cfg?.controllers.find((c) => c.key === d.controllerKey);
      return {
        key: d.key,
        label: d.label,
        capacityBytes: d.capacityBytes,
        fileName: d.fileName,
        thinProvisioned: d.thinProvisioned ?? null,
        controller: ctl ? { key: ctl.key, type: ctl.type, busNumber: ctl.busNumber } : null,
        unitNumber: d.unitNumber ?? null,
        changeId: d.changeId ?? null,
      };
    }),
    nics: (cfg?.nics ?? []).map((n) => ({
      type: n.type,
      macAddress: n.macAddress ?? null,
      network: n.network ?? null,
    })),
  };
}

/**
 * `coffer vsphere inventory|thumbprint` (backup and restore take vsphere:// URLs: commands/backup.ts,
 * restore-vsphere.ts).
 */
export function vsphereCommand(program: Command, kit: CommandKit): void {
  const { deps, write } = kit;
  const vs = program
    .command('vsphere')
    .description(
      'VMware vSphere: inventory, account check and certificate thumbprints (backup/restore take vsphere:// URLs)',
    );

  addTlsOptions(
    vs
      .command('inventory')
      .description('list datacenters, clusters, hosts, datastores, networks and VMs with their disks')
      .argument('<url>', 'vsphere://HOST[:PORT][/VM] (a VM name, moref, inventory path or glob narrows the VM list)')
      .option('--json', 'print one JSON document')
      .option('-q, --quiet', 'only errors and warnings on stderr'),
  ).action(async (spec: string, o: { json?: boolean; quiet?: boolean; thumbprint?: string; insecureTls?: boolean }) => {
    const url = parseVsphereUrl(spec);
    const logger = stderrLogger(deps, o.quiet);
    const client = await connectVsphere(url, { tls: tlsPolicy(o), env: deps.env, logger, signal: deps.signal });
    try {
      const inv = await loadInventory(client, { signal: deps.signal });
      const vms = url.vm ? selectVms(inv.vms, url.vm, false) : inv.vms;
      const ent = (e: { name: string; ref: { value: string }; path: string }) => ({
        name: e.name,
        moref: e.ref.value,
        path: e.path,
      });
      const doc = {
        vcenter: {
          url: url.display,
          product: client.serviceContent.fullName,
          apiVersion: client.serviceContent.apiVersion,
          apiType: client.serviceContent.apiType,
        },
        datacenters: inv.datacenters.map(ent),
        clusters: inv.clusters.map(ent),
        hosts: inv.hosts.map(ent),
        datastores: inv.datastores.map((d) => ({
          ...ent(d),
          datacenter: d.datacenter ?? null,
          type: d.type ?? null,
          capacityBytes: d.capacityBytes ?? null,
          freeBytes: d.freeBytes ?? null,
        })),
        folders: inv.folders.map(ent),
        resourcePools: inv.resourcePools.map(ent),
        networks: inv.networks.map(ent),
        vms: vms.map(vmSummary),
      };
      if (o.json) {
        write(JSON.stringify(doc) + '\n');
        return;
      }
      write(`${doc.vcenter.product} (API ${doc.vcenter.apiVersion}) at ${doc.vcenter.url}\n`);
      const section = (title: string, rows: { path: string; moref: string }[]) => {
        write(`${title}:\n`);
        for (const r of rows) write(`  ${r.path}  (${r.moref})\n`);
      };
      section('datacenters', doc.datacenters);
      section('clusters', doc.clusters);
      section('hosts', doc.hosts);
      write('datastores:\n');
      for (const d of doc.datastores)
        write(
          `  ${d.path}  (${d.moref}) ${
            d.capacityBytes !== null ? `${formatBytes(d.freeBytes ?? 0)} free of ${formatBytes(d.capacityBytes)}` : ''
          }\n`,
        );
      section('resource pools', doc.resourcePools);
      section('networks', doc.networks);
      write('virtual machines:\n');
      for (const v of doc.vms) {
        write(
          `  ${v.path}  (${v.moref}) ${v.powerState ?? '?'}, ${v.numCPU ?? '?'} CPU, ${v.memoryMB ?? '?'} MB, ` +
            `tools ${v.toolsRunningStatus ?? '?'}, CBT ${v.changeTrackingEnabled ? 'on' : 'off'}${
              v.template ? ', template' : ''
            }\n`,
        );
        for (const d of v.disks) {
          write(
            `    disk ${d.key} ${formatBytes(d.capacityBytes)} ${d.fileName} ` +
              `(${d.thinProvisioned ? 'thin' : 'thick'}, ` +
              `${d.controller ? `${d.controller.type} ${d.controller.busNumber}:${d.unitNumber}` : 'no controller'})\n`,
          );
        }
        for (const s of v.snapshots) write(`    snapshot ${s.name} (${s.moref})\n`);
      }
    } finally {
      await client.close();
    }
  });

  addTlsOptions(
    vs
      .command('check')
      .description(
        'test the account: per VM, the privileges it lacks, CBT, disk layout, transports, leftover snapshots ' +
          '(changes nothing; exit 29 when something stops a backup)',
      )
      .argument('<url>', 'vsphere://HOST[:PORT][/VM] (a VM name, moref, inventory path or glob; default all VMs)')
      .addOption(
        new Option('--transport <kind>', 'the transport backups will ask for')
          .choices(['auto', 'http', 'nbd', 'hotadd'])
          .default('auto'),
      )
      .option('--vddk-libdir <dir>', 'VMware VDDK directory (the nbd transport)')
      .option('--proxy-vm <name>', "hot-add: the VM Coffer runs in (default: found by this machine's SMBIOS UUID)")
      .option('--json', 'print one JSON document')
      .option('-q, --quiet', 'only errors and warnings on stderr'),
  ).action(
    async (
      spec: string,
      o: {
        json?: boolean;
        quiet?: boolean;
        thumbprint?: string;
        insecureTls?: boolean;
        transport?: string;
        vddkLibdir?: string;
        proxyVm?: string;
      },
    ) => {
      const url = parseVsphereUrl(spec);
      const logger = stderrLogger(deps, o.quiet);
      const client = await connectVsphere(url, { tls: tlsPolicy(o), env: deps.env, logger, signal: deps.signal });
      let report;
      try {
        report = await checkVsphere(
          client,
          { display: url.display, vm: url.vm, user: url.user ?? deps.env['COFFER_VSPHERE_USER'] ?? null },
          {
            transport: (o.transport ?? 'auto') as 'auto' | 'http' | 'nbd' | 'hotadd',
            vddkLibdir: o.vddkLibdir,
            proxyVm: o.proxyVm,
            env: deps.env,
            logger,
            signal: deps.signal,
          },
        );
      } finally {
        await client.close();
      }
      if (o.json) write(JSON.stringify(report) + '\n');
      else {
        write(`${report.vcenter.product} (API ${report.vcenter.apiVersion}) at ${report.vcenter.url}\n`);
        for (const v of report.vms) {
          write(`${v.ok ? 'OK     ' : 'BLOCKED'} ${v.path} (${v.moref}) transport ${v.transport ?? 'none'}\n`);
          for (const b of v.blockers) write(`  blocker: ${b}\n`);
          for (const w of v.warnings) write(`  warning: ${w}\n`);
          for (const [t, c] of Object.entries(v.transports))
            write(
              `  ${t.padEnd(6)} ${c.usable ? 'usable' : c.available ? 'missing privileges' : 'unavailable'}` +
                `${c.reason ? ` (${c.reason})` : ''}` +
                `${c.missing.length ? `: ${c.missing.map((m) => `${m.privilege} on ${m.entity}`).join(', ')}` : ''}\n`,
            );
        }
      }
      const blocked = report.vms.filter((v) => !v.ok);
      if (blocked.length > 0)
        throw new CofferError(
          'VSPHERE_CHECK_FAILED',
          `${blocked.length} of ${report.vms.length} VMs cannot be backed up: ${blocked
            .slice(0, 5)
            .map((v) => `${v.name}: ${v.blockers[0]}`)
            .join('; ')}`,
          { details: { reported: Boolean(o.json), vms: blocked.map((v) => v.name) } },
        );
    },
  );

  vs.command('thumbprint')
    .description(
      "print the SHA-256 fingerprint of the vCenter's TLS certificate (check it, then pass it as --thumbprint)",
    )
    .argument('<url>', 'vsphere://HOST[:PORT]')
    .option('--json', 'print one JSON document')
    .action(async (spec: string, o: { json?: boolean }) => {
      const url = parseVsphereUrl(spec);
      const fp = formatFingerprint(await fetchThumbprint(url.host, url.port, { signal: deps.signal }));
      if (o.json) write(JSON.stringify({ host: url.host, port: url.port, sha256: fp }) + '\n');
      else write(`${fp}\n`);
    });
}
