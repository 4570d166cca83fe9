import { CofferError, sleep, type Op } from '../shared/index.js';
import { retrieveOne } from './property-collector.js';
import { returnval, type VimClient } from './vim-client.js';
import { MoRef, child, textOf, type SoapValue, type XmlNode } from './xml.js';

export interface TaskOptions extends Op {
  /** Give up waiting after this long (default 30 min); the task itself keeps running in vCenter. */
  timeoutMs?: number;
  /** First poll interval; it grows by 1.5x up to maxPollMs (defaults 100 ms, 2 s). */
  pollMs?: number;
  maxPollMs?: number;
}

/**
 * Waits for a vCenter task by polling its `info` with backoff. Resolves with `info.result` (an XmlNode, or undefined);
 * a task in state error rejects with VSPHERE_FAULT carrying the fault type and vCenter's localized message.
 */
export async function waitForTask(
  c: VimClient,
  task: MoRef,
  what: string,
  opts: TaskOptions = {},
): Promise<XmlNode | undefined> {
  const deadline = Date.now() + (opts.timeoutMs ?? 30 * 60_000);
  let delay = opts.pollMs ?? 100;
  for (;;) {
    const o = await retrieveOne(c, task, ['info'], opts);
    const info = o.props.get('info');
    if (!info)
      throw new CofferError('VSPHERE_FAULT', `vCenter sent no info for task ${task.value} (${what})`, {
        details: { protocol: true },
      });
    const state = textOf(info, 'state')?.trim();
    if (state === 'success') return child(info, 'result');
    if (state === 'error') {
      const err = child(info, 'error');
      const fault = err ? child(err, 'fault') : undefined;
      const type = fault?.xsiType ?? 'unknown fault';
      const message = (err && textOf(err, 'localizedMessage')?.trim()) || '';
      throw new CofferError('VSPHERE_FAULT', `${what} failed in vCenter: ${type}${message ? `: ${message}` : ''}`, {
        details: { fault: type, task: task.value },
      });
    }
    if (state !== 'queued' && state !== 'running') {
      throw new CofferError(
        'VSPHERE_FAULT',
        `task ${task.value} (${what}) is in an unknown state ${JSON.stringify(state)}`,
        { details: { protocol: true } },
      );
    }
    if (Date.now() > deadline)
      throw new CofferError(
        'VSPHERE_FAULT',
        `${what}: task ${task.value} did not finish within ${Math.round((opts.timeoutMs ?? 1_800_000) / 1000)} s`,
        { details: { task: task.value, timeout: true } },
      );
    await sleep(delay, { signal: opts.signal });
    delay = Math.min(opts.maxPollMs ?? 2000, delay * 1.5);
  }
}

/** Invokes a *_Task method and waits for it. */
export async function runTask(
  c: VimClient,
  method: string,
  self: MoRef,
  args: Record<string, SoapValue>,
  what: string,
  opts: TaskOptions = {},
): Promise<XmlNode | undefined> {
  const task = MoRef.from(returnval(await c.invoke(method, self, args, opts)));
  return waitForTask(c, task, what, opts);
}
