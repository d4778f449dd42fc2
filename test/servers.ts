// Servers in the test process, closed (at once) after the test.
import { createServer, QUIT, type IpcServer } from '../dist/index.js';
import { testAppHandler } from '../dist/test-app.js';
import { onCleanup, waitFor } from './helpers';
import { rawExchange } from './raw-peers';

/** A server running `handler` (by default the test application). */
export async function serve(p: string, handler = testAppHandler, options: Parameters<typeof createServer>[2] = {}): Promise<IpcServer> {
  const server = await createServer(p, handler, options);
  onCleanup(() => server.close({ force: true }));
  return server;
}

/** A two-thread server whose handler errors are expected (not reported). */
export async function inProcessServer(p: string, handler: Parameters<typeof createServer>[1]): Promise<IpcServer> {
  const server = await createServer(p, handler, { threads: 2 });
  server.on('handlerError', () => {});
  onCleanup(() => server.close({ force: true }));
  return server;
}

/** A server whose 'hang' requests are never answered; 'quit' stops it, anything else gets 'pong'. */
/**
 * Waits until `count` requests have reached the server's handler (stats:
 * beingAnswered). A fixed sleep is not enough on a loaded machine: the
 * request may still be on its way, and a close() would then drop it before
 * the handler, which is a different path from the one under test.
 */
export async function handlersRunning(server: IpcServer, count = 1, timeoutMs = 10000): Promise<void> {
  await waitFor(() => server.stats().connections.beingAnswered >= count, timeoutMs, `${count} running handler(s)`);
}

export async function hangingServer(p: string, options: Parameters<typeof createServer>[2] = {}): Promise<IpcServer> {
  const server = await createServer(
    p,
    (request) => {
      const command = request.toString();
      if (command === 'hang') return new Promise<never>(() => {});
      if (command === 'quit') return QUIT;
      return 'pong';
    },
    options,
  );
  onCleanup(() => server.close({ force: true }));
  return server;
}

/**
 * For checks that connections caused no clientError. An absence cannot be
 * waited for; this waits instead until the server has closed every
 * connection, then sends a malformed request (0003) and resolves with its
 * clientError. With one serving thread (`threads: 1`) each connection's
 * report is queued to JS before the thread reads the next, so any
 * clientError the earlier connections caused has been emitted by then:
 * the test's list of errors must be exactly [the marker].
 */
export async function clientErrorMarker(server: IpcServer, p: string, timeoutMs = 10000): Promise<Error> {
  await waitFor(() => server.stats().connections.open === 0, timeoutMs, 'every connection closed');
  const marker = new Promise<Error>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no clientError for the marker request")), timeoutMs);
    const onError = (e: Error & { code?: string }) => {
      if (e.code !== 'ERR_IPC_PROTOCOL' || !e.message.includes('0003')) return;
      clearTimeout(timer);
      server.off('clientError', onError);
      resolve(e);
    };
    server.on('clientError', onError);
  });
  await rawExchange(p, '00030000');
  return marker;
}
