export { runProxy, type ProxyOptions } from './run-proxy.js';
export type { ProxyDeps } from './proxy-job-deps.js';
