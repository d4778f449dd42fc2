// No option is silently ignored on any platform: for every option of
// createServer and of the clients, on each platform, either the test that
// shows its effect, or a value that is refused (ERR_INVALID_ARG_VALUE,
// naming the option and the platform). Checked by test/options-platform.test.ts
// (POSIX: every option is listed, every effect test exists, every POSIX
// refusal holds) and test/win/options.test.mjs (the same on Windows).
// A new option fails both until it is listed here.

const effect = (file, title) => ({ effect: { file, title } });
const refused = (value) => ({ refused: value });

export const SERVER_OPTIONS = {
  threads: {
    posix: effect('test/serving.test.ts', 'serves 8 threads x 500 concurrent requests, all answered correctly'),
    win32: effect('test/win/serving.test.mjs', 'silent connections do not hold the workers: 1 thread, 20 idle clients, others still served'),
  },
  maxRequestBytes: {
    posix: effect('test/limits.test.ts', 'a request of exactly the limit is served; one byte more is dropped and reported'),
    win32: effect('test/win/limits.test.mjs', 'maxRequestBytes: the limit is served, one byte more is dropped and reported'),
  },
  maxBufferedRequestBytes: {
    posix: effect('test/security/crowding.test.ts', '8 incomplete large requests stay within maxBufferedRequestBytes'),
    win32: effect('test/win/limits.test.mjs', 'maxBufferedRequestBytes: the read that would pass the budget drops its connection (ERR_IPC_BUFFER_FULL); the others keep theirs'),
  },
  requestTimeoutMs: {
    posix: effect('test/limits.test.ts', 'silent, half-sent and 1-byte-per-100-ms clients are each dropped between the timeout and twice it'),
    win32: effect('test/win/limits.test.mjs', 'requestTimeoutMs: a client that sends nothing is dropped and reported'),
  },
  maxConnections: {
    posix: effect('test/limits.test.ts', 'beyond the limit new connections are closed at once and reported'),
    win32: effect('test/win/limits.test.mjs', 'maxConnections: a connection over the limit is closed at once and reported'),
  },
  closeTimeoutMs: {
    posix: effect('test/lifecycle/stopping.test.ts', 'after QUIT with a handler that never settles: refuses new clients at once, then stops after closeTimeoutMs'),
    win32: effect('test/win/options.test.mjs', 'closeTimeoutMs: close() drops a handler that never answers once it has passed'),
  },
  idleTimeoutMs: {
    posix: effect('test/lifecycle/stopping.test.ts', "an open conversation holds the idle stop off; its end starts the clock; then it stops with 'idle' and removes its path"),
    win32: effect('test/win/lifecycle.test.mjs', "stops with 'idle' once no client has been connected for that long, not before; the name is gone"),
  },
  socketMode: {
    posix: effect('test/access.test.ts', 'socketMode 0o666 lets another user in; 0o600 keeps them out'),
    win32: refused(0o600),
  },
  allowPeer: {
    posix: effect('test/access.test.ts', 'a refused peer is disconnected before its request is read and never reaches the handler'),
    win32: effect('test/win/limits.test.mjs', 'allowPeer: a refused peer never reaches the handler; an accepted one does'),
  },
  pipeAccess: {
    posix: refused('everyone'),
    win32: effect('test/win/access.test.mjs', '{ sddl }: exactly the DACL asked for'),
  },
  listenFd: {
    posix: effect('test/lifecycle/socket-activation.test.ts', 'serves the socket inherited as fd 3 (LISTEN_FDS=1, LISTEN_PID), unsets the variables, never removes the file'),
    win32: refused(3),
  },
  closeOnSignals: {
    posix: effect('test/lifecycle/signals.test.ts', 'the running request is answered, the socket file removed, the process ends by'),
    win32: effect('test/win/options.test.mjs', "closeOnSignals: SIGINT (Ctrl+C) closes the server gracefully, then the process ends; 'SIGTERM' is refused"),
  },
  replace: {
    posix: effect('test/lifecycle/replace.test.ts', 'starts normally when nothing runs, and replaces a server in this process'),
    win32: effect('test/win/options.test.mjs', 'replace: the running server is asked to quit, then ours takes the name'),
  },
  version: {
    posix: effect('test/daemon.test.ts', 'a client that needs another version replaces the running daemon, and a client loop loses nothing'),
    win32: effect('test/win/options.test.mjs', 'version: a server that announces another version is asked to quit, then ours takes the name'),
  },
};

export const CLIENT_OPTIONS = {
  waitIfBusy: {
    posix: effect('test/client/connect.test.ts', 'waitIfBusy (the default): keeps trying, and reaches a server that starts meanwhile'),
    win32: effect('test/win/rendezvous.test.mjs', 'waitIfBusy: connects as soon as the instance is free again, and is served'),
  },
  waitIfNotFound: {
    posix: effect('test/client/connect.test.ts', 'waitIfNotFound: retries until the server appears'),
    win32: effect('test/win/client.test.mjs', 'waitIfNotFound: retries every 50 ms until the server appears'),
  },
  connectTimeoutMs: {
    posix: effect('test/client/connect.test.ts', 'waitIfNotFound: gives up after connectTimeoutMs with not-listening'),
    win32: effect('test/win/client.test.mjs', 'waitIfNotFound: gives up after connectTimeoutMs with path-not-found (as Git on Windows)'),
  },
  timeoutMs: {
    posix: effect('test/client/exchanges.test.ts', 'timeoutMs ends an exchange the server never answers with ERR_IPC_TIMEOUT'),
    win32: effect('test/win/client.test.mjs', 'timeoutMs ends an exchange the server never answers with ERR_IPC_TIMEOUT'),
  },
  signal: {
    posix: effect('test/client/exchanges.test.ts', 'an AbortSignal cancels a pending exchange with an AbortError'),
    win32: effect('test/win/client.test.mjs', 'an AbortSignal cancels a pending exchange with an AbortError'),
  },
  serverUid: {
    posix: effect('test/client/server-identity.test.ts', "'self' refuses it with ERR_IPC_SERVER_IDENTITY before the request is sent, in every client"),
    win32: effect('test/win/client.test.mjs', "serverUid: 'self' is served by our own server, in both clients; a uid is refused"),
  },
  maxResponseBytes: {
    posix: effect('test/client/server-identity.test.ts', 'maxResponseBytes takes a response of exactly the limit and refuses one byte more'),
    win32: effect('test/win/client.test.mjs', 'maxResponseBytes: exactly the limit is taken, one byte more is ERR_IPC_RESPONSE_TOO_LARGE'),
  },
  autoStart: {
    posix: effect('test/daemon.test.ts', 'sendCommand starts the daemon when nobody listens, then sends; later calls reach the same daemon'),
    win32: effect('test/win/options.test.mjs', 'autoStart: sendCommand starts the daemon when no pipe has the name, then sends'),
  },
};
