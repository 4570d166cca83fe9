import { randomInt } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { CofferError, type Op } from '../../shared/index.js';

/** The virtio-serial port name qemu-ga opens in the guest (its default). */
export const GUEST_AGENT_PORT = 'org.qemu.guest_agent.0';

export const GUEST_AGENT_LIMITS = {
  /** a reply line longer than this is not the agent's protocol (guest-sync/guest-ping replies are a few bytes) */
  maxLineBytes: 64 * 1024,
  /** guest-sync is sent again this often until an answer comes (the first ones may wait in a port nobody reads) */
  syncEveryMs: 1000,
  /** connecting to QEMU's socket is retried this often (it exists once QEMU listens) */
  connectEveryMs: 200,
} as const;

/**
 * Splits the agent's byte stream into lines and parses each as JSON, treating it as untrusted (the guest writes it):
 * a line longer than GUEST_AGENT_LIMITS.maxLineBytes or one that is not JSON is GUEST_AGENT_PROTOCOL. The 0xFF
 * delimiter byte qemu-ga writes before a `guest-sync-delimited` reply is skipped.
 */
export class AgentLineParser {
  private buf: Buffer = Buffer.alloc(0);

  /** the messages completed by `chunk`, in order */
  push(chunk: Buffer): unknown[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: unknown[] = [];
    for (;;) {
      const nl = this.buf.indexOf(0x0a);
      if (nl < 0) break;
      if (nl > GUEST_AGENT_LIMITS.maxLineBytes) throw tooLong();
      const line = this.buf.subarray(0, nl);
      this.buf = this.buf.subarray(nl + 1);
      const text = line
        .toString('utf8')
        .replace(/\uFFFD/g, '')
        .trim();
      if (text === '') continue;
      try {
        out.push(JSON.parse(text));
      } catch {
        throw new CofferError(
          'GUEST_AGENT_PROTOCOL',
          `the guest agent answered with a line that is not JSON: ${JSON.stringify(text.slice(0, 80))}`,
        );
      }
    }
    if (this.buf.length > GUEST_AGENT_LIMITS.maxLineBytes) throw tooLong();
    return out;
  }
}

function tooLong(): CofferError {
  return new CofferError(
    'GUEST_AGENT_PROTOCOL',
    `the guest agent sent a line longer than ${GUEST_AGENT_LIMITS.maxLineBytes} bytes`,
  );
}

export interface AgentWaitOptions extends Op {
  /** give up after this long (the rest of the boot's time limit) */
  timeoutMs: number;
}

/**
 * Waits until the QEMU guest agent behind QEMU's chardev socket `path` answers: `guest-sync` with an id Coffer chose
 * (sent again every second: the first may sit in the port until the agent opens it; any of them answered proves the
 * agent reads and writes), then `guest-ping`. Resolves true when both were answered, false when the time limit passed
 * or the signal fired. Replies are parsed as untrusted (AgentLineParser); a reply that is not the protocol rejects
 * with GUEST_AGENT_PROTOCOL; error replies (to a stale half-read command) are skipped. The connection is closed on
 * every path, so a boot script can connect to the socket afterwards (QEMU serves one client at a time).
 */
export function waitForGuestAgent(path: string, o: AgentWaitOptions): Promise<boolean> {
  return new Promise<boolean>((resolve, reject) => {
    let sock: Socket | undefined;
    let settled = false;
    let syncTimer: NodeJS.Timeout | undefined;
    let retryTimer: NodeJS.Timeout | undefined;
    const sent = new Set<number>();
    let phase: 'sync' | 'ping' = 'sync';
    const done = (err: CofferError | undefined, ok = false) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      clearInterval(syncTimer);
      clearTimeout(retryTimer);
      o.signal?.removeEventListener('abort', onAbort);
      sock?.destroy();
      if (err) reject(err);
      else resolve(ok);
    };
    const deadline = setTimeout(() => done(undefined, false), o.timeoutMs);
    const onAbort = () => done(undefined, false);
    if (o.signal?.aborted) return done(undefined, false);
    o.signal?.addEventListener('abort', onAbort, { once: true });
    const sendSync = () => {
      if (!sock || sent.size >= 100_000) return;
      const id = randomInt(1, 2 ** 31);
      sent.add(id);
      sock.write(`${JSON.stringify({ execute: 'guest-sync', arguments: { id } })}\n`);
    };
    const onMessage = (m: unknown) => {
      if (typeof m !== 'object' || m === null || Array.isArray(m)) {
        throw new CofferError('GUEST_AGENT_PROTOCOL', 'the guest agent answered with something that is not an object');
      }
      if ('error' in m) return; // e.g. the rest of a command the agent read half of before it was restarted
      if (!('return' in m)) return; // events and the like: not for us
      const r = (m as { return: unknown }).return;
      if (phase === 'sync' && typeof r === 'number' && sent.has(r)) {
        phase = 'ping';
        clearInterval(syncTimer);
        sock!.write(`${JSON.stringify({ execute: 'guest-ping' })}\n`);
      } else if (phase === 'ping' && typeof r === 'object' && r !== null && !Array.isArray(r)) {
        done(undefined, true);
      }
    };
    const attempt = () => {
      if (settled) return;
      const parser = new AgentLineParser();
      const s = connect(path);
      sock = s;
      s.on('connect', () => {
        sendSync();
        syncTimer = setInterval(sendSync, GUEST_AGENT_LIMITS.syncEveryMs);
      });
      s.on('data', (d: Buffer) => {
        try {
          for (const m of parser.push(d)) {
            if (settled) return;
            onMessage(m);
          }
        } catch (e) {
          done(e instanceof CofferError ? e : new CofferError('GUEST_AGENT_PROTOCOL', String(e)));
        }
      });
      s.on('error', () => undefined);
      s.on('close', () => {
        clearInterval(syncTimer);
        if (settled) return;
        // not listening yet (ENOENT, ECONNREFUSED) or QEMU dropped us: again a bit later, until the deadline
        phase = 'sync';
        retryTimer = setTimeout(attempt, GUEST_AGENT_LIMITS.connectEveryMs);
      });
    };
    attempt();
  });
}
