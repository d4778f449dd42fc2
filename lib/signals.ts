// The closeOnSignals server option (docs/daemon.md#signals): on SIGINT,
// SIGTERM or SIGHUP, close every server that asked for it, gracefully
// (within its closeTimeoutMs), so that the socket file is removed; then
// end the process as Node would have without our listener. One process
// listener per signal serves every such server.
//
// Thread ownership: everything here runs on the main JS thread (signal
// listeners are only delivered there).
import { argError } from './errors.js';
import type { CloseOptions } from './options.js';

export type CloseSignal = 'SIGINT' | 'SIGTERM' | 'SIGHUP';
export const DEFAULT_CLOSE_SIGNALS: readonly CloseSignal[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** What a server gives the registry: how to close it, gracefully or at once. */
export interface SignalClosable {
  close(options?: CloseOptions): Promise<void>;
}

const servers = new Map<SignalClosable, readonly CloseSignal[]>();
const listeners = new Map<CloseSignal, () => void>();
let closing: Promise<void> | null = null;

/** The option, checked synchronously: the signals to close on (empty: off). */
export function checkCloseOnSignals(value: unknown): readonly CloseSignal[] {
  if (value === undefined || value === false) return [];
  if (value === true) return process.platform === 'win32' ? WINDOWS_CLOSE_SIGNALS : DEFAULT_CLOSE_SIGNALS;
  if (!Array.isArray(value) || value.length === 0 || !value.every((s) => (DEFAULT_CLOSE_SIGNALS as readonly unknown[]).includes(s))) {
    throw argError('options.closeOnSignals', "a boolean or a non-empty array of 'SIGINT', 'SIGTERM', 'SIGHUP'", value, 'ERR_INVALID_ARG_VALUE');
  }
  // No option is silently ignored (docs/windows.md#options-that-differ).
  if (process.platform === 'win32' && value.includes('SIGTERM')) {
    throw argError('options.closeOnSignals', "without 'SIGTERM' on Windows (Windows never delivers SIGTERM to a process)", value, 'ERR_INVALID_ARG_VALUE');
  }
  return [...new Set(value as CloseSignal[])];
}

// What Windows delivers: SIGINT (Ctrl+C, Ctrl+Break) and SIGHUP (the
// console window closes); never SIGTERM.
const WINDOWS_CLOSE_SIGNALS: readonly CloseSignal[] = ['SIGINT', 'SIGHUP'];

/** Closes `server` on these signals until it is unregistered (it stopped). */
export function registerForSignals(server: SignalClosable, signals: readonly CloseSignal[]): void {
  if (signals.length === 0) return;
  servers.set(server, signals);
  for (const signal of signals) {
    if (listeners.has(signal)) continue;
    const listener = () => onSignal(signal);
    listeners.set(signal, listener);
    process.on(signal, listener);
  }
}

export function unregisterForSignals(server: SignalClosable): void {
  if (!servers.delete(server) || closing !== null) return;
  const wanted = new Set([...servers.values()].flat());
  for (const [signal, listener] of listeners) {
    if (wanted.has(signal)) continue;
    process.off(signal, listener);
    listeners.delete(signal);
  }
}

function removeListeners(): void {
  for (const [signal, listener] of listeners) process.off(signal, listener);
  listeners.clear();
}

/**
 * First signal: close the servers that asked for it, within their grace.
 * A second one while they close: drop what is still running (close with
 * force). Then remove our listeners and, unless someone else listens
 * for that signal (then the process carries on, as it would without us),
 * raise it again: the process ends by the signal, exit status and all.
 */
function onSignal(signal: CloseSignal): void {
  const targets = [...servers].filter(([, signals]) => signals.includes(signal)).map(([server]) => server);
  if (closing !== null) {
    for (const server of targets) void server.close({ force: true });
    return;
  }
  closing = Promise.all(targets.map((server) => server.close())).then(() => undefined);
  void closing.then(() => {
    for (const server of targets) servers.delete(server);
    closing = null;
    removeListeners();
    // Servers that asked for other signals only keep theirs.
    for (const [server, signals] of [...servers]) {
      servers.delete(server);
      registerForSignals(server, signals);
    }
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  });
}
