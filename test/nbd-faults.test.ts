import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { coffer, cofferAsync, json, tempDir, type CliResult } from './helpers/cli.js';
import { expectError, expectOk } from './helpers/more-cli.js';
import {
  OLDSTYLE_MAGIC,
  NBDMAGIC,
  REPLY_FLAG_DONE,
  REPLY_TYPE_BLOCK_STATUS,
  REPLY_TYPE_OFFSET_DATA,
  patternBytes,
  startFakeNbd,
  type FakeNbdOptions,
  type FakeNbdServer,
} from './helpers/fake-nbd-server.js';
import { freePort, run, startNbdkit as startSharedNbdkit, startQemuNbd, type Daemon } from './helpers/servers.js';

const MiB = 1024 * 1024;
const T = { timeout: 30_000 };

/**
 * NBD sources that fail: real servers (nbdkit error/delay filters, a server killed or restarted mid-backup, closed
 * ports, unknown exports and bitmaps) and a fake server for protocol violations real servers never commit. Every
 * failure must end with exit 8 SOURCE_UNREADABLE, a message naming the fault, no stack trace, in bounded time, and
 * no restore point; NbdSource retries dropped connections and timeouts 3 times (backoff 0.2 + 0.4 + 0.8 s).
 */
describe('NBD faults', () => {
  const tmp = tempDir('coffer-nbd-faults-');
  const repo = join(tmp.path, 'repo');
  const daemons: Daemon[] = [];
  let vms = 0;

  before(() => {
    expectOk(coffer(['init', '--repo', repo, '--chunk-size', '1M', '--kdf-cost', '1024', '--json']));
  });
  after(async () => {
    for (const d of daemons) await d.stop();
    tmp.cleanup();
  });

  /** Every backup here uses its own VM name: a failed one must leave no restore point of that VM. */
  const assertNoNewPoint = (vm: string) =>
    assert.deepEqual(
      json(coffer(['list', '--repo', repo, '--vm', vm, '--json'])),
      [],
      'a failed backup left a restore point',
    );

  /** nbdkit on 127.0.0.1:port (helpers/servers.ts), stopped by pid after the tests. */
  const startNbdkit = async (port: number, plugin: string, args: string[], filters: string[] = []): Promise<Daemon> => {
    const d = startSharedNbdkit(tmp.path, port, plugin, args, filters);
    daemons.push(d);
    return d;
  };

  /**
   * Runs `coffer backup` asynchronously (the fake server lives in this process, so the CLI must not block the event
   * loop) and kills it by pid if it outlives limitMs. Returns the result, whether it was killed, and the elapsed time.
   */
  const backup = async (
    source: string,
    extra: string[] = [],
    limitMs = 25_000,
  ): Promise<CliResult & { ms: number; killed: boolean; vm: string }> => {
    const started = Date.now();
    const vm = `nbd-fault-${vms++}`;
    const { child, done } = cofferAsync(['backup', '--repo', repo, '--vm', vm, source, '--json', ...extra]);
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      child.kill('SIGKILL');
    }, limitMs);
    const r = await done;
    clearTimeout(timer);
    return { ...r, ms: Date.now() - started, killed, vm };
  };

  const expectFailure = async (source: string, message: RegExp, opts: { extra?: string[]; maxMs?: number } = {}) => {
    // a run that outlives its bound is killed 2 s after it (keeps this file short when the bound is violated)
    const r = await backup(source, opts.extra ?? [], opts.maxMs !== undefined ? opts.maxMs + 2_000 : 25_000);
    assert.ok(
      !r.killed,
      `coffer backup did not finish within its bound (killed after ${r.ms} ms)\nstderr: ${r.stderr}`,
    );
    const err = expectError(r, 8, 'SOURCE_UNREADABLE');
    assert.match(err.message, message);
    if (opts.maxMs !== undefined)
      assert.ok(
        r.ms < opts.maxMs,
        `took ${r.ms} ms (bound ${opts.maxMs} ms): ${err.message}\n${r.stderr.split('\n').filter((l) => /reconnecting/.test(l)).length} reconnect warnings`,
      );
    assertNoNewPoint(r.vm);
    return { r, err };
  };

  const track = (d: Daemon) => {
    daemons.push(d);
    return d;
  };

  // -----------------------------------------------------------------------------------------------------------------
  // (a) real servers

  test('nbdkit error filter (EIO on every read): exit 8 naming EIO', T, async () => {
    const port = await freePort();
    const d = await startNbdkit(port, 'pattern', ['size=16M', 'error=EIO', 'error-pread-rate=100%'], ['error']);
    try {
      await expectFailure(`nbd://127.0.0.1:${port}/`, /EIO/, { maxMs: 10_000 });
    } finally {
      await d.stop();
    }
  });

  test('nbdkit error filter (EIO on every request, block status included): exit 8 naming EIO', T, async () => {
    const port = await freePort();
    const d = await startNbdkit(port, 'memory', ['size=64M', 'error=EIO', 'error-rate=100%'], ['error']);
    try {
      await expectFailure(`nbd://127.0.0.1:${port}/`, /EIO/, { maxMs: 10_000 });
    } finally {
      await d.stop();
    }
  });

  test('nbdkit delay filter (10 s per read) with --timeout 1: a timeout error in bounded time', T, async () => {
    // bound: 4 attempts x 1 s timeout + 0.2 + 0.4 + 0.8 s backoff + 3 handshakes = ~5.5 s; allow for a slow machine
    const port = await freePort();
    const d = await startNbdkit(port, 'pattern', ['size=4M', 'delay-read=10'], ['delay']);
    try {
      const { r } = await expectFailure(`nbd://127.0.0.1:${port}/`, /no reply within 1000 ms|timed out/, {
        extra: ['--timeout', '1'],
        maxMs: 10_000,
      });
      assert.ok(r.ms >= 1000, `failed after ${r.ms} ms, before the timeout could expire`);
    } finally {
      await d.stop();
    }
  });

  test('server killed mid-backup: exit 8, no restore point', T, async () => {
    const port = await freePort();
    const d = await startNbdkit(port, 'pattern', ['size=1G', 'delay-read=50ms'], ['delay']);
    const running = backup(`nbd://127.0.0.1:${port}/`, [], 25_000);
    await new Promise((res) => setTimeout(res, 1000));
    process.kill(d.pid, 'SIGKILL');
    await d.stop();
    const r = await running;
    assert.ok(!r.killed, `coffer backup hung after the server died (killed after ${r.ms} ms)`);
    const err = expectError(r, 8, 'SOURCE_UNREADABLE');
    assert.match(err.message, /closed|refused|reset|connection/i);
    assertNoNewPoint(r.vm);
  });

  // 256 MiB behind a 50 ms read delay takes ~20 s here when the machine is busy, and the restore and the comparison
  // follow: the hang guard and the test's timeout leave room for a loaded CI machine (a hang is still caught)
  test('server restarted on the same port within 0.3 s: the backup succeeds through the reconnect, bit-exact', {
    timeout: 120_000,
  }, async () => {
    const SIZE = 256 * MiB;
    const port = await freePort();
    const d1 = await startNbdkit(port, 'pattern', [`size=${SIZE}`, 'delay-read=50ms'], ['delay']);
    const running = backup(`nbd://127.0.0.1:${port}/`, [], 75_000);
    await new Promise((res) => setTimeout(res, 1000));
    process.kill(d1.pid, 'SIGKILL');
    await d1.stop();
    await new Promise((res) => setTimeout(res, 300));
    const d2 = await startNbdkit(port, 'pattern', [`size=${SIZE}`, 'delay-read=50ms'], ['delay']);
    let r: Awaited<typeof running>;
    try {
      r = await running;
    } finally {
      await d2.stop();
    }
    assert.ok(!r.killed, `coffer backup hung (killed after ${r.ms} ms)`);
    const res = expectOk(r);
    assert.match(r.stderr, /reconnecting/, 'the backup went through a reconnect');
    const out = join(tmp.path, 'restored-pattern.raw');
    expectOk(coffer(['restore', '--repo', repo, res.id, '--disk', '0', '--target', out, '--json']));
    const fd = openSync(out, 'r');
    try {
      const buf = Buffer.alloc(16 * MiB);
      for (let off = 0; off < SIZE; off += buf.length) {
        assert.equal(readSync(fd, buf, 0, buf.length, off), buf.length);
        assert.ok(
          buf.equals(patternBytes(off, buf.length)),
          `restored bytes differ from the export in [${off}, +16 MiB)`,
        );
      }
    } finally {
      closeSync(fd);
    }
  });

  test('connecting to a closed port: exit 8 "connection refused"', T, async () => {
    const port = await freePort();
    await expectFailure(`nbd://127.0.0.1:${port}/`, /connection refused/, { maxMs: 10_000 });
  });

  test('unknown export name: exit 8 naming the export', T, async () => {
    const img = join(tmp.path, 'named.raw');
    run('qemu-img', ['create', '-q', '-f', 'raw', img, '8M']);
    const port = await freePort();
    const pidFile = join(tmp.path, `qemu-nbd-named-${port}.pid`);
    const q = spawnSync(
      'qemu-nbd',
      [
        '-r',
        '-t',
        '--fork',
        `--pid-file=${pidFile}`,
        '-b',
        '127.0.0.1',
        '-p',
        String(port),
        '-f',
        'raw',
        '-x',
        'disk0',
        img,
      ],
      { encoding: 'utf8', timeout: 30_000 },
    );
    assert.equal(q.status, 0, q.stderr);
    const pid = Number(run('cat', [pidFile]).trim());
    const d = track({
      pid,
      async stop() {
        try {
          process.kill(pid, 'SIGTERM');
        } catch {
          /* gone */
        }
        for (let i = 0; i < 100; i++) {
          try {
            process.kill(pid, 0);
          } catch {
            return;
          }
          await new Promise((res) => setTimeout(res, 20));
        }
      },
    });
    try {
      // the right name works; a wrong one is named in the error
      await expectFailure(`nbd://127.0.0.1:${port}/no-such-export`, /no-such-export/, { maxMs: 10_000 });
    } finally {
      await d.stop();
    }
  });

  test('a dirty bitmap that does not exist: exit 8 naming the bitmap', T, async () => {
    const img = join(tmp.path, 'nobitmap.qcow2');
    run('qemu-img', ['create', '-q', '-f', 'qcow2', img, '8M']);
    const port = await freePort();
    const d = track(startQemuNbd(tmp.path, img, { port }));
    try {
      await expectFailure(`nbd://127.0.0.1:${port}/?bitmap=nope`, /nope/, { maxMs: 10_000 });
    } finally {
      await d.stop();
    }
  });

  // -----------------------------------------------------------------------------------------------------------------
  // (b) a fake server: protocol violations

  const withFake = async (opts: FakeNbdOptions, fn: (s: FakeNbdServer) => Promise<void>) => {
    const s = await startFakeNbd(opts);
    try {
      await fn(s);
    } finally {
      await s.close();
    }
  };
  const PROTO = /NBD protocol error/;

  test('fake server sanity: a well-behaved fake backs up bit-exact', T, async () => {
    await withFake({}, async (s) => {
      const r = await backup(s.uri);
      const res = expectOk(r);
      const out = join(tmp.path, 'restored-fake.raw');
      expectOk(coffer(['restore', '--repo', repo, res.id, '--disk', '0', '--target', out, '--json']));
      const got = Buffer.alloc(4 * MiB);
      const fd = openSync(out, 'r');
      readSync(fd, got, 0, got.length, 0);
      closeSync(fd);
      assert.ok(got.equals(patternBytes(0, 4 * MiB)));
    });
  });

  test('wrong greeting magic', T, async () => {
    const g = Buffer.alloc(18);
    g.write('HTTP/1.1 400 Bad R', 'latin1');
    await withFake({ greeting: g }, (s) =>
      expectFailure(s.uri, /not an NBD server \(bad greeting magic\)/, { maxMs: 10_000 }).then(() => undefined),
    );
  });

  test('old-style handshake', T, async () => {
    const g = Buffer.alloc(152);
    g.writeBigUInt64BE(NBDMAGIC, 0);
    g.writeBigUInt64BE(OLDSTYLE_MAGIC, 8);
    g.writeBigUInt64BE(4n * BigInt(MiB), 16);
    await withFake({ greeting: g }, (s) => expectFailure(s.uri, /old-style/, { maxMs: 10_000 }).then(() => undefined));
  });

  test('bad option reply magic', T, async () => {
    await withFake({ optionReply: (_o, r) => (r.writeBigUInt64BE(0x1122334455667788n, 0), r) }, (s) =>
      expectFailure(s.uri, /bad option reply magic/, { maxMs: 10_000 }).then(() => undefined),
    );
  });

  test('a huge option reply length (2^31)', T, async () => {
    await withFake({ optionReply: (_o, r) => (r.writeUInt32BE(2 ** 31, 16), r) }, (s) =>
      expectFailure(s.uri, /option reply of 2147483648 bytes/, { maxMs: 10_000 }).then(() => undefined),
    );
  });

  test('an export size of 2^63', T, async () => {
    await withFake({ size: 2n ** 63n }, (s) =>
      expectFailure(s.uri, /absurd export size/, { maxMs: 10_000 }).then(() => undefined),
    );
  });

  test('a read reply with the wrong magic', T, async () => {
    await withFake(
      {
        onRead: (req, c) =>
          c.chunk(REPLY_FLAG_DONE, REPLY_TYPE_OFFSET_DATA, req.cookie, Buffer.alloc(8 + req.length), {
            magic: 0xdeadbeef,
          }),
      },
      (s) => expectFailure(s.uri, /bad reply magic 0xdeadbeef/, { maxMs: 10_000 }).then(() => undefined),
    );
  });

  test('a reply for an unknown cookie', T, async () => {
    await withFake(
      {
        onRead: (req, c) =>
          c.chunk(REPLY_FLAG_DONE, REPLY_TYPE_OFFSET_DATA, req.cookie + 1000n, offsetData(req.offset, req.length)),
      },
      (s) => expectFailure(s.uri, /unknown cookie/, { maxMs: 10_000 }).then(() => undefined),
    );
  });

  test('an OFFSET_DATA chunk outside the requested range', T, async () => {
    await withFake(
      {
        onRead: (req, c) =>
          c.chunk(REPLY_FLAG_DONE, REPLY_TYPE_OFFSET_DATA, req.cookie, offsetData(req.offset + req.length, 4096)),
      },
      (s) => expectFailure(s.uri, /outside the request/, { maxMs: 10_000 }).then(() => undefined),
    );
  });

  test('an oversized OFFSET_DATA chunk (longer than the request)', T, async () => {
    await withFake(
      {
        onRead: (req, c) =>
          c.chunk(REPLY_FLAG_DONE, REPLY_TYPE_OFFSET_DATA, req.cookie, offsetData(req.offset, req.length + 65536)),
      },
      (s) => expectFailure(s.uri, /exceeds the request|outside the request/, { maxMs: 10_000 }).then(() => undefined),
    );
  });

  test('a short read (fewer bytes than requested, then DONE)', T, async () => {
    await withFake(
      {
        onRead: (req, c) =>
          c.chunk(REPLY_FLAG_DONE, REPLY_TYPE_OFFSET_DATA, req.cookie, offsetData(req.offset, req.length / 2)),
      },
      (s) => expectFailure(s.uri, /answered with \d+ bytes/, { maxMs: 10_000 }).then(() => undefined),
    );
  });

  test('overlapping OFFSET_DATA chunks (the first half twice) are not counted as a full read', T, async () => {
    // covered += n counts bytes, not ranges: the same half sent twice adds up to the request length
    await withFake(
      {
        onRead: (req, c) => {
          c.chunk(0, REPLY_TYPE_OFFSET_DATA, req.cookie, offsetData(req.offset, req.length / 2));
          c.chunk(REPLY_FLAG_DONE, REPLY_TYPE_OFFSET_DATA, req.cookie, offsetData(req.offset, req.length / 2));
        },
      },
      (s) => expectFailure(s.uri, PROTO, { maxMs: 10_000 }).then(() => undefined),
    );
  });

  test('a server that accepts and never answers a read, with --timeout 1: timeout after retries', T, async () => {
    // bound: 4 attempts x 1 s + 1.4 s backoff + handshakes = ~5.5 s
    await withFake({ onRead: () => undefined }, async (s) => {
      const { r } = await expectFailure(s.uri, /no reply within 1000 ms/, { extra: ['--timeout', '1'], maxMs: 10_000 });
      assert.ok(r.ms >= 1000, `failed after ${r.ms} ms`);
      assert.ok(s.connections >= 2, `reconnected (${s.connections} connections)`);
    });
  });

  test('a BLOCK_STATUS reply with a zero-length extent', T, async () => {
    await withFake(
      {
        onBlockStatus: (req, c) => {
          const p = Buffer.alloc(12);
          p.writeUInt32BE(1, 0);
          p.writeUInt32BE(0, 4);
          c.chunk(REPLY_FLAG_DONE, REPLY_TYPE_BLOCK_STATUS, req.cookie, p);
        },
      },
      (s) => expectFailure(s.uri, /zero-length block status extent/, { maxMs: 10_000 }).then(() => undefined),
    );
  });

  test('a server that closes the socket in the middle of a data payload: retried, then exit 8', T, async () => {
    await withFake(
      {
        onRead: (req, c) => {
          const full = Buffer.alloc(20 + 8 + req.length);
          full.writeUInt32BE(0x668e33ef, 0);
          full.writeUInt16BE(REPLY_FLAG_DONE, 4);
          full.writeUInt16BE(REPLY_TYPE_OFFSET_DATA, 6);
          full.writeBigUInt64BE(req.cookie, 8);
          full.writeUInt32BE(8 + req.length, 16);
          full.writeBigUInt64BE(BigInt(req.offset), 20);
          c.socket.end(full.subarray(0, 20 + 8 + req.length / 2));
          c.socket.destroySoon();
        },
      },
      async (s) => {
        const { err } = await expectFailure(s.uri, /closed the connection|connection closed|reset/, { maxMs: 15_000 });
        assert.ok(s.connections >= 2, `reconnected (${s.connections} connections): ${err.message}`);
      },
    );
  });
});

function offsetData(offset: number, length: number): Buffer {
  const p = Buffer.alloc(8);
  p.writeBigUInt64BE(BigInt(offset));
  return Buffer.concat([p, patternBytes(offset, length)]);
}
