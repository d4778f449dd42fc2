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
  ensureDaemon,
  defaultSocketPath,
  systemdListenFd,
  systemdListenFds,
  MAX_PACKET_PAYLOAD,
} = cjs;
// Not destructured: that would export IpcServer as a value only (no type)
// and widen QUIT to `symbol`, so that `return QUIT` would not type-check.
export const IpcServer: typeof cjs.IpcServer = cjs.IpcServer;
export type IpcServer = import('./index.js').IpcServer;
export const QUIT: typeof cjs.QUIT = cjs.QUIT;
export type {
  ActiveState,
  IpcConnection,
  CloseReason,
  Handler,
  HandlerResult,
  IpcServerEvents,
  Reply,
  RequestContext,
  ServerStats,
  ClientOptions,
  CloseOptions,
  ConnectOptions,
  SyncClientOptions,
  PeerInfo,
  PipeAccess,
  ServerOptions,
  IpcError,
  AutoStartOptions,
  DaemonStartError,
  EnsureDaemonOptions,
  EnsureDaemonResult,
  InheritedSocket,
  ReplaceOptions,
  ClientRequestMessage,
  ClientResponseMessage,
  AutoStartReport,
  ServerOutcome,
  ServerRequestMessage,
  ServerResponseMessage,
} from './index.js';
export default cjs;
