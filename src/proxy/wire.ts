import { z } from 'zod';
import { CofferError } from '../shared/index.js';

/**
 * The server's answers as the proxy checks them (the server is trusted, but a proxy never crashes on a malformed
 * answer: it is a coded TRANSIENT failure, retried). The request side is routes/proxies.ts on the server.
 */
export const Registered = z.object({
  name: z.string(),
  drained: z.boolean(),
  leaseMs: z.number().int().positive(),
  heartbeatMs: z.number().int().positive(),
});

export const HeartbeatAnswer = z.object({ drained: z.boolean(), lost: z.array(z.number().int()) });

export const Assignment = z.object({
  id: z.number().int().positive(),
  attempt: z.number().int().positive(),
  /** a src/jobs description; runJob validates it */
  description: z.unknown(),
  repository: z.object({ name: z.string().min(1), location: z.string().min(1), password: z.string() }),
  vcenter: z
    .object({
      name: z.string(),
      url: z.string(),
      user: z.string(),
      password: z.string(),
      thumbprint: z.string().optional(),
      insecureTls: z.boolean(),
    })
    .optional(),
});
export type Assignment = z.infer<typeof Assignment>;

export const Claimed = z.object({ jobs: z.array(Assignment).max(256) });

export function parseAnswer<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (!r.success)
    throw new CofferError('TRANSIENT', `the server's answer to ${what} is not what this proxy expects`, {
      details: { issues: r.error.issues.slice(0, 5).map((i) => `${i.path.join('.')}: ${i.message}`) },
    });
  return r.data;
}
