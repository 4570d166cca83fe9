#!/usr/bin/env node
// cloud-servers.mjs WORKDIR: starts Azurite and s3rver on 127.0.0.1 (data under WORKDIR), each behind a counting HTTP
// proxy, writes WORKDIR/servers.json {azurite, s3} (proxy ports) and WORKDIR/servers.pid, and runs until SIGTERM.
// `GET /__count` on a proxy port answers the number of requests forwarded so far.
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, request } from 'node:http';
import { connect, createServer as netServer } from 'node:net';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..');
const WORK = process.argv[2];
const free = () =>
  new Promise((r) => {
    const s = netServer();
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => r(p));
    });
  });
const up = async (port) => {
  for (;;) {
    if (
      await new Promise((r) => {
        const s = connect(port, '127.0.0.1');
        s.once('connect', () => (s.destroy(), r(true)));
        s.once('error', () => r(false));
      })
    )
      return;
    await new Promise((r) => setTimeout(r, 50));
  }
};
const children = [];
function proxy(target) {
  let n = 0;
  const srv = createServer((req, res) => {
    if (req.url === '/__count') return res.end(String(n));
    n++;
    const u = request(
      { host: '127.0.0.1', port: target, method: req.method, path: req.url, headers: req.headers },
      (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
      },
    );
    u.on('error', () => res.destroy());
    req.pipe(u);
  });
  return new Promise((r) => srv.listen(0, '127.0.0.1', () => r(srv.address().port)));
}
const [ap, sp] = [await free(), await free()];
mkdirSync(join(WORK, 'azurite'), { recursive: true });
mkdirSync(join(WORK, 's3rver'), { recursive: true });
children.push(
  spawn(
    process.execPath,
    [
      join(ROOT, 'node_modules/azurite/dist/src/blob/main.js'),
      '--blobHost',
      '127.0.0.1',
      '--blobPort',
      String(ap),
      '--location',
      join(WORK, 'azurite'),
      '--skipApiVersionCheck',
      '--loose',
      '--disableTelemetry',
      '--silent',
    ],
    { stdio: 'ignore' },
  ),
);
children.push(
  spawn(
    process.execPath,
    [
      '-e',
      `const S=require(${JSON.stringify(join(ROOT, 'node_modules/s3rver'))}); new S({address:'127.0.0.1',port:${sp},silent:true,directory:${JSON.stringify(join(WORK, 's3rver'))},configureBuckets:[{name:'restic'}]}).run()`,
    ],
    { stdio: 'ignore' },
  ),
);
await Promise.all([up(ap), up(sp)]);
const servers = { azurite: await proxy(ap), s3: await proxy(sp) };
writeFileSync(join(WORK, 'servers.json'), JSON.stringify(servers));
writeFileSync(join(WORK, 'servers.pid'), String(process.pid));
process.on('SIGTERM', () => {
  for (const c of children) c.kill('SIGTERM');
  setTimeout(() => process.exit(0), 500);
});
