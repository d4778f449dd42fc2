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

/** Usage lines of the daemon author's commands. */
export const CALL_USAGE = `usage: ${PROGRAM} call  <path> (<request> | - | --file=<file>) [--timeout=<seconds>]
   or: ${PROGRAM} state <path> [--json]
   or: ${PROGRAM} stop  <path> [--request=<text>] [--timeout=<seconds>]
`;

/** Help of one command, for `help <command>` and `<command> --help`. */
export const COMMAND_HELP: Readonly<Record<string, string>> = {
  call: `usage: ${PROGRAM} call <path> (<request> | - | --file=<file>) [--timeout=<seconds>]

Send one request to the daemon at <path> and write its response to stdout
as it arrives, byte for byte (no newline is added).

    <request>             the request, as UTF-8 text
    -                     read the request from stdin (binary-safe)
    -f, --file <file>     read the request from <file> (binary-safe)
    -t, --timeout <s>     give up after <s> seconds (decimals allowed); default: none

Exit codes: 0 answered; 2 no daemon listening at <path>; 3 timed out;
4 incomplete response (the connection ended before the response's end:
stdout then holds only part of it); 1 anything else; 129 bad usage.
`,
  state: `usage: ${PROGRAM} state <path> [--json]

Print the active state of <path>, as Git's simple-ipc tells it: listening,
not-listening, path-not-found, invalid-path or other-error.

    --json                print {"path": ..., "state": ...} instead

Exit codes: 0 listening; 2 not-listening or path-not-found (no daemon);
1 invalid-path or other-error; 129 bad usage.
`,
  stop: `usage: ${PROGRAM} stop <path> [--request=<text>] [--timeout=<seconds>]

Ask the daemon at <path> to stop (send it <text>, default "quit"), then
wait until <path> no longer listens.

    --request <text>      the request the daemon stops on; default: quit
    -t, --timeout <s>     how long to wait for it to stop; default: 10

Exit codes: 0 stopped; 2 no daemon listening at <path>; 3 still listening
after the timeout; 1 <path> cannot listen; 129 bad usage.
`,
  help: `usage: ${PROGRAM} help [<command>]

Print the help of <command>, or of the whole tool.
`,
  'is-active': `usage: ${PROGRAM} is-active [--name=<path>]

Exit 0 silently if a server listens at <path>; otherwise print why and exit 1.
`,
  'run-daemon': `usage: ${PROGRAM} run-daemon [--name=<path>] [--threads=<n>]

Run the test application daemon in the foreground until a client sends
"quit" (or SIGINT/SIGTERM). --threads: serving threads (default 5).
`,
  'start-daemon': `usage: ${PROGRAM} start-daemon [--name=<path>] [--threads=<n>] [--max-wait=<seconds>]

Start run-daemon in the background and wait up to --max-wait seconds
(default 60) until it listens.
`,
  'stop-daemon': `usage: ${PROGRAM} stop-daemon [--name=<path>] [--max-wait=<seconds>]

Send "quit", then wait (checking every 100 ms) up to --max-wait seconds
(default 60) until <path> no longer listens.
`,
  send: `usage: ${PROGRAM} send [--name=<path>] [--token=<token>]

Send <token> (default "(no-command)"); print the response and a newline
(nothing if the response is empty).
`,
  sendbytes: `usage: ${PROGRAM} sendbytes [--name=<path>] [--bytecount=<n>] [--byte=<byte>]

Send "sendbytes " and <bytecount> (default 1024) copies of <byte> (default
x); print "sent:<byte><bytecount, 8 digits> <response, trailing whitespace
trimmed>".
`,
  multiple: `usage: ${PROGRAM} multiple [--name=<path>] [--threads=<n>] [--bytecount=<n>] [--batchsize=<n>]

Run <threads> (default 5) concurrent senders; sender k sends <batchsize>
(default 10) sendbytes requests with byte 'A'+k%26 and
<bytecount> + <batchsize>*floor(k/26) + i bytes (i = 0, 1, ...), printing
one sendbytes line per request as it completes, then
"client (good N) (join 0), (errors M)".
`,
};

/** Every command, for `help` and for suggestions. */
export const COMMANDS: readonly string[] = Object.keys(COMMAND_HELP);

export const HELP = `${PROGRAM}: talk to, or run, a simple-ipc daemon (Git's simple-ipc protocol).

Your own daemon:
${CALL_USAGE}
Git's test helper (\`test-tool simple-ipc\`), interchangeable with it:
${USAGE}Subcommands:
  call          Send one request (an argument, - for stdin, or --file) and
                write the response to stdout as it arrives.
  state         Print the active state of <path>.
  stop          Ask the daemon to stop ("quit") and wait until it has.
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
  help          Print the help of a command (also: <command> --help).

The test application (the daemon's requests and responses):
  quit                 no response; the daemon shuts down
  ping                 pong
  big                  10000 rows "big: <row, 75 digits>\\n", in one chunk
  chunk                the same 10000 rows, one chunk per row
  slow                 1000 such rows, one chunk per row, 10 ms apart
  sendbytes <ballast>  rcvd:<byte><length, 8 digits>\\n, or errs:<count>\\n
  anything else        unhandled command: <request>

Every test-helper client subcommand first checks, as is-active does, that
<path> listens. Numeric options below 1 are raised to 1 (--max-wait to 0);
--byte takes the first byte of its value. Options may be abbreviated
(--tok=ping).

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

Exit codes: 0 success; 1 failure; 2 no daemon (call, state, stop); 3 timed
out (call, stop); 4 incomplete response (call); 128 unknown command;
129 bad usage or -h.

${PROGRAM} --version prints the version.
`;
