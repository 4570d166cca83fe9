import type { Db } from './db.js';

export type LogLevel = 'info' | 'warn' | 'error';

export interface JobLogLine {
  seq: number;
  time: string;
  level: string;
  message: string;
}

/** The log lines of each job, numbered from 1. */
export interface JobLogsTable {
  /** appends a line and returns it with its sequence number */
  append(jobId: number, level: LogLevel, message: string, time?: string): JobLogLine;
  list(jobId: number, afterSeq?: number): JobLogLine[];
}

export class SqlJobLogs implements JobLogsTable {
  constructor(private readonly db: Db) {}

  append(jobId: number, level: LogLevel, message: string, time = new Date().toISOString()): JobLogLine {
    const seq =
      ((this.db.get('SELECT MAX(seq) AS m FROM job_logs WHERE job_id = ?', [jobId]) as { m: number | null }).m ?? 0) +
      1;
    this.db.run('INSERT INTO job_logs(job_id, seq, time, level, message) VALUES (?, ?, ?, ?, ?)', [
      jobId,
      seq,
      time,
      level,
      message,
    ]);
    return { seq, time, level, message };
  }

  list(jobId: number, afterSeq = 0): JobLogLine[] {
    return this.db.all('SELECT seq, time, level, message FROM job_logs WHERE job_id = ? AND seq > ? ORDER BY seq', [
      jobId,
      afterSeq,
    ]) as JobLogLine[];
  }
}
