// The autoStart client option: when the connect finds nobody there, start
// the daemon (lib/daemon.ts) and send once more. The send functions come
// from lib/client.ts as arguments, so this module does not import it.
import { checkDaemonOptions, ensureChecked, ensureDaemon, type CheckedDaemonOptions } from './daemon.js';
import type { ClientOptions, EnsureDaemonOptions } from './options.js';

/** A connect that found nobody there: the cases autoStart starts a daemon for. */
export function isNobodyListening(error: unknown): boolean {
  const state = (error as { state?: unknown } | null)?.state;
  return state === 'not-listening' || state === 'path-not-found';
}

/** Splits `autoStart` off the client options (checked synchronously). */
export function takeAutoStart<T extends ClientOptions>(options: T): { autoStart: EnsureDaemonOptions; rest: Omit<T, 'autoStart'> } {
  const { autoStart, ...rest } = options;
  checkDaemonOptions(autoStart, 'options.autoStart');
  return { autoStart: autoStart as EnsureDaemonOptions, rest };
}

/**
 * sendCommand with `autoStart`: try once; when nobody listens, start the
 * daemon and try again (once) now that it listens.
 */
export function sendWithAutoStart(
  send: (path: string, request: string | Uint8Array, options: ClientOptions) => Promise<Buffer>,
  path: string,
  request: string | Uint8Array,
  options: ClientOptions,
): Promise<Buffer> {
  const { autoStart, rest } = takeAutoStart(options);
  return sendOrStart(send, path, request, checkDaemonOptions(autoStart), rest);
}

async function sendOrStart(
  send: (path: string, request: string | Uint8Array, options: ClientOptions) => Promise<Buffer>,
  path: string,
  request: string | Uint8Array,
  autoStart: CheckedDaemonOptions,
  rest: ClientOptions,
): Promise<Buffer> {
  try {
    return await send(path, request, rest);
  } catch (error) {
    if (!isNobodyListening(error)) throw error;
  }
  await ensureChecked(path, autoStart);
  return send(path, request, rest);
}

/**
 * streamCommand with `autoStart`: as sendWithAutoStart, retried only when
 * the first attempt failed before any chunk arrived.
 */
export async function* streamWithAutoStart(
  stream: (path: string, request: string | Uint8Array, options: ClientOptions) => AsyncIterableIterator<Buffer>,
  path: string,
  request: string | Uint8Array,
  autoStart: EnsureDaemonOptions,
  rest: ClientOptions,
): AsyncGenerator<Buffer, void, undefined> {
  let received = false;
  try {
    for await (const chunk of stream(path, request, rest)) {
      received = true;
      yield chunk;
    }
    return;
  } catch (error) {
    if (received || !isNobodyListening(error)) throw error;
  }
  await ensureDaemon(path, autoStart);
  yield* stream(path, request, rest);
}

