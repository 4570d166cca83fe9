import { CofferError, exponentialDelay, retry, silentLogger, type Logger, type Op } from '../shared/index.js';
import { HttpsClient, type TlsPolicy } from './https-client.js';
import { MoRef, NS_SOAPENV, child, envelope, parseXml, refOf, textOf, type SoapValue, type XmlNode } from './xml.js';

export interface VimClientOptions {
  host: string;
  port: number;
  tls: TlsPolicy;
  user: string;
  password: string;
  logger?: Logger | undefined;
  /** Interval of the keep-alive call (CurrentTime) that stops an idle session from expiring (default 10 min). */
  keepAliveMs?: number;
  /** Timeout of one SOAP call (default 5 min). */
  callTimeoutMs?: number;
}

export interface ServiceContent {
  rootFolder: MoRef;
  propertyCollector: MoRef;
  viewManager: MoRef;
  sessionManager: MoRef;
  searchIndex: MoRef | undefined;
  fileManager: MoRef | undefined;
  virtualDiskManager: MoRef | undefined;
  authorizationManager: MoRef | undefined;
  customFieldsManager?: MoRef | undefined;
  apiVersion: string;
  apiType: string;
  fullName: string;
  instanceUuid: string | undefined;
}

/** A SOAP fault as vCenter reports it: the vim25 fault type (e.g. InvalidLogin, NotAuthenticated) and its message. */
export interface VimFault {
  type: string;
  message: string;
  detail: XmlNode | undefined;
}

const SERVICE_INSTANCE = new MoRef('ServiceInstance', 'ServiceInstance');

/** Methods without side effects: safe to send again when the reply was lost. */
const IDEMPOTENT = new Set([
  'RetrieveServiceContent',
  'RetrievePropertiesEx',
  'RetrieveProperties',
  'QueryChangedDiskAreas',
  'CurrentTime',
  'DestroyView',
]);

/**
 * A vim25 SOAP session (DESIGN.md §vSphere): RetrieveServiceContent, Login with the session cookie, a keep-alive
 * timer, and one transparent re-login when a call fails with NotAuthenticated (an expired or dropped session).
 * Faults become CofferErrors: InvalidLogin/NoPermission -> VSPHERE_AUTH, everything else VSPHERE_FAULT with the
 * fault type in details.fault.
 */
export class VimClient {
  readonly http: HttpsClient;
  private cookie: string | undefined;
  private soapAction = 'urn:vim25/6.5';
  private loggingIn: Promise<void> | undefined;
  private keepAlive: NodeJS.Timeout | undefined;
  private closed = false;
  /** Number of logins (the first included): tests check that a lost session was re-established. */
  logins = 0;
  serviceContent!: ServiceContent;
  private readonly logger: Logger;

  private constructor(private readonly opts: VimClientOptions) {
    this.http = new HttpsClient(opts.host, opts.port, opts.tls);
    this.logger = opts.logger ?? silentLogger;
  }

  static async connect(opts: VimClientOptions, op: Op = {}): Promise<VimClient> {
    const c = new VimClient(opts);
    try {
      const sc = await c.call('RetrieveServiceContent', SERVICE_INSTANCE, {}, op);
      c.serviceContent = parseServiceContent(need1(sc));
      if (c.serviceContent.apiVersion) c.soapAction = `urn:vim25/${c.serviceContent.apiVersion}`;
      await c.login(op);
    } catch (e) {
      c.http.close();
      throw e;
    }
    const every = opts.keepAliveMs ?? 600_000;
    c.keepAlive = setInterval(() => {
      c.invoke('CurrentTime', SERVICE_INSTANCE, {}).catch((e: Error) =>
        c.logger.debug(`vCenter keep-alive failed: ${e.message}`),
      );
    }, every);
    c.keepAlive.unref();
    return c;
  }

  /** HTTP Basic credentials of this connection, for vCenter's other endpoints (vAPI REST sessions). */
  basicAuthorization(): string {
    return `Basic ${Buffer.from(`${this.opts.user}:${this.opts.password}`, 'utf8').toString('base64')}`;
  }

  /** The API version vCenter reported (e.g. 7.0.3.0), for the SOAP actions of its other endpoints (PBM). */
  get apiVersion(): string {
    return this.serviceContent.apiVersion;
  }

  /** The session cookie value, for datastore HTTP access (a real vCenter checks it on /folder). */
  get sessionCookie(): string | undefined {
    return this.cookie;
  }

  private async login(op: Op): Promise<void> {
    this.cookie = undefined;
    await this.call(
      'Login',
      this.serviceContent.sessionManager,
      { userName: this.opts.user, password: this.opts.password },
      op,
    );
    this.logins++;
  }

  /** Re-logs in once for all callers that saw NotAuthenticated at the same time. */
  private relogin(op: Op): Promise<void> {
    this.loggingIn ??= this.login(op).finally(() => (this.loggingIn = undefined));
    return this.loggingIn;
  }

  /**
   * Calls a vim25 method on `self` and returns its response element (`<MethodResponse>`; results are its
   * `returnval` children). A NotAuthenticated fault triggers one re-login and one retry.
   */
  async invoke(method: string, self: MoRef, args: Record<string, SoapValue> = {}, op: Op = {}): Promise<XmlNode> {
    if (this.closed) throw new CofferError('INTERNAL', `vCenter client used after logout (${method})`);
    const cookieUsed = this.cookie;
    try {
      return await this.callRetrying(method, self, args, op);
    } catch (e) {
      if (!(e instanceof CofferError) || e.details.fault !== 'NotAuthenticated') throw e;
      this.logger.warn(`vCenter session expired during ${method}; logging in again`);
      if (this.cookie === cookieUsed) {
        try {
          await this.relogin(op);
        } catch (e2) {
          throw new CofferError(
            'VSPHERE_AUTH',
            `the vCenter session expired and logging in again failed: ${(e2 as Error).message}`,
            { cause: e2 },
          );
        }
      } else await this.loggingIn;
      try {
        return await this.call(method, self, args, op);
      } catch (e3) {
        if (e3 instanceof CofferError && e3.details.fault === 'NotAuthenticated') {
          throw new CofferError(
            'VSPHERE_AUTH',
            `vCenter refused ${method} as not authenticated right after a new login`,
            { details: e3.details, cause: e3 },
          );
        }
        throw e3;
      }
    }
  }

  /**
   * Read-only methods are retried after a dropped connection, a timeout or an HTTP 5xx without a SOAP fault (3 times,
   * 0.5/1/2 s apart); methods that change something (tasks, Login) are not: a lost reply does not tell whether they
   * ran.
   */
  private async callRetrying(method: string, self: MoRef, args: Record<string, SoapValue>, op: Op): Promise<XmlNode> {
    const retries = IDEMPOTENT.has(method) ? 3 : 0;
    return retry(
      {
        attempts: retries + 1,
        delayMs: exponentialDelay(500),
        retryable: (e) => e instanceof CofferError && e.details.retryable === true,
        onRetry: (e, attempt) =>
          this.logger.warn(`vCenter ${method}: ${(e as Error).message}; retrying (attempt ${attempt} of ${retries})`),
      },
      () => this.call(method, self, args, op),
      { signal: op.signal },
    );
  }

  private async call(method: string, self: MoRef, args: Record<string, SoapValue>, op: Op): Promise<XmlNode> {
    const body = Buffer.from(envelope(method, self, args), 'utf8');
    const headers: Record<string, string | number> = {
      'Content-Type': 'text/xml; charset=utf-8',
      SOAPAction: this.soapAction,
      'Content-Length': body.length,
    };
    if (this.cookie) headers['Cookie'] = this.cookie;
    const reply = await this.http.request({
      method: 'POST',
      path: '/sdk',
      headers,
      body,
      signal: op.signal,
      timeoutMs: this.opts.callTimeoutMs ?? 300_000,
    });
    const setCookie = reply.headers['set-cookie'];
    if (setCookie && setCookie.length > 0) {
      const c = setCookie.find((x) => /^vmware_soap_session=/i.test(x)) ?? setCookie[0]!;
      this.cookie = c.split(';')[0];
    }
    const what = `vCenter reply to ${method}`;
    const ctype = String(reply.headers['content-type'] ?? '');
    const looksXml =
      /xml/i.test(ctype) || (!ctype && reply.body.subarray(0, 200).toString('latin1').trimStart().startsWith('<'));
    if (!looksXml) {
      throw new CofferError(
        'VSPHERE_FAULT',
        `${what} is not SOAP (HTTP ${reply.status}, ${ctype || 'no content type'})`,
        { details: { protocol: true, status: reply.status, ...(reply.status >= 500 ? { retryable: true } : {}) } },
      );
    }
    const doc = parseXml(reply.body.toString('utf8'), what);
    if (doc.name !== 'Envelope' || doc.ns !== NS_SOAPENV)
      throw bogusReply(what, `has root <${doc.name}>, not a SOAP envelope`);
    const bodyEl = child(doc, 'Body');
    if (!bodyEl) throw bogusReply(what, 'has no SOAP body');
    const fault = child(bodyEl, 'Fault');
    if (fault) throw faultError(method, parseFault(fault));
    if (reply.status !== 200) throw bogusReply(what, `has HTTP status ${reply.status} without a SOAP fault`);
    const res = bodyEl.children[0];
    if (!res || res.name !== `${method}Response`)
      throw bogusReply(what, `carries <${res?.name ?? 'nothing'}>, not <${method}Response>`);
    return res;
  }

  /** Logs out (best effort) and closes the connections. */
  async close(): Promise<void> {
    if (this.closed) return;
    if (this.keepAlive) clearInterval(this.keepAlive);
    try {
      if (this.cookie) await this.call('Logout', this.serviceContent.sessionManager, {}, {});
    } catch {
      /* an expired session needs no logout */
    }
    this.closed = true;
    this.http.close();
  }
}

function need1(res: XmlNode): XmlNode {
  const r = child(res, 'returnval');
  if (!r) throw bogusReply(`vCenter reply <${res.name}>`, 'has no returnval');
  return r;
}

export function returnval(res: XmlNode): XmlNode {
  return need1(res);
}

function bogusReply(what: string, why: string): CofferError {
  return new CofferError('VSPHERE_FAULT', `${what} ${why}`, { details: { protocol: true } });
}

function parseServiceContent(n: XmlNode): ServiceContent {
  const need = (name: string) => {
    const r = refOf(n, name);
    if (!r) throw bogusReply('vCenter service content', `lacks ${name}`);
    return r;
  };
  const about = child(n, 'about');
  return {
    rootFolder: need('rootFolder'),
    propertyCollector: need('propertyCollector'),
    viewManager: need('viewManager'),
    sessionManager: need('sessionManager'),
    searchIndex: refOf(n, 'searchIndex'),
    fileManager: refOf(n, 'fileManager'),
    virtualDiskManager: refOf(n, 'virtualDiskManager'),
    authorizationManager: refOf(n, 'authorizationManager'),
    customFieldsManager: refOf(n, 'customFieldsManager'),
    apiVersion: (about && textOf(about, 'apiVersion')?.trim()) || '',
    apiType: (about && textOf(about, 'apiType')) || '',
    fullName: (about && textOf(about, 'fullName')) || '',
    instanceUuid: about ? textOf(about, 'instanceUuid') : undefined,
  };
}

export function parseFault(fault: XmlNode): VimFault {
  const faultstring = textOf(fault, 'faultstring') ?? '';
  const detail = child(fault, 'detail');
  const first = detail?.children[0];
  let type = first?.xsiType ?? first?.name.replace(/Fault$/, '') ?? '';
  if (!type) type = (textOf(fault, 'faultcode') ?? 'unknown').replace(/^.*:/, '');
  return { type, message: faultstring.trim(), detail: first };
}

const AUTH_FAULTS = new Set([
  'InvalidLogin',
  'NoPermission',
  'NotAuthenticated',
  'InvalidLocale',
  'PasswordExpired',
  'NoClientCertificate',
]);

export function faultError(method: string, f: VimFault): CofferError {
  const message = `vCenter ${method} failed: ${f.type}${f.message ? `: ${f.message}` : ''}`;
  if (f.type === 'InvalidLogin' || f.type === 'PasswordExpired') {
    return new CofferError('VSPHERE_AUTH', `vCenter rejected the login: ${f.message || f.type}`, {
      hint: 'check COFFER_VSPHERE_USER / COFFER_VSPHERE_PASSWORD (or the user:password in the vsphere:// URL)',
      details: { fault: f.type },
    });
  }
  if (AUTH_FAULTS.has(f.type) && f.type !== 'NotAuthenticated')
    return new CofferError('VSPHERE_AUTH', message, { details: { fault: f.type } });
  return new CofferError('VSPHERE_FAULT', message, { details: { fault: f.type } });
}
