// Exit codes of the `simple-ipc` command, in one place: the daemon
// author's commands (call, state, stop), Git's test-helper subcommands and
// the native `simple-ipc-send` all use these numbers (docs/cli.md#exit-codes).
//
// Git's helper knows only OK, FAILED, FATAL and USAGE; its subcommands keep
// exactly those (Git's own test suite checks them). The daemon author's
// commands tell the outcomes of one exchange apart, so that a script can
// act on them without parsing messages.

/** The command did what it was asked: the daemon answered with a complete response. */
export const EXIT_OK = 0;
/** Any other failure: connecting failed otherwise, a malformed response, an unreadable request file. */
export const EXIT_FAILED = 1;
/** No daemon: nothing listens at the path (no file there, or a stale socket). */
export const EXIT_NO_DAEMON = 2;
/** `--timeout` ran out before the response was complete. */
export const EXIT_TIMED_OUT = 3;
/** The connection ended before the response's end (its flush packet): the handler failed or the daemon stopped. */
export const EXIT_INCOMPLETE = 4;
/** Git's die(): an unknown command. */
export const EXIT_FATAL = 128;
/** Bad usage: an unknown option, a missing or extra argument (Git's usage errors). */
export const EXIT_USAGE = 129;

/** Every code by name, for documentation and for tools built on this one. */
export const EXIT_CODES = {
  ok: EXIT_OK,
  failed: EXIT_FAILED,
  noDaemon: EXIT_NO_DAEMON,
  timedOut: EXIT_TIMED_OUT,
  incomplete: EXIT_INCOMPLETE,
  fatal: EXIT_FATAL,
  usage: EXIT_USAGE,
} as const;
