// The listening socket of a POSIX server: Git's start sequence (lock file,
// live-server probe, stale socket, bind, listen) and what the server later
// needs to know about its socket file. docs/protocol.md#starting
#pragma once

#include <sys/types.h>

#include <string>

#include "../core/server.h"
#include "../core/status.h"

namespace sipc {

struct Listener {
  int fd = -1;
  dev_t dev = 0;  // the socket file we bound, to tell it from a newer one
  ino_t ino = 0;
  // False for an inherited listener (ServerOptions::listen_fd): its file
  // belongs to whoever created it (systemd), so it is never removed and
  // never reported stolen. docs/design.md#inherited-listeners
  bool owns_path = true;
};

// Takes `<path>.lock` (taking over a stale one of ours; another user's,
// or anything but a regular file, is left alone: ERR_IPC_UNSAFE_FILE),
// refuses a live server's path (EADDRINUSE) and anything that is not a
// socket, replaces a stale socket, binds, listens (non-blocking), and
// releases the lock. With a socket mode, the socket is bound, given its
// mode and made to listen in a private directory beside the path first,
// then linked to the path (docs/security.md#the-socket-file). Blocking
// for up to about 100 ms; not the JS thread.
// With options.listen_fd: adopts that inherited socket instead (nothing
// else). With options.take_over: no live-server probe; the socket is
// staged the same way and renamed over the path once it listens.
Status OpenListener(const ServerOptions& options, Listener* out);

// True when the file at `path` is no longer the socket we bound (removed,
// replaced, or not a socket): new clients cannot reach us any more.
bool ListenerPathStolen(const std::string& path, const Listener& listener);

// Removes the socket file if it is still ours (never someone else's).
void RemoveListenerPath(const std::string& path, const Listener& listener);

}  // namespace sipc
