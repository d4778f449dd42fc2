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
