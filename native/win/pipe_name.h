// Path -> named-pipe name (SPEC 5), the Windows rendezvous rule shared by
// the server, the clients and getActiveState.
#pragma once

#include <string>

#include "../core/status.h"

namespace sipc {
namespace win {

// Longest pipe name Windows accepts, "\\.\pipe\" included.
constexpr size_t kMaxPipeNameChars = 256;

// As Git does: the real path of `path` (absolute, symbolic links and case
// resolved; the last component need not exist), with a drive prefix `C:`
// turned into `C_` and every `/` into `\`, under `\\.\pipe\`. So
// `C:\Users\me\repo\.git\fsmonitor--daemon.ipc` becomes
// `\\.\pipe\C_\Users\me\repo\.git\fsmonitor--daemon.ipc`.
//
// A path that already starts with `\\.\pipe\` (or `//./pipe/`, or
// `\\?\pipe\`) is taken as the pipe name itself.
//
// Errors: EINVAL (not UTF-8, empty pipe name), ENOENT (a directory above
// the last component does not exist, where Git's realpath fails too),
// ENAMETOOLONG (over kMaxPipeNameChars). Callers report such a path as
// "invalid-path".
Status PipeNameForPath(const std::string& path, std::wstring* pipe_name);

}  // namespace win
}  // namespace sipc
