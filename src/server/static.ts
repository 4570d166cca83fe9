import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';

/**
 * web/dist at the package root (dist/server/static.js -> ../../web/dist): the console as `npm run build` bundles it
 * from web/src (Preact + esbuild, docs/DESIGN.md "Console"); it ships in the npm package, nothing comes from a CDN.
 */
export const WEB_DIR = fileURLToPath(new URL('../../web/dist/', import.meta.url));

const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml',
};
const FILES = /^[a-z0-9-]+\.(html|js|css|svg)$/;

/** Serves the console: only flat file names from web/ (no paths, no traversal), with a strict CSP. */
export function registerConsole(app: FastifyInstance): void {
  const serve = async (name: string, reply: import('fastify').FastifyReply) => {
    const m = FILES.exec(name);
    if (!m) return reply.code(404).send({ error: { code: 'NOT_FOUND', message: 'not found' } });
    let body: Buffer;
    try {
      body = await readFile(WEB_DIR + name);
    } catch {
      if (name === 'index.html')
        return reply.code(404).send({
          error: { code: 'NOT_FOUND', message: 'the console is not built: run `npm run build` (web/dist is missing)' },
        });
      return reply.code(404).send({ error: { code: 'NOT_FOUND', message: 'not found' } });
    }
    return reply
      .header('content-type', TYPES[m[1]!]!)
      .header('cache-control', 'no-cache')
      .header('x-content-type-options', 'nosniff')
      .header('x-frame-options', 'DENY')
      .header('referrer-policy', 'no-referrer')
      .header(
        'content-security-policy',
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; " +
          "frame-ancestors 'none'",
      )
      .send(body);
  };
  app.get('/', (_req, reply) => serve('index.html', reply));
  app.get('/console/:file', (req, reply) => serve((req.params as { file: string }).file, reply));
}
