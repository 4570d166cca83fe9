// Preloaded (node --import, through NODE_OPTIONS so that child processes get it too) by scripts/run-tests.mjs for the
// Node 24 run: better-sqlite3 is not N-API, so node_modules/ holds a build for Node 20's ABI only. When this process's
// ABI is the one .tools/node24/native was built for (scripts/setup.sh), `better-sqlite3` resolves to that copy instead.
// Under any other Node (a Node 20 child spawned by name, say) it does nothing.
import { existsSync, readFileSync } from 'node:fs';
import * as nodeModule from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const native = join(dirname(fileURLToPath(import.meta.url)), '..', '.tools', 'node24', 'native');
const abiFile = join(native, 'ABI');
if (
  existsSync(abiFile) &&
  readFileSync(abiFile, 'utf8').trim() === process.versions.modules &&
  nodeModule.registerHooks
) {
  const entry = pathToFileURL(join(native, 'node_modules', 'better-sqlite3', 'lib', 'index.js')).href;
  nodeModule.registerHooks({
    resolve(specifier, context, nextResolve) {
      if (specifier === 'better-sqlite3') return { url: entry, format: 'commonjs', shortCircuit: true };
      return nextResolve(specifier, context);
    },
  });
}
