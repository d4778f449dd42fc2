// Error helpers of the TypeScript layer. Errors from the addon already
// carry `code`, `errno`, `syscall` and `address` like Node's `net` errors.

export interface IpcError extends Error {
  code: string;
  errno?: number;
  syscall?: string;
  address?: string;
  /** For connect failures: the active state the connect loop ended in. */
  state?: string;
}

export function codeError(code: string, message: string, ErrorClass: ErrorConstructor = Error): IpcError {
  const error = new ErrorClass(`${message}`) as IpcError;
  error.code = code;
  return error;
}

/** A TypeError with `code: 'ERR_INVALID_ARG_TYPE'` or `'ERR_INVALID_ARG_VALUE'`, thrown synchronously. */
export function argError(name: string, expected: string, actual: unknown, code = 'ERR_INVALID_ARG_TYPE'): IpcError {
  let shown: string;
  if (typeof actual === 'string') shown = JSON.stringify(actual.length > 40 ? actual.slice(0, 40) + '...' : actual);
  else if (typeof actual === 'function') shown = 'a function';
  else if (actual === null) shown = 'null';
  else if (typeof actual === 'object') shown = 'an object';
  else shown = String(actual);
  return codeError(code, `The "${name}" argument must be ${expected}. Received ${shown}`, TypeError as ErrorConstructor);
}

/**
 * ERR_IPC_TIMEOUT in the words fromNative gives the addon's ("exchange did
 * not complete within timeoutMs: after N ms"), for the waits the TypeScript layer bounds
 * itself; `detail` adds what was still awaited.
 */
export function exchangeTimeoutError(timeoutMs: number | undefined, detail?: string): IpcError {
  const after = `after ${timeoutMs} ms`;
  return codeError('ERR_IPC_TIMEOUT', `exchange did not complete within timeoutMs: ${detail === undefined ? after : `${after}, ${detail}`}`);
}

export function abortError(signal: AbortSignal): IpcError {
  const error = codeError('ABORT_ERR', 'The operation was aborted');
  error.name = 'AbortError';
  (error as Error).cause = signal.reason;
  return error;
}

/**
 * The option behind each native code whose text speaks of a limit or a
 * check. The native core words those neutrally (`words`: it also serves
 * the native CLI, whose flags are spelled otherwise; docs/design.md#errors);
 * this API's errors name the option instead: "request exceeds
 * maxRequestBytes: limit 10 bytes". test/native-contracts.test.ts keeps
 * this table, the core's texts and the options in step.
 */
export const NATIVE_CODE_OPTIONS: Readonly<Record<string, { readonly words: string; readonly option: string }>> = {
  ERR_IPC_REQUEST_TOO_LARGE: { words: 'the request size limit', option: 'maxRequestBytes' },
  ERR_IPC_REQUEST_TIMEOUT: { words: 'the request time limit', option: 'requestTimeoutMs' },
  ERR_IPC_TOO_MANY_CONNECTIONS: { words: 'connection limit', option: 'maxConnections' },
  ERR_IPC_BUFFER_FULL: { words: 'the request buffer limit', option: 'maxBufferedRequestBytes' },
  ERR_IPC_PEER_REFUSED: { words: 'the peer check', option: 'allowPeer' },
  ERR_IPC_TIMEOUT: { words: 'the exchange time limit', option: 'timeoutMs' },
  ERR_IPC_RESPONSE_TOO_LARGE: { words: 'the response size limit', option: 'maxResponseBytes' },
  ERR_IPC_SERVER_IDENTITY: { words: 'the identity check', option: 'serverUid' },
};

/**
 * An error of the addon in this API's words: the option's name where the
 * native text has neutral words (NATIVE_CODE_OPTIONS). Anything else
 * passes unchanged; idempotent.
 */
export function fromNative<E>(error: E): E {
  if (!(error instanceof Error)) return error;
  const code = (error as Partial<IpcError>).code;
  if (typeof code !== 'string' || !Object.prototype.hasOwnProperty.call(NATIVE_CODE_OPTIONS, code)) return error;
  const named = NATIVE_CODE_OPTIONS[code]!;
  if (!error.message.includes(named.words)) return error;
  // Before anyone reads `stack`: V8 writes its first line from the message then.
  error.message = error.message.replace(named.words, named.option);
  return error;
}

/** An error of the addon's clients, in this API's words, with the `AbortError` name Node uses for aborts. */
export function normalizeNativeError(error: IpcError, signal?: AbortSignal): IpcError {
  fromNative(error);
  if (error.code === 'ABORT_ERR') {
    error.name = 'AbortError';
    if (signal?.aborted) (error as Error).cause = signal.reason;
  }
  return error;
}

/**
 * Gives `error` the stack of the code running now. The addon makes its
 * errors on its own callbacks, where no frame of the caller is on the
 * stack; taken again where the caller's promise chain resumes, the stack
 * shows the caller (`at async main (file:line)`). `above`: our own frames
 * from this function up are left out.
 */
export function withCallerStack<E>(error: E, above: (...args: never[]) => unknown = withCallerStack): E {
  if (error instanceof Error) Error.captureStackTrace(error, above);
  return error;
}

/**
 * A rejection handler: `promise.then(undefined, rethrowWithCallerStack)`
 * runs it in the caller's promise chain, so the error's stack gets the
 * caller's asynchronous frames. A settled-promise reaction on success.
 */
export function rethrowWithCallerStack(error: unknown): never {
  throw withCallerStack(error, rethrowWithCallerStack);
}
