#!/usr/bin/env node
// latency-proxy.mjs TARGET_PORT DELAY_MS [PIDFILE]: a TCP proxy on 127.0.0.1 that forwards to 127.0.0.1:TARGET_PORT
// and holds every piece of data DELAY_MS in each direction (so a request/response round trip costs 2 x DELAY_MS more,
// and a new connection's handshake too). Bandwidth is not limited. Prints {"port": N} on stdout once listening, writes
// its pid to PIDFILE when given, and runs until SIGTERM. For benchmarks only (bench/azure-throughput.sh).
// TRACE_FILE=path: appends one line per HTTP request and response seen (ms since start, connection, request line or
// status), to see how many requests a client keeps in flight and where it waits (a diagnostic, not exact parsing).
import { appendFileSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';

const target = Number(process.argv[2]);
const delay = Number(process.argv[3] ?? 0);
const pidFile = process.argv[4];
if (!Number.isInteger(target) || !(delay >= 0)) {
  console.error('usage: latency-proxy.mjs TARGET_PORT DELAY_MS [PIDFILE]');
  process.exit(2);
}

/** Forwards `from` to `to` with `delay` ms on each piece, keeping order and pausing `from` while `to` is full. */
function pipeDelayed(from, to) {
  let pending = 0;
  let ended = false;
  const push = (fn) => (delay === 0 ? fn() : setTimeout(fn, delay));
  from.on('data', (buf) => {
    pending++;
    push(() => {
      pending--;
      if (!to.destroyed && !to.write(buf)) {
        from.pause();
        to.once('drain', () => from.resume());
      }
      if (ended && pending === 0) to.end();
    });
  });
  from.on('end', () => {
    ended = true;
    if (pending === 0) push(() => to.end());
  });
}

const traceFile = process.env.TRACE_FILE;
const t0 = performance.now();
let conns = 0;
const trace = (conn, dir, buf) => {
  if (!traceFile) return;
  const head = buf.subarray(0, 200).toString('latin1');
  const m = dir === '>' ? /^(GET|PUT|HEAD|POST|DELETE) (\S+)/.exec(head) : /^HTTP\/1\.1 (\d+)/.exec(head);
  if (m) appendFileSync(traceFile, `${(performance.now() - t0).toFixed(1)} ${conn} ${dir} ${m.slice(1).join(' ')}\n`);
};

const server = createServer((client) => {
  const conn = ++conns;
  client.on('data', (b) => trace(conn, '>', b));
  client.setNoDelay(true);
  const upstream = connect({ host: '127.0.0.1', port: target });
  upstream.on('data', (b) => trace(conn, '<', b));
  upstream.setNoDelay(true);
  const close = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', close);
  upstream.on('error', close);
  client.on('close', () => setTimeout(() => upstream.destroy(), delay));
  upstream.on('close', () => setTimeout(() => client.destroy(), delay));
  pipeDelayed(client, upstream);
  pipeDelayed(upstream, client);
});
server.listen(0, '127.0.0.1', () => {
  if (pidFile) writeFileSync(pidFile, String(process.pid));
  console.log(JSON.stringify({ port: server.address().port }));
});
process.on('SIGTERM', () => process.exit(0));
