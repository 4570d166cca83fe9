import type { Command } from 'commander';
import type { CommandKit } from './program.js';
import { maintCommands } from './maint-commands.js';

/** A module that adds commands to the coffer CLI. Each area (files, vsphere, maintenance, cloud, server) has one. */
export type CommandModule = (program: Command, kit: CommandKit) => void;

/** Registered command modules, in help order. */
export const COMMAND_MODULES: CommandModule[] = [maintCommands];
