import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CofferError } from '../../shared/index.js';
import { AgentLineParser, GUEST_AGENT_LIMITS, waitForGuestAgent } from './guest-agent.js';

const isProtocol = (e: unknown) => e instanceof CofferError && e.code === 'GUEST_AGENT_PROTOCOL';

test('agent replies: lines split across chunks, the 0xFF delimiter skipped, blank lines ignored', () => {
  const p = new AgentLineParser();
  assert.deepEqual(p.push(Buffer.from('{"return": 1')), []);
  assert.deepEqual(p.push(Buffer.from('23}\n\n\xff{"return": {}}\n', 'latin1')), [{ return: 123 }, { return: {} }]);
});

test('agent replies are untrusted: not JSON, or a line over the limit, is GUEST_AGENT_PROTOCOL', () => {
  assert.throws(() => new AgentLineParser().push(Buffer.from('{"return": \n')), isProtocol);
  assert.throws(() => new AgentLineParser().push(Buffer.from('\x00\x01garbage\n')), isProtocol);
  // without a newline: refused as soon as the buffered part is over the limit, not when memory runs out
  const p = new AgentLineParser();
  assert.throws(() => {
    for (let i = 0; i < 100; i++) p.push(Buffer.alloc(4096, 0x61));
  }, isProtocol);
  const long = Buffer.concat([Buffer.alloc(GUEST_AGENT_LIMITS.maxLineBytes + 1, 0x20), Buffer.from('\n')]);
  assert.throws(() => new AgentLineParser().push(long), isProtocol);
});

/**
 * A hostile "agent" on QEMU's side of the socket: a test double, because a real qemu-ga (test/check-boot-agent.test.ts
 * boots one) never sends garbage. It answers every line with `reply(line)`.
 */
async function fakeAgent(reply: (line: string) => string | undefined): Promise<{ path: string; close(): void }> {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-qga-'));
  const path = join(dir, 'qga.sock');
  const server: Server = createServer((s) => {
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString();
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        const r = reply(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        if (r !== undefined) s.write(r);
        nl = buf.indexOf('\n');
      }
    });
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(path, r));
  return {
    path,
    close: () => {
      server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

test('waitForGuestAgent: guest-sync with our id, then guest-ping; stale errors and foreign ids skipped', async () => {
  const agent = await fakeAgent((line) => {
    const m = JSON.parse(line) as { execute: string; arguments?: { id: number } };
    if (m.execute === 'guest-sync')
      return `{"error": {"class": "GenericError"}}\n{"return": 7}\n{"return": ${m.arguments!.id}}\n`;
    if (m.execute === 'guest-ping') return '{"return": {}}\n';
    return undefined;
  });
  try {
    assert.equal(await waitForGuestAgent(agent.path, { timeoutMs: 60_000 }), true);
  } finally {
    agent.close();
  }
});

test('waitForGuestAgent: garbage from the guest is GUEST_AGENT_PROTOCOL, not a hang', async () => {
  const agent = await fakeAgent(() => 'this is not json\n');
  try {
    await assert.rejects(waitForGuestAgent(agent.path, { timeoutMs: 60_000 }), isProtocol);
  } finally {
    agent.close();
  }
});

test('waitForGuestAgent: an agent that never answers, or no socket at all, ends false at the time limit', async () => {
  const silent = await fakeAgent(() => undefined);
  try {
    assert.equal(await waitForGuestAgent(silent.path, { timeoutMs: 300 }), false);
  } finally {
    silent.close();
  }
  assert.equal(await waitForGuestAgent(join(tmpdir(), 'coffer-no-such-dir', 'qga.sock'), { timeoutMs: 300 }), false);
  const ac = new AbortController();
  const waiting = waitForGuestAgent(join(tmpdir(), 'coffer-no-such-dir', 'qga.sock'), {
    timeoutMs: 600_000,
    signal: ac.signal,
  });
  ac.abort();
  assert.equal(await waiting, false);
});
