#include "inherited_listener.h"

#include <fcntl.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cerrno>
#include <string>

#include "socket_util.h"

namespace sipc {

namespace {

std::string Described(int fd, const char* what) {
  return "inherited fd " + std::to_string(fd) + ": " + what;
}

// The address family, read from the bound address (SO_DOMAIN is Linux only).
int SocketFamily(int fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof(address);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) < 0) return -1;
  return address.ss_family;
}

// 1 listening, 0 not, -1 the platform cannot tell (no SO_ACCEPTCONN).
int IsListening(int fd) {
#if defined(SO_ACCEPTCONN)
  int value = 0;
  socklen_t length = sizeof(value);
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &value, &length) < 0) return -1;
  return value != 0 ? 1 : 0;
#else
  (void)fd;
  return -1;
#endif
}

}  // namespace

Status AdoptListeningSocket(int fd, int* own_fd) {
  struct stat sb;
  if (fd < 0 || fstat(fd, &sb) < 0) return Status::FromErrno(EBADF, "fstat", Described(fd, "not an open descriptor"));
  if (!S_ISSOCK(sb.st_mode)) return Status::FromErrno(ENOTSOCK, "fstat", Described(fd, "not a socket"));
  if (SocketFamily(fd) != AF_UNIX) {
    return Status::FromErrno(EPROTOTYPE, "getsockname", Described(fd, "not a Unix domain socket"));
  }
  int type = 0;
  socklen_t length = sizeof(type);
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) < 0 || type != SOCK_STREAM) {
    return Status::FromErrno(EPROTOTYPE, "getsockopt", Described(fd, "not a stream socket"));
  }
  if (IsListening(fd) == 0) return Status::FromErrno(EINVAL, "getsockopt", Described(fd, "not listening"));
  int own = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (own < 0) return Status::FromErrno(errno, "fcntl", Described(fd, "cannot duplicate"));
  if (!SetNonBlockingCloexec(own)) {
    int err = errno;
    close(own);
    return Status::FromErrno(err, "fcntl", Described(fd, "cannot make non-blocking"));
  }
  *own_fd = own;
  return Status::Ok();
}

}  // namespace sipc
