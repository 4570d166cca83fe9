/**
 * What this server's API can do, read from its OpenAPI document at run time: the restore wizard offers a kind of
 * restore only when the server has the route or job kind for it (an older server without `restore-vm` or instant
 * recovery gets those kinds shown with the reason), and reads the choices a job kind's schema offers (the disk
 * restore's export formats).
 */
export interface JsonSchema {
  type?: string;
  const?: unknown;
  enum?: unknown[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  oneOf?: JsonSchema[];
  anyOf?: JsonSchema[];
  default?: unknown;
  minimum?: number;
  maximum?: number;
  items?: JsonSchema;
}
interface Operation {
  requestBody?: { content?: Record<string, { schema?: JsonSchema }> };
}
export interface OpenApi {
  paths: Record<string, Record<string, Operation>>;
}

export interface Capabilities {
  /** the JSON schema of each job kind POST /api/v1/jobs accepts */
  jobKinds: Map<string, JsonSchema>;
  /** the path of an instant recovery (start with POST, stop with DELETE {id}) if the server has one */
  instantRecovery: { start: string; startSchema: JsonSchema | undefined; stop: string | undefined } | undefined;
  has(method: string, path: string): boolean;
}

export function capabilities(doc: OpenApi): Capabilities {
  const body = (path: string, method: string) =>
    doc.paths[path]?.[method]?.requestBody?.content?.['application/json']?.schema;
  const jobKinds = new Map<string, JsonSchema>();
  const jobs = body('/api/v1/jobs', 'post');
  for (const v of jobs?.oneOf ?? jobs?.anyOf ?? (jobs ? [jobs] : [])) {
    const k = v.properties?.kind?.const;
    if (typeof k === 'string') jobKinds.set(k, v);
  }
  const irPath = Object.keys(doc.paths).find((p) => /instant/i.test(p) && doc.paths[p]?.post && !p.includes('{'));
  const irStop = irPath
    ? Object.keys(doc.paths).find((p) => p.startsWith(`${irPath}/{`) && doc.paths[p]?.delete)
    : undefined;
  return {
    jobKinds,
    instantRecovery: irPath ? { start: irPath, startSchema: body(irPath, 'post'), stop: irStop } : undefined,
    has: (method, path) => Boolean(doc.paths[path]?.[method.toLowerCase()]),
  };
}

let cached: Promise<Capabilities> | undefined;
export function loadCapabilities(): Promise<Capabilities> {
  cached ??= fetch('/api/openapi.json')
    .then((r) => r.json() as Promise<OpenApi>)
    .then(capabilities);
  return cached;
}
