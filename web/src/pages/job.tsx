import { useEffect, useState } from 'preact/hooks';
import { api, events } from '../api/client.js';
import type { Job, JobError, JobLogLine, JobState } from '../api/types.js';
import { ErrorBox, Title } from '../ui/components.js';
import { bytes, cancellable, failureText, statusClass } from '../ui/format.js';
import { useCan } from '../ui/hooks.js';
import { go } from '../ui/router.js';
import { retryJob } from './jobs.js';

const line = (l: JobLogLine) => `${l.time.slice(11, 19)} ${l.level.padEnd(5)} ${l.message}\n`;

/** One job: status, progress, its error, the live log (Server-Sent Events), Cancel while it can run, Retry. */
export function JobPage({ id }: { id: number }) {
  const canOperate = useCan('operate');
  const [job, setJob] = useState<Job | undefined>();
  const [status, setStatus] = useState<JobState | undefined>();
  const [jobError, setJobError] = useState<JobError | null>(null);
  const [log, setLog] = useState('');
  const [progress, setProgress] = useState<{ bytesDone: number; bytesTotal: number } | null>(null);
  const [error, setError] = useState<Error | undefined>();
  useEffect(() => {
    const abort = new AbortController();
    (async () => {
      const j = await api('get /api/v1/jobs/{id}', { path: { id } });
      setJob(j);
      setStatus(j.status);
      setJobError(j.error);
      setProgress(j.progress);
      // the stream starts with the log so far, then live lines until the job ends
      await events(
        `/api/v1/jobs/${id}/events`,
        (ev, data) => {
          if (ev === 'log') setLog((l) => l + line(data as JobLogLine));
          else if (ev === 'progress') setProgress(data as { bytesDone: number; bytesTotal: number });
          else if (ev === 'status') {
            const d = data as { status: JobState; error: JobError | null };
            setStatus(d.status);
            setJobError(d.error);
          }
        },
        abort.signal,
      );
    })().catch((e: Error) => e.name !== 'AbortError' && setError(e));
    return () => abort.abort();
  }, [id]);
  const pct = progress?.bytesTotal ? Math.floor((100 * progress.bytesDone) / progress.bytesTotal) : undefined;
  return (
    <>
      <Title>
        Job {id}
        {job ? `: ${job.kind}${job.vm ? ` of ${job.vm}` : ''}` : ''}
      </Title>
      <ErrorBox error={error} />
      {job && status ? (
        <>
          <p class="row">
            Status:{' '}
            <span id="job-status" class={statusClass(status)} role="status">
              {status}
            </span>
            <progress
              id="job-progress"
              max={progress?.bytesTotal || 1}
              value={status === 'succeeded' ? progress?.bytesTotal || 1 : (progress?.bytesDone ?? 0)}
              aria-label="progress"
            />
            {pct !== undefined && progress ? (
              <span class="muted">
                {' '}
                {pct} % ({bytes(progress.bytesDone)} of {bytes(progress.bytesTotal)})
              </span>
            ) : null}
            {canOperate && cancellable(status) ? (
              <button
                type="button"
                id="job-cancel"
                class="secondary"
                onClick={() => api('post /api/v1/jobs/{id}/cancel', { path: { id } }).catch(setError)}
              >
                Cancel
              </button>
            ) : null}
            {canOperate && (status === 'failed' || status === 'cancelled') ? (
              <button
                type="button"
                id="job-retry"
                class="secondary"
                onClick={() => retryJob(job).then((n) => go(`/jobs/${n}`), setError)}
              >
                Retry
              </button>
            ) : null}
          </p>
          <p class="muted">
            repository {job.repository}, requested by {job.requestedBy}, attempt {job.attempt} of {job.maxAttempts}
          </p>
          <div id="job-error">
            {jobError ? (
              <p class="error" role="alert">
                {failureText(jobError)}
              </p>
            ) : null}
          </div>
        </>
      ) : null}
      <pre class="log" id="job-log" aria-live="polite">
        {log}
      </pre>
    </>
  );
}
