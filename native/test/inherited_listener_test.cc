// Tests of AdoptListeningSocket (posix/inherited_listener.h) on real
// sockets: what it accepts, what it refuses, and that a refused fd is
// left exactly as it was.
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "../posix/inherited_listener.h"
#include "test_util.h"

using sipc::AdoptListeningSocket;
using sipc::Status;

namespace {

// Where a refused adoption would have put its duplicate (it never does).
int unused_own = -1;

// A Unix socket of `type` bound to a fresh path in /tmp (listening when
// `listening`); the path is removed at once, the fd stays usable.
int BoundUnixSocket(int type, bool listening) {
  int fd = socket(AF_UNIX, type, 0);
  if (fd < 0) return -1;
  char dir[] = "/tmp/sipc-adopt-XXXXXX";
  if (mkdtemp(dir) == nullptr) return -1;
  std::string path = std::string(dir) + "/s";
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  int ok = bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  if (ok == 0 && listening) ok = listen(fd, 4);
  unlink(path.c_str());
  rmdir(dir);
  if (ok != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool NonBlocking(int fd) { return (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0; }
bool CloseOnExec(int fd) { return (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0; }

}  // namespace

TEST(a_listening_unix_stream_socket_is_adopted_as_a_duplicate_non_blocking_and_close_on_exec) {
  int fd = BoundUnixSocket(SOCK_STREAM, true);
  REQUIRE(fd >= 0);
  CHECK(!NonBlocking(fd));
  CHECK(!CloseOnExec(fd));
  int own = -1;
  Status st = AdoptListeningSocket(fd, &own);
  CHECK_EQ(st.code, 0);
  CHECK(own >= 0 && own != fd);
  CHECK(NonBlocking(own));
  CHECK(CloseOnExec(own));
  // The caller's descriptor stays its own: open, its close-on-exec flag
  // untouched (O_NONBLOCK is shared by both: one open file description).
  CHECK(!CloseOnExec(fd));
  close(own);
  CHECK(fcntl(fd, F_GETFD) >= 0);
  close(fd);
}

TEST(a_unix_socket_that_does_not_listen_is_refused_with_einval) {
  int fd = BoundUnixSocket(SOCK_STREAM, false);
  REQUIRE(fd >= 0);
  Status st = AdoptListeningSocket(fd, &unused_own);
  CHECK_EQ(st.code, EINVAL);
  CHECK(!st.detail.empty());
  CHECK(!NonBlocking(fd));  // left as it was
  close(fd);
}

TEST(a_datagram_unix_socket_is_refused_with_eprototype) {
  int fd = BoundUnixSocket(SOCK_DGRAM, false);
  REQUIRE(fd >= 0);
  CHECK_EQ(AdoptListeningSocket(fd, &unused_own).code, EPROTOTYPE);
  close(fd);
}

TEST(a_tcp_listener_is_refused_with_eprototype) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
  REQUIRE(listen(fd, 4) == 0);
  CHECK_EQ(AdoptListeningSocket(fd, &unused_own).code, EPROTOTYPE);
  CHECK(!NonBlocking(fd));
  close(fd);
}

TEST(a_file_is_refused_with_enotsock_and_a_closed_fd_with_ebadf) {
  int fd = open("/dev/null", O_RDONLY);
  REQUIRE(fd >= 0);
  CHECK_EQ(AdoptListeningSocket(fd, &unused_own).code, ENOTSOCK);
  close(fd);
  CHECK_EQ(AdoptListeningSocket(fd, &unused_own).code, EBADF);
  CHECK_EQ(AdoptListeningSocket(-1, &unused_own).code, EBADF);
}

TEST_MAIN()
