import { z } from 'zod';

/** Control characters (NUL, newline, escape, DEL ...): never part of a path, URL or name the server accepts. */
export const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

/** A path-like string (restore target, disk source, folder): no control characters, NUL included. */
export const pathLike = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .refine((s) => !CONTROL_CHARS.test(s), { message: 'must not contain control characters (NUL, newline, tab, ...)' });

/**
 * A guest path: guest file names may hold odd characters, but never NUL
 * (no filesystem allows it; C APIs truncate there).
 */
export const guestPath = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .refine((s) => !s.includes('\u0000'), { message: 'must not contain NUL bytes' });

/** The URL schemes `openSource` reads (src/sources/open-source.ts); anything else is refused when a policy is saved. */
export const SOURCE_SCHEMES = ['file', 'nbd', 'nbds', 'nbd+unix', 'nbds+unix'] as const;

/**
 * A disk source of a policy or the inventory: a path or a URL of a supported scheme, never with credentials in it
 * (they would be shown to every viewer of policies and jobs): secrets belong in the server config's secret references.
 */
export const diskSource = pathLike(4096).superRefine((s, ctx) => {
  const m = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]*)/i.exec(s);
  if (!m) return;
  const scheme = m[1]!.toLowerCase();
  if (m[2]!.includes('@')) {
    ctx.addIssue({
      code: 'custom',
      message:
        `credentials in source URLs are refused (${scheme}://USER:PASSWORD@... would be shown to every viewer): ` +
        'name a configured vCenter (vcenters[] with passwordFile or passwordEnv) or use a source without userinfo',
    });
    return;
  }
  if (!(SOURCE_SCHEMES as readonly string[]).includes(scheme)) {
    ctx.addIssue({
      code: 'custom',
      message:
        `unsupported source ${scheme}:// (supported: paths, ${SOURCE_SCHEMES.map((x) => `${x}://`).join(', ')}; ` +
        'vCenter VMs through { vcenter, name | pattern | folder })',
    });
  }
});

/** Policy ids are 12 hex digits (catalog/policies.ts): a policy name of that form could shadow another policy's id. */
export const POLICY_ID = /^[0-9a-f]{12}$/;
