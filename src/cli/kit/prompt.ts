import type { Writable } from 'node:stream';
import { CofferError } from '../../shared/index.js';

/** a terminal's input as the prompt needs it (process.stdin when it is a TTY) */
export interface TtyInput {
  isTTY?: boolean;
  setRawMode(raw: boolean): unknown;
  on(event: 'data', fn: (b: Buffer) => void): unknown;
  off(event: 'data', fn: (b: Buffer) => void): unknown;
  resume(): unknown;
  pause(): unknown;
}

/**
 * Reads one line from a terminal without echoing it (raw mode): Enter ends it, Backspace removes a character,
 * Ctrl-C or Ctrl-D on an empty line cancel (CANCELLED). The question and the final newline go to `output` (stderr).
 */
export function promptHidden(input: TtyInput, output: Writable, question: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let line = '';
    // raw mode (no echo) first, the question after: whoever sees the question and types cannot race the echo
    input.setRawMode(true);
    output.write(question);
    const done = (err?: CofferError) => {
      input.off('data', onData);
      input.setRawMode(false);
      input.pause();
      output.write('\n');
      if (err) reject(err);
      else resolve(line);
    };
    const onData = (b: Buffer) => {
      for (const ch of b.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003' || (ch === '\u0004' && line === ''))
          return done(new CofferError('CANCELLED', 'password prompt cancelled'));
        if (ch === '\u007f' || ch === '\b') line = [...line].slice(0, -1).join('');
        else if (ch >= ' ') line += ch;
      }
    };
    input.on('data', onData);
    input.resume();
  });
}
