export { NbdClient, type NbdAddress, type NbdConnectOptions, type Extent as NbdExtent } from './nbd-client.js';
export { STATE_DIRTY, STATE_HOLE, STATE_ZERO } from './protocol.js';
export { NbdServer, type NbdServerOptions } from './nbd-server.js';
export type { BlockDevice } from './block-device.js';
