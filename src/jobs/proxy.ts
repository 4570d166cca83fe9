/** What a proxy says it can do (docs/DESIGN.md §Proxies and placement); null lists mean "any". */
export interface ProxyCapabilities {
  /** the server job kinds it runs (remote: backup, verify, prune, check; restores write below the server's dirs) */
  kinds: string[];
  /** how it reads VMs: 'disk' (the static inventory's image paths and nbd:// URLs), 'http', 'nbd', 'hotadd' */
  transports: string[];
  /** repositories it can write (by the server's names); null: every configured one */
  repositories: string[] | null;
  /** vCenters it reaches (by the server's names); null: every configured one */
  vcenters: string[] | null;
  /** the vSphere clusters whose VMs it reads (any transport) and the datastores it reaches; null: any */
  clusters: string[] | null;
  datastores: string[] | null;
}

/** `coffer proxy`'s options (the CLI parses them, src/proxy runs with them). */
export interface ProxyRunOptions extends ProxyCapabilities {
  server: string;
  tokenFile: string;
  caFile?: string | undefined;
  /** default: this host's name */
  name?: string | undefined;
  concurrency: number;
  pollMs: number;
  heartbeatMs?: number | undefined;
  pidFile?: string | undefined;
}
