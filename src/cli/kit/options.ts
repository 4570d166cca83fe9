import type { Command } from 'commander';
import { CofferError } from '../../shared/index.js';
import type { TlsPolicy } from '../../vsphere/index.js';

/** --json, --no-progress, -q: how a command reports. */
export interface OutputOpts {
  json?: boolean;
  progress?: boolean;
  quiet?: boolean;
}

/** The options every repository command has (`common` in kit.ts). */
export interface CommonOpts extends OutputOpts {
  repo: string;
  passwordFile?: string;
}

export const REPO_OPTION_HELP =
  'repository location: a directory, azure://ACCOUNT/CONTAINER[/PREFIX] or s3://BUCKET[/PREFIX]';

/** --password-file (its help text says whose password it is) */
export function addPasswordOption(
  c: Command,
  help = 'read the repository password from FILE (default: $COFFER_PASSWORD)',
): Command {
  return c.option('--password-file <file>', help);
}

/** --json, --no-progress, -q */
export function addOutputOptions(c: Command): Command {
  return c
    .option('--json', 'print a machine-readable JSON result on stdout')
    .option('--no-progress', 'no progress output on stderr')
    .option('-q, --quiet', 'only errors and warnings on stderr');
}

/** --insecure-tls / --thumbprint, shared by every command that talks to vCenter. */
export function addTlsOptions(c: Command): Command {
  return c
    .option(
      '--thumbprint <sha256>',
      'pin the vCenter certificate by its SHA-256 fingerprint (a self-signed vCenter; see `coffer vsphere thumbprint`)',
    )
    .option('--insecure-tls', 'do not verify the vCenter certificate at all (lab use only)');
}

export function tlsPolicy(o: { thumbprint?: string; insecureTls?: boolean }): TlsPolicy {
  if (o.thumbprint && o.insecureTls)
    throw new CofferError('USAGE', '--thumbprint and --insecure-tls exclude each other');
  return { thumbprint: o.thumbprint, insecure: Boolean(o.insecureTls) };
}
