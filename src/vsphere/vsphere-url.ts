import { CofferError, type Logger, type Op } from '../shared/index.js';
import type { TlsPolicy } from './https-client.js';
import { VimClient } from './vim-client.js';

/** A parsed vsphere://[USER[:PASSWORD]@]HOST[:PORT][/VM] URL (credentials never printed). */
export interface VsphereUrl {
  host: string;
  port: number;
  user: string | undefined;
  password: string | undefined;
  /** The VM selector after the host: a name, moref, inventory path or glob ('' when none). */
  vm: string;
  /** The URL without credentials, for humans and manifests. */
  display: string;
}

export function isVsphereUrl(spec: string): boolean {
  return /^vsphere:\/\//i.test(spec);
}

export function parseVsphereUrl(spec: string): VsphereUrl {
  const m = /^vsphere:\/\/(?:([^@/]*)@)?(\[[^\]]+\]|[^:/?#]+)(?::(\d{1,5}))?(?:\/(.*))?$/i.exec(spec);
  if (!m)
    throw new CofferError(
      'USAGE',
      `invalid vSphere URL ${JSON.stringify(spec.replace(/\/\/[^@/]*@/, '//***@'))} (expected ` +
        `vsphere://HOST[:PORT][/VM])`,
    );
  const port = m[3] ? Number(m[3]) : 443;
  if (port < 1 || port > 65535) throw new CofferError('USAGE', `invalid port in ${spec}`);
  const host = m[2]!.replace(/^\[(.*)\]$/, '$1');
  let user: string | undefined;
  let password: string | undefined;
  if (m[1] !== undefined) {
    const i = m[1].indexOf(':');
    try {
      user = decodeURIComponent(i < 0 ? m[1] : m[1].slice(0, i));
      password = i < 0 ? undefined : decodeURIComponent(m[1].slice(i + 1));
    } catch {
      throw new CofferError('USAGE', 'invalid percent-encoding in the user info of the vSphere URL');
    }
  }
  let vm: string;
  try {
    vm = decodeURIComponent((m[4] ?? '').replace(/\?.*$/, ''));
  } catch {
    throw new CofferError('USAGE', `invalid percent-encoding in the VM part of ${spec}`);
  }
  const shownHost = host.includes(':') ? `[${host}]` : host;
  return {
    host,
    port,
    user,
    password,
    vm,
    display: `vsphere://${shownHost}:${port}${vm ? `/${encodeURIComponent(vm).replace(/%2F/g, '/')}` : ''}`,
  };
}

export interface ConnectOptions extends Op {
  tls: TlsPolicy;
  env: Record<string, string | undefined>;
  logger?: Logger | undefined;
  keepAliveMs?: number;
}

/**
 * Logs in to the vCenter of a vsphere:// URL; credentials from the URL or COFFER_VSPHERE_USER /
 * COFFER_VSPHERE_PASSWORD.
 */
export async function connectVsphere(url: VsphereUrl, opts: ConnectOptions): Promise<VimClient> {
  const user = url.user ?? opts.env['COFFER_VSPHERE_USER'];
  const password = url.password ?? opts.env['COFFER_VSPHERE_PASSWORD'];
  if (!user || password === undefined) {
    throw new CofferError(
      'USAGE',
      'no vCenter credentials: set COFFER_VSPHERE_USER and COFFER_VSPHERE_PASSWORD (or put ' +
        'user:password@ in the vsphere:// URL)',
    );
  }
  return VimClient.connect(
    {
      host: url.host,
      port: url.port,
      tls: opts.tls,
      user,
      password,
      logger: opts.logger,
      ...(opts.keepAliveMs ? { keepAliveMs: opts.keepAliveMs } : {}),
    },
    opts,
  );
}
