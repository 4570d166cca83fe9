import type { JsonSchema } from '../api/capabilities.js';
import { Check, Field } from './components.js';

/**
 * Fields for the properties of a JSON schema object (strings, numbers, booleans, enums): used by the restore wizard
 * for the job kinds and routes it learns from the server's OpenAPI document. `fixed` properties are not shown.
 */
export function SchemaFields({
  prefix,
  schema,
  value,
  onChange,
  fixed,
}: {
  prefix: string;
  schema: JsonSchema;
  value: Record<string, unknown>;
  onChange: (v: Record<string, unknown>) => void;
  fixed: string[];
}) {
  const req = new Set(schema.required ?? []);
  return (
    <>
      {Object.entries(schema.properties ?? {})
        .filter(([k]) => !fixed.includes(k))
        .map(([k, s]) => {
          const id = `${prefix}-${k}`;
          const label = `${k}${req.has(k) ? ' (required)' : ''}`;
          const set = (v: unknown) => onChange({ ...value, [k]: v });
          if (s.type === 'boolean')
            return <Check key={k} id={id} label={k} checked={Boolean(value[k] ?? s.default)} onChange={set} />;
          if (s.enum)
            return (
              <Field key={k} id={id} label={label}>
                <select
                  id={id}
                  value={String(value[k] ?? s.default ?? '')}
                  onChange={(e) => set(e.currentTarget.value)}
                >
                  {req.has(k) ? null : <option value="">(default)</option>}
                  {s.enum.map((o) => (
                    <option key={String(o)} value={String(o)}>
                      {String(o)}
                    </option>
                  ))}
                </select>
              </Field>
            );
          const numeric = s.type === 'number' || s.type === 'integer';
          return (
            <Field key={k} id={id} label={label}>
              {numeric ? (
                <input
                  id={id}
                  name={k}
                  type="number"
                  required={req.has(k)}
                  value={value[k] === undefined ? '' : String(value[k])}
                  onInput={(e) => set(e.currentTarget.value === '' ? undefined : Number(e.currentTarget.value))}
                />
              ) : (
                <input
                  id={id}
                  name={k}
                  required={req.has(k)}
                  value={value[k] === undefined ? '' : String(value[k])}
                  onInput={(e) => set(e.currentTarget.value === '' ? undefined : e.currentTarget.value)}
                />
              )}
            </Field>
          );
        })}
    </>
  );
}
