import { mkdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const T1 = new Date(Date.UTC(2024, 0, 2, 3, 4, 5));
export const T2 = new Date(Date.UTC(2025, 5, 6, 7, 8, 9));

/** The guest tree of state 1 (the first backup); state 2 changes it (add, remove, resize, same-size new content). */
export function makeState(root: string, state: 1 | 2): void {
  rmSync(root, { recursive: true, force: true });
  mkdirSync(join(root, 'data/sub'), { recursive: true });
  mkdirSync(join(root, 'etc/app'), { recursive: true });
  mkdirSync(join(root, 'many'), { recursive: true });
  const put = (p: string, content: string, t = T1) => {
    writeFileSync(join(root, p), content);
    utimesSync(join(root, p), t, t);
  };
  put('etc/app/app.conf', 'setting=1\n');
  put('etc/hosts', '127.0.0.1 localhost\n');
  put('data/keep.txt', 'unchanged\n');
  put('data/sub/deep.log', 'deep\n');
  put('data/grow.txt', state === 1 ? '0123456789' : '01234567890123456789');
  // same size, new content, new mtime
  put('data/same.txt', state === 1 ? 'aaaa' : 'bbbb', state === 1 ? T1 : T2);
  // same size, same mtime, new content: only --content sees it
  put('data/sneaky.txt', state === 1 ? 'xxxx' : 'yyyy');
  if (state === 1) put('data/remove.txt', 'going away\n');
  else put('data/new.txt', 'brand new\n');
  for (let i = 0; i < 300; i++) put(`many/f${String(i).padStart(3, '0')}.txt`, `${i}\n`);
}
