// The few things the native client needs from its platform besides the
// simple-ipc transport: its arguments as UTF-8, reading a request from
// stdin or a file, and writing to stdout and stderr, all binary-safe.
// cli_io_posix.cc and cli_io_win.cc; one thread (the program's only one).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace sipc {
namespace cli {

// The command line as UTF-8 strings, program name first (on Windows from
// the UTF-16 command line, so that any path or request survives).
std::vector<std::string> Utf8Arguments(int argc, char** argv);

// Reads all of stdin, or all of the file at `path` (UTF-8). On failure
// returns false with `*error` saying why ("No such file or directory").
bool ReadStdin(std::vector<uint8_t>* out, std::string* error);
bool ReadWholeFile(const std::string& path, std::vector<uint8_t>* out, std::string* error);

// Writes all of `data` to stdout at once (no buffering: the response is
// shown as it streams). False once the reader has gone away.
bool WriteStdout(const uint8_t* data, size_t len);

// One message to stderr.
void WriteStderr(const std::string& text);

}  // namespace cli
}  // namespace sipc
