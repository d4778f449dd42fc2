// Building a sockaddr_un for a path of any length, without chdir().
//
// sun_path holds about 108 bytes on Linux (104 on macOS). Node's `net`
// silently truncates longer paths; Git chdir()s into the directory, which
// would move the whole Node process. On Linux we go through the
// directory's /proc/self/fd/N entry of an O_PATH descriptor instead;
// elsewhere a long path fails with ENAMETOOLONG naming the path.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <string>

#include "../core/status.h"

namespace sipc {

class UnixAddress {
 public:
  UnixAddress() = default;
  ~UnixAddress();
  UnixAddress(const UnixAddress&) = delete;
  UnixAddress& operator=(const UnixAddress&) = delete;

  // Keep the object alive while bind()/connect() use the address: it may
  // own the directory descriptor that the address refers to.
  Status Resolve(const std::string& path);

  const sockaddr* addr() const { return reinterpret_cast<const sockaddr*>(&addr_); }
  socklen_t len() const { return len_; }

 private:
  sockaddr_un addr_{};
  socklen_t len_ = 0;
  int dir_fd_ = -1;
};

}  // namespace sipc
