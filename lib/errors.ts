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
 * ERR_IPC_TIMEOUT in the addon's words ("exchange did not complete within
 * timeoutMs: after N ms"), for the waits the TypeScript layer bounds
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

/** Gives aborts the `AbortError` name Node uses. */
export function normalizeNativeError(error: IpcError, signal?: AbortSignal): IpcError {
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
