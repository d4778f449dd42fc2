// The tool's name, exit codes and texts (usage, --help).

export const PROGRAM = 'simple-ipc';

// Exit codes: ./exit-codes.ts, re-exported for the subcommands.
export { EXIT_FAILED, EXIT_FATAL, EXIT_OK, EXIT_USAGE } from './exit-codes.js';

export const USAGE = `usage: ${PROGRAM} is-active    [--name=<path>]
   or: ${PROGRAM} run-daemon   [--name=<path>] [--threads=<n>]
   or: ${PROGRAM} start-daemon [--name=<path>] [--threads=<n>] [--max-wait=<seconds>]
   or: ${PROGRAM} stop-daemon  [--name=<path>] [--max-wait=<seconds>]
   or: ${PROGRAM} send         [--name=<path>] [--token=<token>]
   or: ${PROGRAM} sendbytes    [--name=<path>] [--bytecount=<n>] [--byte=<byte>]
   or: ${PROGRAM} multiple     [--name=<path>] [--threads=<n>] [--bytecount=<n>] [--batchsize=<n>]

    --name <name>         name or pathname of unix domain socket (default: ipc-test)
    --threads <n>         number of threads in server thread pool, or of client senders (default: 5)
    --max-wait <n>        seconds to wait for daemon to start or stop (default: 60)
    --bytecount <n>       number of bytes (default: 1024)
    --batchsize <n>       number of requests per thread (default: 10)
    --byte <byte>         ballast character (default: x)
    --token <token>       command token to send to the server (default: (no-command))

`;

export const HELP = `${PROGRAM}: talk to, or run, a simple-ipc daemon (Git's simple-ipc protocol).
Interchangeable with Git's test helper \`test-tool simple-ipc\`.

${USAGE}Subcommands:
  is-active     Exit 0 silently if a server listens at <path>; otherwise print
                an error and exit 1.
  run-daemon    Run the test application daemon in the foreground until a
                client sends \`quit\` (or SIGINT/SIGTERM).
  start-daemon  Start \`run-daemon\` in the background and wait up to
                --max-wait seconds until it listens.
  stop-daemon   Send \`quit\`, then wait (checking every 100 ms) up to
                --max-wait seconds until <path> no longer listens.
  send          Send <token>; print the response and a newline (nothing if the
                response is empty).
  sendbytes     Send "sendbytes " + <bytecount> copies of <byte>; print
                "sent:<byte><bytecount, 8 digits> <response, trailing whitespace
                trimmed>".
  multiple      Run <threads> concurrent senders; sender k sends <batchsize>
                sendbytes requests with byte 'A'+k%26 and
                <bytecount> + <batchsize>*floor(k/26) + i bytes (i = 0, 1, ...),
                printing one sendbytes line per request as it completes, then
                "client (good N) (join 0), (errors M)".

The test application (the daemon's requests and responses):
  quit                 no response; the daemon shuts down
  ping                 pong
  big                  10000 rows "big: <row, 75 digits>\\n", in one chunk
  chunk                the same 10000 rows, one chunk per row
  slow                 1000 such rows, one chunk per row, 10 ms apart
  sendbytes <ballast>  rcvd:<byte><length, 8 digits>\\n, or errs:<count>\\n
  anything else        unhandled command: <request>

Every client subcommand first checks, as is-active does, that <path> listens.
Numeric options below 1 are raised to 1 (--max-wait to 0); --byte takes the
first byte of its value. Options may be abbreviated (--tok=ping).

Errors go to stderr, one line each, prefixed "error: ":
  no server listening at '<path>'           is-active and every client subcommand:
  path not found '<path>'                   the path's active state is not
  invalid pipe/socket name '<path>'         "listening"
  other error for '<path>'
  socket/pipe already in use: '<path>'      run-daemon: a live server owns the path
  could not start server on: '<path>': <reason>
  daemon failed to start                    start-daemon: the path cannot listen
  daemon not online yet                     start-daemon: --max-wait ran out
  daemon terminated                         start-daemon: the daemon exited
  daemon has not shutdown yet               stop-daemon: --max-wait ran out
  failed to send '<token>' to '<path>'      send, stop-daemon
  client failed to sendbytes(<n>, '<byte>') to '<path>'   sendbytes, multiple

Exit codes: 0 success; 1 failure; 128 unknown subcommand; 129 bad option or -h.
`;
