// Path -> named-pipe name (docs/protocol.md#windows-pipe-names), the Windows rendezvous rule
// shared by the server, the clients and getActiveState.
#pragma once

#include <string>

#include "../core/status.h"

namespace sipc {
namespace win {

// Longest pipe name Windows accepts, "\\.\pipe\" included.
constexpr size_t kMaxPipeNameChars = 256;

// Git's pipe name for `path`, so that Git and we meet at the same pipe:
// `\\.\pipe\` + Git's own real path of `path`, with a drive prefix `C:`
// turned into `C_` and every `/` into `\`.
//
// Git's real path is lexical plus links, not the volume's final path:
//  - an absolute path keeps its root as written (drive letter, its case,
//    `subst` and mapped drives, `\\server\share\`);
//  - a relative path starts from the final path of the current directory
//    (GetFinalPathNameByHandleW of the directory handle);
//  - components are taken left to right: empty ones and `.` are dropped,
//    `..` drops the last resolved component, and an existing component
//    that is a symbolic link or a junction is replaced by its target as
//    the link spells it (an absolute target restarts from its own root);
//  - only the last component may be missing.
// So `S:\repo\.git\fsmonitor--daemon.ipc` on a `subst` drive stays
// `\\.\pipe\S_\repo\.git\fsmonitor--daemon.ipc`, whatever S: maps to.
//
// A path that already starts with `\\.\pipe\` (or `//./pipe/`, or
// `\\?\pipe\`) is taken as the pipe name itself.
//
// Errors (callers report them as "invalid-path", as Git does): EINVAL
// (empty, not UTF-8, empty pipe name), ENOENT (a component before the last
// does not exist), ELOOP (more than 32 links), ENAMETOOLONG (over
// kMaxPipeNameChars), EACCES and others from the file system.
Status PipeNameForPath(const std::string& path, std::wstring* pipe_name);

}  // namespace win
}  // namespace sipc
