// Exit codes of the native client: the numbers of lib/cli/exit-codes.ts
// (docs/cli.md#exit-codes), the one list for every face of the tool, under
// the same names (EXIT_NO_DAEMON is kExitNoDaemon);
// test/cli/native-send.test.ts fails if the two files differ.
#pragma once

namespace sipc {
namespace cli {

constexpr int kExitOk = 0;          // the daemon answered with a complete response
constexpr int kExitFailed = 1;      // any other failure
constexpr int kExitNoDaemon = 2;    // nothing listens at the path: start the daemon, retry
constexpr int kExitTimedOut = 3;    // --timeout ran out before the response was complete
constexpr int kExitIncomplete = 4;  // the connection ended before the response's end
constexpr int kExitUsage = 129;     // bad usage (Git's usage errors)

}  // namespace cli
}  // namespace sipc
