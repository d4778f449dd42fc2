// simple-ipc: Git's simple-ipc for Node.js.
export { connect, getActiveState, getActiveStateSync, sendCommand, sendCommandSync, streamCommand } from './client.js';
export type { ActiveState, IpcConnection } from './client.js';
export { createServer, IpcServer, QUIT } from './server.js';
export type { CloseReason, Handler, HandlerResult, IpcServerEvents, Reply, RequestContext, ServerStats } from './server.js';
export type { ClientOptions, CloseOptions, ConnectOptions, PeerInfo, PipeAccess, ReplaceOptions, ServerOptions, SyncClientOptions } from './options.js';
export { systemdListenFd, systemdListenFds } from './systemd.js';
export type { AutoStartReport, ClientRequestMessage, ClientResponseMessage, ServerOutcome, ServerRequestMessage, ServerResponseMessage } from './diagnostics.js';
export type { InheritedSocket } from './systemd.js';
export type { IpcError } from './errors.js';
export { ensureDaemon } from './daemon.js';
export { defaultSocketPath } from './socket-path.js';
export type { AutoStartOptions, DaemonStartError, EnsureDaemonOptions, EnsureDaemonResult } from './daemon.js';
import { native } from './native.js';
/** Largest payload of one pkt-line packet (65516 bytes). */
export const MAX_PACKET_PAYLOAD: number = native.maxPayload;
