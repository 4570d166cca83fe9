import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { describe, it } from 'node:test';

const SCRIPT = resolve('scripts/check-layers.mjs');

/** Runs the layer check on a made-up src/ tree of {path: text}. */
function check(tree: Record<string, string>): { code: number | null; out: string } {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-layers-'));
  try {
    for (const [p, text] of Object.entries(tree)) {
      mkdirSync(dirname(join(dir, 'src', p)), { recursive: true });
      writeFileSync(join(dir, 'src', p), text);
    }
    const r = spawnSync(process.execPath, [SCRIPT], { cwd: dir, encoding: 'utf8' });
    return { code: r.status, out: r.stdout + r.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('layer check (scripts/check-layers.mjs)', () => {
  it('passes a tree that imports downwards through index.ts, without cycles', () => {
    const r = check({
      'shared/index.ts': 'export const A = 1;\n',
      'repository/index.ts': "export { Repository } from './repository.js';\n",
      'repository/repository.ts': "import { A } from '../shared/index.js';\nexport class Repository { a = A; }\n",
      'cli/program.ts': "import { Repository } from '../repository/index.js';\nexport const r = Repository;\n",
    });
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /no import cycles/);
  });

  it('reports an import cycle as its path, type-only and dynamic imports included', () => {
    const r = check({
      'cli/program.ts':
        "import { modules } from './modules.js';\nexport type Kit = { n: number };\nexport const all = modules;\n",
      'cli/modules.ts': "import { files } from './files-commands.js';\nexport const modules = [files];\n",
      'cli/files-commands.ts': "import type { Kit } from './program.js';\nexport const files = (k: Kit) => k;\n",
      'engine/a.ts': "export const a = async () => (await import('./b.js')).b;\n",
      'engine/b.ts': "import { a } from './a.js';\nexport const b = a;\n",
    });
    assert.equal(r.code, 1, r.out);
    assert.match(
      r.out,
      /import cycle: cli\/files-commands\.ts -> cli\/program\.ts -> cli\/modules\.ts -> cli\/files-commands\.ts/,
    );
    assert.match(r.out, /import cycle: engine\/a\.ts -> engine\/b\.ts -> engine\/a\.ts/);
  });

  it('forbids upward imports, deep imports and the front ends using the repository layout', () => {
    const r = check({
      'shared/index.ts': 'export const A = 1;\n',
      'storage/index.ts': "export const APPEND_ONLY_BLOB = 'x';\n",
      'repository/index.ts': "export const CONFIG_BLOB = 'config';\nexport const pointBlob = (id: string) => id;\n",
      'repository/layout.ts': "export const CHUNKS_PREFIX = 'chunks/';\n",
      'format/index.ts': "import { CONFIG_BLOB } from '../repository/index.js';\nexport const f = CONFIG_BLOB;\n",
      'cli/program.ts':
        "import { CONFIG_BLOB, pointBlob as pb } from '../repository/index.js';\nimport '../repository/layout.js';\nexport const c = [CONFIG_BLOB, pb];\n",
      'server/routes.ts':
        "import {\n  APPEND_ONLY_BLOB,\n} from '../storage/index.js';\nexport const s = APPEND_ONLY_BLOB;\n",
    });
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /src\/format\/index\.ts: format must not import repository/);
    assert.match(
      r.out,
      /src\/cli\/program\.ts: import repository through its index\.ts, not \.\.\/repository\/layout\.js/,
    );
    assert.match(r.out, /src\/cli\/program\.ts: cli must not use the repository layout \(CONFIG_BLOB, pointBlob\)/);
    assert.match(r.out, /src\/server\/routes\.ts: server must not use the storage layout \(APPEND_ONLY_BLOB\)/);
  });
});
