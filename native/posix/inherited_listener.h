// A listening socket the process inherited instead of creating: from
// systemd socket activation (LISTEN_FDS, fd 3 onward) or from any parent
// that passes one. See docs/design.md#inherited-listeners.
//
// The server serves such a socket as it serves its own, except that it
// does not own the path: no lock file, no live-server probe, no bind, no
// unlink on stop, and no stolen-path check (whoever created the socket,
// systemd for instance, owns the file and may replace it).
#pragma once

#include "../core/status.h"

namespace sipc {

// Checks that `fd` is an open AF_UNIX SOCK_STREAM socket in the listening
// state, then sets `*own_fd` to a duplicate of it, close-on-exec and
// non-blocking, that the server serves and closes. `fd` itself stays the
// caller's: it is never closed, and only the O_NONBLOCK flag it shares
// with the duplicate (one open file description) changes. So a server
// never closes a descriptor number it did not open, and two servers given
// the same number each close only their own. On failure nothing is
// changed and the status says why: EBADF (not open), ENOTSOCK, EPROTOTYPE
// (not an AF_UNIX stream socket), EINVAL (not listening), or the error of
// the duplication (EMFILE).
Status AdoptListeningSocket(int fd, int* own_fd);

}  // namespace sipc
