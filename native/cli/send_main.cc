// simple-ipc-send: the native command-line client (docs/cli.md#native-client).
// Sends one request to a simple-ipc daemon and streams the response to
// stdout, with Git's connect rules and wire (it is the platform's blocking
// client, SendCommandSyncStreaming, with the options of Git's own client).
// No Node, no threads: argument parsing, the request's bytes, the output
// and the exit code (exit_codes.h) are all that is here.
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "../core/client.h"
#include "../core/status.h"
#include "cli_io.h"
#include "exit_codes.h"

#ifndef SIPC_VERSION
#define SIPC_VERSION "dev"
#endif

namespace sipc {
namespace cli {

namespace {

const char kUsage[] =
    "usage: simple-ipc-send [options] <path> (<request> | - | --file=<file>)\n"
    "\n"
    "Sends <request> to the simple-ipc daemon at <path> and writes its response\n"
    "to stdout as it arrives, byte for byte. The request is the argument itself,\n"
    "stdin (-), or a file's contents (--file). The same as `simple-ipc call`.\n"
    "\n"
    "    -f, --file <file>     read the request from <file> (- for stdin)\n"
    "    -t, --timeout <s>     give up after <s> seconds (the whole exchange)\n"
    "    -h, --help            show this text\n"
    "    --version             show the version\n"
    "\n"
    "Exit codes: 0 answered; 1 failed; 2 no daemon at <path>; 3 timed out;\n"
    "4 incomplete response (the daemon hung up before its end); 129 usage.\n";

struct Arguments {
  std::string path;
  bool have_path = false;
  std::string request;  // the literal request, or "-"
  bool have_request = false;
  std::string file;  // --file
  bool have_file = false;
  int64_t timeout_ms = -1;
};

int UsageError(const std::string& message) {
  // The usage line only (the first of kUsage); --help has the rest.
  const char* end = std::strchr(kUsage, '\n');
  WriteStderr("error: " + message + "\n" + std::string(kUsage, end + 1) + "(simple-ipc-send --help for more)\n");
  return kExitUsage;
}

// Seconds above 0 (digits, optionally a fraction: 2, 0.5, .25) as whole
// milliseconds, rounded up; at most 2147483 s. As `simple-ipc call` reads
// --timeout (lib/cli/args.ts).
bool ParseSeconds(const std::string& text, int64_t* out_ms) {
  size_t dot = text.find('.');
  std::string whole = text.substr(0, dot);
  std::string fraction = dot == std::string::npos ? "" : text.substr(dot + 1);
  if ((whole.empty() && fraction.empty()) || (dot != std::string::npos && fraction.empty())) return false;
  if (whole.size() > 7) return false;
  for (char c : whole + fraction) {
    if (c < '0' || c > '9') return false;
  }
  int64_t ms = 0;
  for (char c : whole) ms = ms * 10 + (c - '0');
  ms *= 1000;
  // The first three fraction digits are milliseconds; any further nonzero
  // digit rounds up.
  for (size_t i = 0; i < 3; i++) ms += (i < fraction.size() ? fraction[i] - '0' : 0) * (i == 0 ? 100 : i == 1 ? 10 : 1);
  if (fraction.size() > 3 && fraction.find_first_not_of('0', 3) != std::string::npos) ms++;
  if (ms <= 0 || ms > int64_t{2147483} * 1000) return false;
  *out_ms = ms;
  return true;
}

// The value of an option given as --name=value, or as the next argument.
bool OptionValue(const std::vector<std::string>& args, size_t* i, const std::string& arg, std::string* value) {
  size_t eq = arg.find('=');
  if (arg.compare(0, 2, "--") == 0 && eq != std::string::npos) {
    *value = arg.substr(eq + 1);
    return true;
  }
  if (*i + 1 >= args.size()) return false;
  *value = args[++*i];
  return true;
}

bool IsOption(const std::string& arg, const char* short_name, const char* long_name) {
  size_t len = std::strlen(long_name);
  return arg == short_name || arg == long_name || (arg.compare(0, len, long_name) == 0 && arg.size() > len && arg[len] == '=');
}

// Returns -1 when the arguments are good, else the exit code (already reported).
int ParseArguments(const std::vector<std::string>& args, Arguments* out) {
  bool options_done = false;
  for (size_t i = 1; i < args.size(); i++) {
    const std::string& arg = args[i];
    if (!options_done && arg.size() > 1 && arg[0] == '-') {
      std::string value;
      if (arg == "--") {
        options_done = true;
      } else if (arg == "-h" || arg == "--help") {
        WriteStdout(reinterpret_cast<const uint8_t*>(kUsage), sizeof(kUsage) - 1);
        return kExitOk;
      } else if (arg == "--version") {
        std::string text = std::string("simple-ipc-send ") + SIPC_VERSION + "\n";
        WriteStdout(reinterpret_cast<const uint8_t*>(text.data()), text.size());
        return kExitOk;
      } else if (IsOption(arg, "-t", "--timeout")) {
        if (!OptionValue(args, &i, arg, &value)) return UsageError("option '--timeout' needs a value");
        if (!ParseSeconds(value, &out->timeout_ms)) {
          return UsageError("option '--timeout' expects a number of seconds above 0, not '" + value + "'");
        }
      } else if (IsOption(arg, "-f", "--file")) {
        if (!OptionValue(args, &i, arg, &value)) return UsageError("option '--file' needs a value");
        out->file = value;
        out->have_file = true;
      } else {
        return UsageError("unknown option '" + arg + "'");
      }
    } else if (!out->have_path) {
      out->path = arg;
      out->have_path = true;
    } else if (!out->have_request) {
      out->request = arg;
      out->have_request = true;
    } else {
      return UsageError("too many arguments (the request is one argument: quote it, or use - or --file)");
    }
  }
  if (!out->have_path) return UsageError("missing <path>");
  if (out->have_file && out->have_request) return UsageError("give the request as an argument, - or --file, not two of them");
  if (!out->have_file && !out->have_request) return UsageError("missing <request> (an argument, - for stdin, or --file=<file>)");
  return -1;
}

// The request's bytes: the argument, stdin or a file.
bool LoadRequest(const Arguments& a, std::vector<uint8_t>* request, std::string* error) {
  bool from_stdin = (a.have_file && a.file == "-") || (a.have_request && a.request == "-");
  if (from_stdin) {
    if (!ReadStdin(request, error)) {
      *error = "cannot read the request from stdin: " + *error;
      return false;
    }
    return true;
  }
  if (a.have_file) {
    if (!ReadWholeFile(a.file, request, error)) {
      *error = "cannot read the request from '" + a.file + "': " + *error;
      return false;
    }
    return true;
  }
  request->assign(a.request.begin(), a.request.end());
  return true;
}

// Writes each piece of the response as it comes; once stdout is gone
// (`| head`) the rest is read and dropped, so the exchange still ends
// cleanly for the daemon.
class StdoutSink : public ResponseSink {
 public:
  void OnResponseBytes(const uint8_t* data, size_t len) override {
    if (!broken_ && !WriteStdout(data, len)) broken_ = true;
  }
  bool broken() const { return broken_; }

 private:
  bool broken_ = false;
};

// "2 s", "0.25 s": the timeout as the user gave it.
std::string Seconds(int64_t ms) {
  std::string text = std::to_string(ms / 1000);
  if (ms % 1000 != 0) {
    std::string fraction = std::to_string(1000 + ms % 1000).substr(1);
    fraction.erase(fraction.find_last_not_of('0') + 1);
    text += "." + fraction;
  }
  return text + " s";
}

int Fail(int code, const std::string& message) {
  WriteStderr("error: " + message + "\n");
  return code;
}

// The message and exit code of a failed exchange: the wording and codes
// of `simple-ipc call` (lib/cli/call-commands.ts), so that the two
// clients can stand in for each other.
int ReportFailure(const ClientResult& result, const Arguments& a) {
  const std::string path = "'" + a.path + "'";
  const Status& st = result.status;
  if (st.is(LibCode::kTimeout)) {
    return Fail(kExitTimedOut, "no complete response from " + path + " within " + Seconds(a.timeout_ms) +
                                   ": raise --timeout, or check whether the daemon is stuck");
  }
  if (st.is(LibCode::kIncompleteResponse)) {
    return Fail(kExitIncomplete, "the response from " + path +
                                     " was cut short (the connection ended before its end): the daemon's handler "
                                     "failed or the daemon stopped; see the daemon's log");
  }
  if (st.is(LibCode::kProtocol)) {
    return Fail(kExitFailed, path + " answered with malformed pkt-lines: is a simple-ipc daemon listening there?");
  }
  if (st.code == EACCES || st.code == EPERM) {
    return Fail(kExitFailed, "permission denied connecting to " + path +
                                 ": the daemon's socket (or its directory) does not let this user in");
  }
  const std::string bad_path =
      path + " is not a socket a daemon listens on (or a directory of it is missing): check the path";
  if (!result.connected && (result.connect_state == ActiveState::kNotListening ||
                            result.connect_state == ActiveState::kPathNotFound)) {
    // A file that is not a socket refuses connections too: tell them apart
    // (only now, on the way out: the answered path never probes).
    if (GetActiveState(a.path) == ActiveState::kInvalidPath) return Fail(kExitFailed, bad_path);
    return Fail(kExitNoDaemon, "no daemon is listening at " + path + ": start it, or check the path");
  }
  if (!result.connected && result.connect_state == ActiveState::kInvalidPath) return Fail(kExitFailed, bad_path);
  return Fail(kExitFailed, "could not talk to " + path + ": " + StatusMessage(st));
}

}  // namespace

int Main(int argc, char** argv) {
  std::vector<std::string> args = Utf8Arguments(argc, argv);
  Arguments a;
  int code = ParseArguments(args, &a);
  if (code >= 0) return code;

  std::vector<uint8_t> request;
  std::string error;
  if (!LoadRequest(a, &request, &error)) {
    WriteStderr("error: " + error + "\n");
    return kExitFailed;
  }

  // Git's client's options (docs/protocol.md#client): wait while the
  // server is busy, not for a missing path; one second to connect.
  ClientOptions options;
  options.wait_if_busy = true;
  options.wait_if_not_found = false;
  options.timeout_ms = a.timeout_ms;
  StdoutSink sink;
  ClientResult result = SendCommandSyncStreaming(a.path, request.data(), request.size(), options, &sink);
  if (!result.status.ok()) return ReportFailure(result, a);
  return sink.broken() ? kExitFailed : kExitOk;
}

}  // namespace cli
}  // namespace sipc

int main(int argc, char** argv) { return sipc::cli::Main(argc, argv); }
