import type { Command } from 'commander';
import { filesCommands } from './files-commands.js';
import type { CommandKit } from './program.js';
import { serverCommands } from './server-commands.js';
import { vsphereCommands } from './vsphere-commands.js';
import { copyCommands } from './copy-commands.js';
import { lockCommands } from './lock-commands.js';
import { archiveCommands } from './archive-commands.js';
import { maintCommands } from './maint-commands.js';

/** A module that adds commands to the coffer CLI. Each area (files, vsphere, maintenance, cloud, server) has one. */
export type CommandModule = (program: Command, kit: CommandKit) => void;

/** Registered command modules, in help order. */
export const COMMAND_MODULES: CommandModule[] = [vsphereCommands, maintCommands, copyCommands, lockCommands, archiveCommands, filesCommands, serverCommands];
