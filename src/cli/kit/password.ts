import { readFile } from 'node:fs/promises';
import { CofferError } from '../../shared/index.js';
import type { CliDeps } from './deps.js';

/**
 * The repository password: --password-file F, else $COFFER_PASSWORD_FILE, else $COFFER_PASSWORD (same scheme for other
 * variables), else, on a terminal, a prompt without echo (`confirm`: asked twice, for a new password).
 */
export async function readPassword(
  deps: CliDeps,
  file: string | undefined,
  envName = 'COFFER_PASSWORD',
  opts: { confirm?: boolean } = {},
): Promise<string> {
  const path = file ?? deps.env[`${envName}_FILE`];
  if (path) {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (e) {
      throw new CofferError('USAGE', `cannot read password file ${path}: ${(e as Error).message}`);
    }
    const pw = text.replace(/\r?\n$/, '');
    if (pw === '') throw new CofferError('USAGE', `password file ${path} is empty`);
    return pw;
  }
  const pw = deps.env[envName];
  if ((pw === undefined || pw === '') && deps.promptPassword) {
    const what = envName === 'COFFER_PASSWORD' ? 'repository password' : `password (${envName})`;
    const typed = await deps.promptPassword(`${opts.confirm ? 'new ' : ''}${what}: `);
    if (typed === '') throw new CofferError('USAGE', 'no password: an empty password was typed');
    if (opts.confirm && (await deps.promptPassword(`${what} again: `)) !== typed)
      throw new CofferError('USAGE', 'the two passwords typed differ');
    return typed;
  }
  if (pw === undefined || pw === '') {
    throw new CofferError(
      'USAGE',
      `no password: set ${envName} or ` +
        `pass ${envName === 'COFFER_PASSWORD' ? '--password-file' : '--new-password-file'} FILE ` +
        '(or run it on a terminal to be asked)',
    );
  }
  return pw;
}

/**
 * The ONE rule for the password of a second repository (`copy --to`, `repair --from`; README §Passwords):
 * its own `--<role>-password-file FILE`, else `$COFFER_<ROLE>_PASSWORD_FILE`, else `$COFFER_<ROLE>_PASSWORD`, else the
 * password of the first repository. An empty variable counts as unset.
 */
export async function secondRepositoryPassword(
  deps: CliDeps,
  role: 'TO' | 'FROM',
  file: string | undefined,
  firstPassword: () => Promise<string>,
): Promise<string> {
  const envName = `COFFER_${role}_PASSWORD`;
  const own = (file !== undefined && file !== '') || Boolean(deps.env[`${envName}_FILE`]) || Boolean(deps.env[envName]);
  return own ? readPassword(deps, file || undefined, envName) : firstPassword();
}
