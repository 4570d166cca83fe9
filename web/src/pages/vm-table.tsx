import { useState } from 'preact/hooks';
import { api } from '../api/client.js';
import type { Vm } from '../api/types.js';
import { ErrorBox, Table } from '../ui/components.js';
import { ago, failureText, statusClass, when } from '../ui/format.js';
import { useCan } from '../ui/hooks.js';
import { go, href } from '../ui/router.js';

/** VMs with protection (a VM without a restore point is unprotected), last result, newest point, RPO. */
export function VmTable({ vms }: { vms: Vm[] }) {
  const canOperate = useCan('operate');
  const [error, setError] = useState<Error | undefined>();
  const backup = async (v: Vm) => {
    try {
      const r = await api('post /api/v1/jobs', { body: { kind: 'backup', policy: v.policies[0]!, vm: v.name } });
      go(`/jobs/${r.items[0]!.id}`);
    } catch (e) {
      setError(e as Error);
    }
  };
  return (
    <>
      <ErrorBox error={error} />
      <Table
        id="vm-table"
        caption="virtual machines"
        head={['VM', 'Protection', 'Last result', 'Newest restore point', 'RPO', 'Points', '']}
      >
        {vms.map((v) => (
          <tr key={v.name} data-vm={v.name}>
            <td>
              <a href={href('/restore-points', { vm: v.name })}>{v.name}</a>
              {v.inInventory ? null : <div class="muted">not in the inventory</div>}
            </td>
            <td>
              {v.protected ? (
                v.policies.join(', ')
              ) : (
                <span class="warn">
                  {v.covered ? `unprotected: no restore point yet (${v.policies.join(', ')})` : 'unprotected'}
                </span>
              )}
            </td>
            <td class={`last-result ${statusClass(v.lastJob?.status)}`} title={failureText(v.lastJob?.error)}>
              {v.lastJob ? <a href={`#/jobs/${v.lastJob.id}`}>{v.lastJob.status}</a> : '-'}
              {v.lastJob?.error ? <div class="muted small">{v.lastJob.error.code}</div> : null}
            </td>
            <td>{v.lastPoint ? `${when(v.lastPoint.endTime)} (${ago(v.ageSeconds)})` : '-'}</td>
            <td class={`rpo ${v.rpoCompliant === true ? 'ok' : v.rpoCompliant === false ? 'bad' : 'muted'}`}>
              {v.rpoCompliant === null ? '-' : `${v.rpoCompliant ? 'compliant' : 'breached'} (${v.rpoHours} h)`}
            </td>
            <td>{v.points}</td>
            <td>
              {v.covered && canOperate ? (
                <button type="button" class="backup-now" onClick={() => void backup(v)}>
                  Back up now
                </button>
              ) : null}
            </td>
          </tr>
        ))}
      </Table>
    </>
  );
}
