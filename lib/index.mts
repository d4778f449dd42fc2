// ESM entry point: re-exports the CommonJS implementation, so that both
// module systems share one instance (one client thread, one QUIT symbol).
import cjs from './index.js';

export const {
  connect,
  getActiveState,
  getActiveStateSync,
  sendCommand,
  sendCommandSync,
  streamCommand,
  createServer,
  IpcServer,
  QUIT,
  MAX_PACKET_PAYLOAD,
} = cjs;
export type {
  ActiveState,
  IpcConnection,
  CloseReason,
  Handler,
  HandlerResult,
  IpcServerEvents,
  Reply,
  RequestContext,
  ClientOptions,
  PeerInfo,
  PipeAccess,
  ServerOptions,
  IpcError,
} from './index.js';
export default cjs;
