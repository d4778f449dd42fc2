#include "socket_util.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>

namespace sipc {

#if defined(MSG_NOSIGNAL)
const int kSendFlags = MSG_NOSIGNAL;
#else
const int kSendFlags = 0;
#endif

ssize_t SendSpans(int fd, const pkt::Span* spans, size_t count, int flags) {
  if (count > kMaxSendSpans) count = kMaxSendSpans;
  iovec iov[kMaxSendSpans];
  for (size_t i = 0; i < count; i++) {
    iov[i].iov_base = const_cast<uint8_t*>(spans[i].data);
    iov[i].iov_len = spans[i].size;
  }
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = count;
  ssize_t n;
  do {
    n = sendmsg(fd, &msg, kSendFlags | flags);
  } while (n < 0 && errno == EINTR);
  return n;
}

bool SetNonBlockingCloexec(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return false;
  int fdfl = fcntl(fd, F_GETFD);
  if (fdfl < 0 || fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) < 0) return false;
#if defined(SO_NOSIGPIPE)
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof(one));
#endif
  return true;
}

int NewUnixSocket() {
#if defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC)
  return socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
#else
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd >= 0 && !SetNonBlockingCloexec(fd)) {
    int err = errno;
    close(fd);
    errno = err;
    return -1;
  }
  return fd;
#endif
}

int ConnectOnce(const UnixAddress& address, int timeout_ms) {
  int fd = NewUnixSocket();
  if (fd < 0) return errno;
  int rc;
  do {
    rc = connect(fd, address.addr(), address.len());
  } while (rc < 0 && errno == EINTR);
  int err = rc == 0 ? 0 : errno;
  if (err == EINPROGRESS) {
    pollfd pfd{fd, POLLOUT, 0};
    err = ETIMEDOUT;
    if (poll(&pfd, 1, timeout_ms) == 1) {
      socklen_t len = sizeof(err);
      if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
    }
  }
  close(fd);
  return err;
}

PeerInfo GetPeerInfo(int fd) {
  PeerInfo peer;
#if defined(SO_PEERCRED)
  struct ucred cred {};
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
    peer.pid = cred.pid;
    peer.uid = cred.uid;
    peer.gid = cred.gid;
  }
#else
  uid_t uid;
  gid_t gid;
  if (getpeereid(fd, &uid, &gid) == 0) {
    peer.uid = uid;
    peer.gid = gid;
  }
#if defined(LOCAL_PEERPID)
  pid_t pid;
  socklen_t len = sizeof(pid);
  if (getsockopt(fd, SOL_LOCAL, LOCAL_PEERPID, &pid, &len) == 0) peer.pid = pid;
#endif
#endif
  return peer;
}

}  // namespace sipc
