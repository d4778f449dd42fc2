// Small POSIX socket helpers shared by the client and the server.
#pragma once

#include <cstdint>

#include "../core/server.h"

namespace sipc {

// A new AF_UNIX stream socket, non-blocking and close-on-exec; -1 + errno.
int NewUnixSocket();

// Makes `fd` non-blocking and close-on-exec (for accepted sockets on
// platforms without accept4).
bool SetNonBlockingCloexec(int fd);

// Peer credentials of a connected AF_UNIX socket (Linux SO_PEERCRED,
// BSD/macOS getpeereid + LOCAL_PEERPID). Fields stay -1 where unknown.
PeerInfo GetPeerInfo(int fd);

// Flags for send(): MSG_NOSIGNAL where it exists (on macOS the socket
// gets SO_NOSIGPIPE instead, see NewUnixSocket).
extern const int kSendFlags;

}  // namespace sipc
