// Small POSIX socket helpers shared by the client and the server.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>

#include "../core/pkt_line.h"
#include "../core/server.h"
#include "unix_address.h"

namespace sipc {

// A new AF_UNIX stream socket, non-blocking and close-on-exec; -1 + errno.
int NewUnixSocket();

// One connect attempt to `address` on a new socket, closed again at once
// without sending anything. Returns 0 on success, else the errno (EAGAIN:
// a live server with a full backlog; ETIMEDOUT: no answer in timeout_ms).
int ConnectOnce(const UnixAddress& address, int timeout_ms);

// Makes `fd` non-blocking and close-on-exec (for accepted sockets on
// platforms without accept4).
bool SetNonBlockingCloexec(int fd);

// Peer credentials of a connected AF_UNIX socket (Linux SO_PEERCRED,
// BSD/macOS getpeereid + LOCAL_PEERPID). Fields stay -1 where unknown.
PeerInfo GetPeerInfo(int fd);

// Flags for send(): MSG_NOSIGNAL where it exists (on macOS the socket
// gets SO_NOSIGPIPE instead, see NewUnixSocket).
extern const int kSendFlags;

// The most spans one SendSpans call takes (the rest waits for the next).
constexpr size_t kMaxSendSpans = 64;

// One sendmsg() of up to kMaxSendSpans `spans`, with kSendFlags | `flags`,
// retried on EINTR. Returns what sendmsg returned (errno set on -1).
ssize_t SendSpans(int fd, const pkt::Span* spans, size_t count, int flags);

}  // namespace sipc
