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
// state, then makes it non-blocking and close-on-exec. On failure the fd
// is left as it was (it is still the caller's) and the status says why:
// EBADF (not open), ENOTSOCK, EPROTOTYPE (not an AF_UNIX stream socket),
// EINVAL (not listening).
Status AdoptListeningSocket(int fd);

}  // namespace sipc
