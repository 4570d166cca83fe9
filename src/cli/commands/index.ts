import type { Command } from 'commander';
import type { CommandKit } from '../kit/index.js';
import { archiveCommand } from './archive.js';
import { backupCommand } from './backup.js';
import { checkCommand } from './check.js';
import { copyCommand } from './copy.js';
import { filesCommand } from './files.js';
import { forgetCommand } from './forget.js';
import { holdCommand } from './hold.js';
import { initCommand } from './init.js';
import { keyCommand } from './key.js';
import { listCommand } from './list.js';
import { lockCommand } from './lock.js';
import { locksCommand } from './locks.js';
import { mountCommand } from './mount.js';
import { proxyCommand } from './proxy.js';
import { pruneCommand } from './prune.js';
import { repairCommand } from './repair.js';
import { restoreCommand } from './restore.js';
import { serverCommand } from './server.js';
import { showCommand } from './show.js';
import { statsCommand } from './stats.js';
import { verifyCommand } from './verify.js';
import { vsphereCommand } from './vsphere.js';

/** Adds one command (or one command group) to the program; one file each under src/cli/commands/. */
export type CommandDefinition = (program: Command, kit: CommandKit) => void;

/** Every command, in the order `coffer --help` lists them. */
export const COMMANDS: readonly CommandDefinition[] = [
  initCommand,
  backupCommand,
  listCommand,
  showCommand,
  statsCommand,
  restoreCommand,
  mountCommand,
  verifyCommand,
  checkCommand,
  keyCommand,
  vsphereCommand,
  forgetCommand,
  pruneCommand,
  holdCommand,
  repairCommand,
  copyCommand,
  lockCommand,
  locksCommand,
  archiveCommand,
  filesCommand,
  serverCommand,
  proxyCommand,
];
