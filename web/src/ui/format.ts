import type { JobError, JobState } from '../api/types.js';

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '-';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < u.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i ? 1 : 0)} ${u[i]}`;
}
export const when = (s: string | null | undefined): string => (s ? new Date(s).toLocaleString() : '-');
export function ago(sec: number | null | undefined): string {
  if (sec === null || sec === undefined) return '-';
  if (sec < 120) return `${sec} s ago`;
  if (sec < 7200) return `${Math.round(sec / 60)} min ago`;
  if (sec < 172800) return `${Math.round(sec / 3600)} h ago`;
  return `${Math.round(sec / 86400)} d ago`;
}
export const statusClass = (s: string | undefined): string =>
  s === 'succeeded' ? 'ok' : s === 'failed' ? 'bad' : s === 'cancelled' || s === 'retrying' ? 'warn' : 'muted';
/** a job that has ended: nothing to cancel any more */
export const FINISHED: readonly string[] = ['succeeded', 'failed', 'cancelled'];
export const cancellable = (s: JobState): boolean => s === 'queued' || s === 'running' || s === 'retrying';
/** a job's failure in one line: `CODE: message` */
export const failureText = (e: JobError | null | undefined): string => (e ? `${e.code}: ${e.message}` : '');

const TYPE_CHAR: Record<string, string> = {
  file: '-',
  dir: 'd',
  symlink: 'l',
  chardev: 'c',
  blockdev: 'b',
  fifo: 'p',
  socket: 's',
};
export function modeString(type: string, mode: number): string {
  const rwx = (b: number, special: boolean, ch: string) =>
    (b & 4 ? 'r' : '-') + (b & 2 ? 'w' : '-') + (special ? (b & 1 ? ch : ch.toUpperCase()) : b & 1 ? 'x' : '-');
  return (
    (TYPE_CHAR[type] ?? '?') +
    rwx((mode >> 6) & 7, (mode & 0o4000) !== 0, 's') +
    rwx((mode >> 3) & 7, (mode & 0o2000) !== 0, 's') +
    rwx(mode & 7, (mode & 0o1000) !== 0, 't')
  );
}
