import type { Command } from 'commander';
import { readPassword, type CommandKit, type CommonOpts } from '../kit/index.js';

/** `coffer key list|add|remove|passwd`: the repository's keys (passwords). */
export function keyCommand(program: Command, kit: CommandKit): void {
  const { deps } = kit;
  const key = program.command('key').description('manage the repository keys (passwords)');
  kit.common(key.command('list').description('list keys')).action(async (o: CommonOpts) => {
    const repo = await kit.openRepo(o, kit.logger(o));
    const keys = (await repo.listKeys()).map((k) => ({
      id: k.id,
      current: k.id === repo.keyId,
      createdAt: k.createdAt,
      host: k.host,
      user: k.user,
      label: k.label,
      kdf: { algorithm: k.kdf.algorithm, N: k.kdf.N, r: k.kdf.r, p: k.kdf.p },
    }));
    if (o.json) kit.writeJson(keys);
    else
      for (const k of keys)
        kit.write(`${k.current ? '*' : ' '} ${k.id}  ${k.createdAt}  ${k.user}@${k.host}  ${k.label}\n`);
  });
  kit
    .common(
      key.command('add').description('add a key: the new password from $COFFER_NEW_PASSWORD or --new-password-file'),
    )
    .option('--new-password-file <file>', 'read the new password from FILE')
    .option('--label <text>', 'a label for the key', '')
    .action(async (o: CommonOpts & { newPasswordFile?: string; label: string }) => {
      const repo = await kit.openRepo(o, kit.logger(o));
      const k = await repo.addKey(await readPassword(deps, o.newPasswordFile, 'COFFER_NEW_PASSWORD'), o.label);
      if (o.json) kit.writeJson({ id: k.id });
      else kit.write(`added key ${k.id}\n`);
    });
  kit
    .common(key.command('remove').description('remove a key (not the one in use, not the last)'))
    .argument('<key-id>')
    .action(async (keyId: string, o: CommonOpts) => {
      const repo = await kit.openRepo(o, kit.logger(o));
      await repo.removeKey(keyId);
      if (o.json) kit.writeJson({ removed: keyId });
      else kit.write(`removed key ${keyId}\n`);
    });
  kit
    .common(
      key
        .command('passwd')
        .description('change the password: adds a key with the new password, then removes the current one'),
    )
    .option('--new-password-file <file>', 'read the new password from FILE')
    .action(async (o: CommonOpts & { newPasswordFile?: string }) => {
      const repo = await kit.openRepo(o, kit.logger(o));
      const k = await repo.changePassword(await readPassword(deps, o.newPasswordFile, 'COFFER_NEW_PASSWORD'));
      if (o.json) kit.writeJson({ id: k.id, removed: repo.keyId });
      else kit.write(`password changed: key ${repo.keyId} replaced by ${k.id}\n`);
    });
}
