#include "unix_address.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

namespace sipc {

UnixAddress::~UnixAddress() {
  if (dir_fd_ >= 0) close(dir_fd_);
}

namespace {

void Fill(sockaddr_un* addr, socklen_t* len, const std::string& s) {
  std::memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  std::memcpy(addr->sun_path, s.data(), s.size());
  *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + s.size() + 1);
}

Status TooLong(const std::string& path) {
  return Status::FromErrno(ENAMETOOLONG, "connect",
                           "socket path of " + std::to_string(path.size()) +
                               " bytes does not fit in sun_path (" +
                               std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) +
                               " bytes at most): '" + path + "'");
}

}  // namespace

Status UnixAddress::Resolve(const std::string& path) {
  if (path.empty()) return Status::FromErrno(ENOENT, "connect", "empty socket path");
  if (path.find('\0') != std::string::npos) {
    return Status::FromErrno(EINVAL, "connect", "socket path contains a NUL byte");
  }
  if (path.size() < sizeof(addr_.sun_path)) {
    Fill(&addr_, &len_, path);
    return Status::Ok();
  }
#if defined(__linux__)
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  if (base.empty()) return Status::FromErrno(EINVAL, "connect", "socket path ends with '/': '" + path + "'");
  int fd = open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    return Status::FromErrno(err, "open", "directory of socket path '" + path + "'");
  }
  std::string proc = "/proc/self/fd/" + std::to_string(fd) + "/" + base;
  if (proc.size() >= sizeof(addr_.sun_path)) {
    close(fd);
    return TooLong(path);
  }
  if (dir_fd_ >= 0) close(dir_fd_);
  dir_fd_ = fd;
  Fill(&addr_, &len_, proc);
  return Status::Ok();
#else
  return TooLong(path);
#endif
}

}  // namespace sipc
