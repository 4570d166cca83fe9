import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { join } from 'node:path';
import fc from 'fast-check';
import {
  BufferReader,
  checkRange,
  ExtFs,
  FatFs,
  listPartitions,
  NtfsFs,
  probeFilesystem,
  scanVolumeGroups,
  XfsFs,
  type BlockReader,
  type FsNode,
  type GuestFs,
} from '../../src/fs/index.js';
import { MiB, mkExt, mkFat, partitionDisk, sh } from '../../src/fs/testing/images.js';
import { linearSegment, lvSection, makeLvmDisks, mkXfs, withMount } from '../../src/fs/testing/xfs-lvm-images.js';
import { NbdClient } from '../../src/nbd/nbd-client.js';
import { CofferError, type ErrorCode } from '../../src/shared/index.js';
import { VmdkSource } from '../../src/sources/vmdk/vmdk-source.js';
import { returnval, parseFault } from '../../src/vsphere/vim-client.js';
import { parseConfigInfo } from '../../src/vsphere/vm-model.js';
import { child, parseXml } from '../../src/vsphere/xml.js';

/**
 * Property-based fuzzing of every parser of untrusted input (issue 21), shared by the bounded runs in the test suite
 * (test/fuzz-parsers.test.ts) and the longer campaign (bench/fuzz-campaign.mjs). A target makes valid seed inputs with
 * the real tools, and parses one (mutated) input. The harness judges each run:
 * - ok: parsed; coded: rejected with a CofferError whose code the target allows;
 * - crash: anything else thrown (a raw Error, INTERNAL, a code the target does not allow);
 * - hang: the input made the parser exceed its work budget (reads, bytes read, nodes walked): not time-based.
 * A new guest filesystem reader is one line in TARGETS: fsTarget('ntfs', ntfsSeeds, (r) => NtfsFs.open(r)).
 */

export type Verdict = { kind: 'ok' | 'coded' | 'crash' | 'hang'; detail: string };

export interface FuzzTarget {
  name: string;
  /** codes a rejection may carry */
  codes: ErrorCode[];
  /** valid inputs, made by the real tools in `work` */
  seeds(work: string): Promise<Buffer[]>;
  /** parses one input (in `work` if it needs files) */
  run(input: Buffer, work: string): Promise<void>;
  /** seeds() needs root (loop devices) */
  needsRoot?: boolean;
  /** releases what run() set up (servers) */
  dispose?(): Promise<void>;
}

/** The work budget was exceeded: the harness reports a hang. */
export class BudgetExceeded extends Error {}

/** A BlockReader that counts: at most `maxReads` reads and `maxBytes` bytes, else BudgetExceeded. */
export class BudgetReader implements BlockReader {
  reads = 0;
  bytes = 0;
  constructor(
    private readonly base: BlockReader,
    private readonly maxReads: number,
    private readonly maxBytes: number,
  ) {}
  get sizeBytes(): number {
    return this.base.sizeBytes;
  }
  async read(offset: number, length: number): Promise<Buffer> {
    checkRange(this.sizeBytes, offset, length);
    if (++this.reads > this.maxReads || (this.bytes += length) > this.maxBytes)
      throw new BudgetExceeded(`work budget exceeded (${this.reads} reads, ${this.bytes} bytes)`);
    return this.base.read(offset, length);
  }
}

/**
 * Walks a whole guest filesystem as file-level restore does: bounded nodes and depth, file data up to the volume size.
 */
export async function walkFs(fs: GuestFs, volumeBytes: number): Promise<void> {
  let nodes = 0;
  let data = 0;
  const seen = new Set<string>();
  const walk = async (dir: FsNode, depth: number): Promise<void> => {
    if (depth > 64 || seen.has(dir.id)) return;
    seen.add(dir.id);
    for (const n of await fs.list(dir)) {
      if (++nodes > 20_000) throw new BudgetExceeded('more than 20000 entries');
      if (n.error) continue;
      try {
        if (n.type === 'dir') await walk(n, depth + 1);
        else if (n.type === 'symlink') await fs.readlink(n);
        else if (n.type === 'file' && data <= volumeBytes) for await (const p of fs.read(n)) data += p.data.length;
      } catch (e) {
        // per-entry errors are what file restore records
        if (!(e instanceof CofferError) || e.code === 'INTERNAL') throw e;
      }
    }
  };
  await walk(await fs.root(), 0);
}

/** A guest filesystem reader as a target: one line per reader. */
export function fsTarget(
  name: string,
  seeds: (work: string) => Promise<Buffer[]>,
  open: (r: BlockReader) => Promise<GuestFs>,
): FuzzTarget {
  return {
    name,
    codes: ['FS_CORRUPT', 'FS_UNSUPPORTED'],
    seeds,
    async run(input) {
      const r = new BudgetReader(new BufferReader(input), 200_000, 64 * input.length + 64 * 1024 * 1024);
      await walkFs(await open(r), input.length);
    },
  };
}

function srcTree(work: string): string {
  const d = join(work, 'tree');
  mkdirSync(join(d, 'dir/sub'), { recursive: true });
  writeFileSync(join(d, 'small.txt'), 'small\n');
  writeFileSync(join(d, 'dir/sub/data.bin'), Buffer.alloc(40_000, 7));
  for (let i = 0; i < 40; i++) writeFileSync(join(d, `dir/f${i}.txt`), `file ${i}\n`.repeat(i));
  try {
    symlinkSync('../small.txt', join(d, 'dir/link'));
  } catch {
    /* exists */
  }
  return d;
}

const extSeeds = async (work: string) =>
  [
    ['ext4', ['-b', '1024', '-O', '^metadata_csum,^has_journal,inline_data']],
    ['ext4', ['-b', '1024']],
    ['ext2', ['-b', '1024', '-I', '128']],
  ].map(([type, extra], i) => {
    const img = join(work, `ext${i}.img`);
    mkExt(img, type as 'ext2' | 'ext4', srcTree(work), 2 * 1024 * 1024, 0, extra as string[]);
    return readFileSync(img);
  });

const fatSeeds = async (work: string) =>
  ([12, 16] as const).map((bits) => {
    const img = join(work, `fat${bits}.img`);
    mkFat(img, bits, srcTree(work), bits === 12 ? 1024 * 1024 : 9 * 1024 * 1024);
    return readFileSync(img);
  });

/** NTFS made by mkntfs, the tree written by wimapply (as the NTFS tests do). */
const ntfsSeeds = async (work: string) => {
  const img = join(work, 'ntfs.img');
  writeFileSync(img, Buffer.alloc(0));
  sh('truncate', ['-s', String(4 * MiB), img]);
  sh('mkntfs', ['-F', '-Q', '-s', '512', '-c', '4096', '-L', 'fuzz', img]);
  const wim = join(work, 'ntfs-seed.wim');
  rmSync(wim, { force: true });
  sh('wimcapture', [srcTree(work), wim, '--compress=none', '--no-acls']);
  sh('wimapply', [wim, img, '--no-acls']);
  return [readFileSync(img)];
};

/** XFS v5 (CRCs) made by mkfs.xfs, the tree copied in through a loop mount (root). */
const xfsSeeds = async (work: string) => {
  const img = join(work, 'xfs.img');
  mkXfs(img, 20 * MiB);
  withMount(img, (d) => cpSync(srcTree(work), d, { recursive: true, verbatimSymlinks: true }));
  return [readFileSync(img)];
};

/**
 * LVM2: a whole-disk PV made by pvcreate/vgcreate (loop device, root), two linear LVs (one in two segments) written by
 * vgcfgrestore; the first LV holds an ext2 filesystem. A run scans the disk, opens every LV, reads its first and last
 * 64 KiB and probes its filesystem.
 */
const lvmTarget: FuzzTarget = {
  name: 'lvm',
  codes: ['FS_CORRUPT', 'FS_UNSUPPORTED'],
  needsRoot: true,
  async seeds(work) {
    const disk = join(work, 'lvm.raw');
    const vg = `fuzzvg${process.pid}`;
    const layout = makeLvmDisks(
      [{ path: disk, sizeBytes: 8 * MiB, partitionStart: 0 }],
      vg,
      lvSection('data', [linearSegment(0, 2, 'pv0', 0)]) +
        lvSection('split', [linearSegment(0, 1, 'pv0', 4), linearSegment(1, 1, 'pv0', 2)]),
    );
    const fsImg = join(work, 'lvm-ext2.img');
    mkExt(fsImg, 'ext2', srcTree(work), 2 * MiB, 0, ['-b', '1024']);
    const b = readFileSync(disk);
    readFileSync(fsImg).copy(b, layout.peStartBytes);
    return [b];
  },
  async run(input) {
    const r = new BudgetReader(new BufferReader(input), 10_000, 256 * 1024 * 1024);
    const groups = await scanVolumeGroups([r]);
    for (const lv of groups.list()) {
      if (lv.problem) continue;
      const v = groups.open(lv.name);
      const n = Math.min(v.sizeBytes, 64 * 1024);
      if (n > 0) {
        await v.read(0, n);
        await v.read(v.sizeBytes - n, n);
      }
      await probeFilesystem(v);
    }
  },
};

const partitionTarget: FuzzTarget = {
  name: 'partitions',
  codes: ['FS_CORRUPT', 'FS_UNSUPPORTED'],
  async seeds(work) {
    return [
      'label: dos\nstart=2048, size=1024\nsize=1024, type=83\n',
      'label: gpt\nstart=2048, size=1024, name="a"\nsize=1024\n',
    ].map((script, i) => {
      const img = join(work, `part${i}.img`);
      partitionDisk(img, 2 * 1024 * 1024, script);
      return readFileSync(img);
    });
  },
  async run(input) {
    await listPartitions(new BudgetReader(new BufferReader(input), 10_000, 256 * 1024 * 1024));
  },
};

const vmdkTarget: FuzzTarget = {
  name: 'vmdk',
  codes: ['SOURCE_UNREADABLE'],
  async seeds(work) {
    const raw = join(work, 'vmdk-src.raw');
    const b = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < b.length; i += 8192) b.write(`grain ${i}`, i);
    writeFileSync(raw, b);
    return ['monolithicSparse', 'streamOptimized'].map((sub) => {
      const img = join(work, `seed-${sub}.vmdk`);
      sh('qemu-img', ['convert', '-f', 'raw', '-O', 'vmdk', '-o', `subformat=${sub}`, raw, img]);
      return readFileSync(img);
    });
  },
  async run(input, work) {
    const p = join(work, 'fuzz.vmdk');
    writeFileSync(p, input);
    const s = await VmdkSource.open(p);
    try {
      const buf = Buffer.alloc(1024 * 1024);
      // the first 8 MiB and the last MiB: enough to touch every grain table of the seeds, bounded for hostile sizes
      for (let o = 0; o < Math.min(s.sizeBytes, 8 * 1024 * 1024); o += buf.length)
        await s.read(o, Math.min(buf.length, s.sizeBytes - o), buf);
      if (s.sizeBytes > 8 * 1024 * 1024)
        await s.read(s.sizeBytes - Math.min(buf.length, s.sizeBytes), Math.min(buf.length, s.sizeBytes), buf);
    } finally {
      await s.close();
    }
  },
};

/**
 * The NBD client against a fake server that replays (mutated) bytes a real qemu-nbd sent to the same client: the
 * seed is recorded through a proxy in front of qemu-nbd; the fake server writes one input and ends the connection.
 */
function nbdTarget(): FuzzTarget {
  let server: net.Server | undefined;
  let current: Buffer = Buffer.alloc(0);
  const open = new Set<net.Socket>();
  const sock = (work: string) => join(work, 'fake-nbd.sock');
  const client = async (path: string) => {
    const c = await NbdClient.connect(
      { path },
      { exportName: '', metaContexts: ['base:allocation'], timeoutMs: 10_000 },
    );
    try {
      const buf = Buffer.alloc(Math.min(c.sizeBytes, 256 * 1024));
      await c.read(0, buf.length, buf);
      if (c.contexts.has('base:allocation')) await c.blockStatus('base:allocation', 0, c.sizeBytes);
    } finally {
      await c.close();
    }
  };
  return {
    name: 'nbd-client',
    codes: ['SOURCE_UNREADABLE'],
    async seeds(work) {
      const img = join(work, 'nbd.raw');
      const b = Buffer.alloc(1024 * 1024);
      b.write('nbd seed disk', 4096);
      writeFileSync(img, b);
      const real = join(work, 'real-nbd.sock');
      const qemu = spawn('qemu-nbd', ['--read-only', '--format=raw', '--persistent', `--socket=${real}`, img], {
        stdio: 'ignore',
      });
      try {
        for (let i = 0; i < 500; i++) {
          const up = await new Promise<boolean>((r) =>
            net
              .connect(real)
              .once('connect', function (this: net.Socket) {
                this.destroy();
                r(true);
              })
              .once('error', () => r(false)),
          );
          if (up) break;
          await new Promise((r) => setTimeout(r, 20));
        }
        const recorded: Buffer[] = [];
        const proxyPath = join(work, 'proxy-nbd.sock');
        const proxy = net.createServer((down) => {
          const up = net.connect(real);
          down.pipe(up);
          up.on('data', (d: Buffer) => recorded.push(d));
          up.pipe(down);
          up.on('error', () => down.destroy());
          down.on('error', () => up.destroy());
        });
        await new Promise<void>((r) => proxy.listen(proxyPath, r));
        await client(proxyPath);
        await new Promise((r) => setTimeout(r, 100)); // the disconnect's last bytes
        await new Promise((r) => proxy.close(r));
        return [Buffer.concat(recorded)];
      } finally {
        qemu.kill('SIGTERM');
      }
    },
    async run(input, work) {
      if (!server) {
        server = net.createServer((s) => {
          open.add(s);
          s.on('close', () => open.delete(s));
          s.on('error', () => undefined);
          s.end(current);
        });
        await new Promise<void>((r) => server!.listen(sock(work), r));
      }
      current = input;
      await client(sock(work));
    },
    async dispose() {
      for (const s of open) s.destroy();
      await new Promise((r) => (server ? server.close(() => r(undefined)) : r(undefined)));
      server = undefined;
    },
  };
}

const SOAP_SEEDS = [
  '<?xml version="1.0" encoding="UTF-8"?>' +
    '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" ' +
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">' +
    '<soapenv:Body><RetrievePropertiesExResponse xmlns="urn:vim25"><returnval><objects><obj type="VirtualMachine">' +
    'vm-57</obj><propSet><name>config</name><val xsi:type="VirtualMachineConfigInfo"><name>DC0_H0_VM0</name>' +
    '<guestFullName>otherGuest</guestFullName><version>vmx-13</version><uuid>' +
    '265104de-1472-547c-b873-6dc7883fb6cb</uuid><template>false</template><guestId>otherGuest</guestId><files>' +
    '<vmPathName>[LocalDS_0] vm/vm.vmx</vmPathName></files><hardware><numCPU>2</numCPU><numCoresPerSocket>' +
    '1</numCoresPerSocket><memoryMB>64</memoryMB><device xsi:type="VirtualDisk"><key>204</key>' +
    '<backing xsi:type="VirtualDiskFlatVer2BackingInfo"><fileName>[LocalDS_0] vm/disk1.vmdk</fileName><diskMode>' +
    'persistent</diskMode><thinProvisioned>true</thinProvisioned><changeId>52 a1/7</changeId></backing>' +
    '<controllerKey>202</controllerKey><unitNumber>0</unitNumber><capacityInKB>1024</capacityInKB></device>' +
    '</hardware><changeTrackingEnabled>true</changeTrackingEnabled><firmware>bios</firmware></val></propSet>' +
    '</objects></returnval></RetrievePropertiesExResponse></soapenv:Body></soapenv:Envelope>',
  '<?xml version="1.0" encoding="UTF-8"?>' +
    '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" ' +
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">' +
    '<soapenv:Body><soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>' +
    'The object has already been deleted or has not been completely created</faultstring><detail>' +
    '<ManagedObjectNotFoundFault xmlns="urn:vim25" xsi:type="ManagedObjectNotFound"><obj type="VirtualMachine">' +
    'vm-99</obj></ManagedObjectNotFoundFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>',
];

const soapTarget: FuzzTarget = {
  name: 'soap',
  codes: ['VSPHERE_FAULT'],
  async seeds() {
    return SOAP_SEEDS.map((s) => Buffer.from(s));
  },
  async run(input) {
    const doc = parseXml(input.toString('utf8'));
    const body = child(doc, 'Body');
    if (!body) return;
    const fault = child(body, 'Fault');
    if (fault) {
      parseFault(fault);
      return;
    }
    const res = body.children[0];
    if (!res) return;
    const rv = returnval(res);
    for (const o of rv.children)
      for (const ps of o.children.filter((c) => c.name === 'propSet')) {
        const val = child(ps, 'val');
        if (val?.xsiType === 'VirtualMachineConfigInfo') parseConfigInfo(val);
      }
  },
};

/** Every target: add a line here for a new parser of untrusted input. */
export function fuzzTargets(): FuzzTarget[] {
  return [
    partitionTarget,
    fsTarget('ext', extSeeds, (r) => ExtFs.open(r)),
    fsTarget('fat', fatSeeds, (r) => FatFs.open(r)),
    fsTarget('ntfs', ntfsSeeds, (r) => NtfsFs.open(r)),
    { ...fsTarget('xfs', xfsSeeds, (r) => XfsFs.open(r)), needsRoot: true },
    lvmTarget,
    vmdkTarget,
    nbdTarget(),
    soapTarget,
  ];
}

/**
 * One mutation of a seed: byte writes, interesting 16/32-bit values, truncation; offsets biased to the first 64 KiB.
 */
export type Mutation = { seed: number; edits: [number, number, number][]; truncate: number | null };

export function mutationArb(seedCount: number): fc.Arbitrary<Mutation> {
  const offset = fc.oneof(
    { weight: 3, arbitrary: fc.nat({ max: 65535 }) },
    { weight: 1, arbitrary: fc.nat({ max: 2 ** 31 - 1 }) },
  );
  const edit = fc.tuple(
    offset,
    fc.constantFrom(1, 1, 1, 2, 4),
    fc.oneof(fc.nat({ max: 255 }), fc.constantFrom(0, 0xff, 0x7fffffff, 0xffffffff, 0x80000000, 1, 2, 0xffff, 0x8000)),
  );
  return fc.record({
    seed: fc.nat({ max: Math.max(0, seedCount - 1) }),
    edits: fc.array(edit, { minLength: 1, maxLength: 24 }),
    // one input in ten is also truncated (null: not truncated)
    truncate: fc.oneof(
      { weight: 9, arbitrary: fc.constant(null) },
      { weight: 1, arbitrary: fc.nat({ max: 2 ** 31 - 1 }) },
    ),
  });
}

export function applyMutation(seeds: Buffer[], m: Mutation): Buffer {
  const base = seeds[m.seed % seeds.length]!;
  let b: Buffer = Buffer.from(base);
  for (const [off, width, value] of m.edits) {
    const at = off % b.length;
    if (width === 1 || at + width > b.length) b[at] = value & 0xff;
    else if (width === 2) b.writeUInt16LE(value & 0xffff, at);
    else b.writeUInt32LE(value >>> 0, at);
  }
  if (m.truncate !== null) b = Buffer.from(b.subarray(0, m.truncate % (b.length + 1)));
  return b;
}

/** Runs one input and judges it. */
export async function judge(t: FuzzTarget, input: Buffer, work: string): Promise<Verdict> {
  try {
    await t.run(input, work);
    return { kind: 'ok', detail: '' };
  } catch (e) {
    if (e instanceof BudgetExceeded) return { kind: 'hang', detail: e.message };
    if (e instanceof CofferError && t.codes.includes(e.code)) return { kind: 'coded', detail: e.code };
    return { kind: 'crash', detail: e instanceof Error ? (e.stack ?? e.message) : String(e) };
  }
}
