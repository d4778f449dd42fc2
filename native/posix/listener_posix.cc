#include "listener_posix.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <thread>

#include "../core/clock.h"
#include "../core/stale_lock.h"
#include "inherited_listener.h"
#include "socket_util.h"
#include "unix_address.h"

namespace sipc {

namespace {

constexpr int kListenBacklog = 50;       // as Git
constexpr int64_t kLockTimeoutMs = 100;  // as Git

bool ProcessAlive(int64_t pid) { return kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM; }

// Reads what a stale-lock decision needs; false if the lock is gone.
bool InspectLock(const std::string& lock_path, LockFileInfo* info, struct stat* sb) {
  int fd = open(lock_path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[32];
  ssize_t n = fstat(fd, sb) == 0 ? read(fd, buf, sizeof(buf)) : -1;
  close(fd);
  if (n < 0) return false;
  info->content.assign(buf, static_cast<size_t>(n));
  int64_t mtime_ms = static_cast<int64_t>(sb->st_mtime) * 1000;
  int64_t now_ms = static_cast<int64_t>(time(nullptr)) * 1000;
  info->age_ms = now_ms - mtime_ms;
  return true;
}

// Moves a stale lock out of the way, unless another starter got there
// first. The rename is checked against the inode we judged: if the file
// we moved is a newer lock (a third process took the path between our
// look and our rename), it is put back at once.
void TakeOverStaleLock(const std::string& lock_path) {
  LockFileInfo info;
  struct stat judged;
  if (!InspectLock(lock_path, &info, &judged) || !LockIsStale(info, ProcessAlive)) return;
  static std::atomic<unsigned> counter{0};
  std::string aside = lock_path + ".stale." + std::to_string(getpid()) + "." + std::to_string(counter++);
  if (rename(lock_path.c_str(), aside.c_str()) < 0) return;  // someone else moved it
  struct stat moved;
  if (lstat(aside.c_str(), &moved) == 0 && (moved.st_ino != judged.st_ino || moved.st_dev != judged.st_dev)) {
    if (link(aside.c_str(), lock_path.c_str()) < 0) {
      // The path was taken again meanwhile; the lock we moved belongs to a
      // process that is still starting. Leave it where it is: that
      // process removes its lock by path and finds the new owner's, the
      // one way this rule can be wrong (three starters racing within
      // microseconds of a stale lock).
      return;
    }
  }
  unlink(aside.c_str());
}

Status TakeLock(const std::string& lock_path, int* out_fd) {
  int64_t give_up = NowMs() + kLockTimeoutMs;
  bool checked_stale = false;
  for (;;) {
    int fd = open(lock_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
      std::string content = LockContentFor(getpid());
      if (write(fd, content.data(), content.size()) < 0) {
        // An empty lock still works as Git's; it only loses the fast
        // stale check.
      }
      *out_fd = fd;
      return Status::Ok();
    }
    int err = errno;
    if (err != EEXIST) return Status::FromErrno(err, "open", "could not take lock file '" + lock_path + "'");
    if (!checked_stale) {
      checked_stale = true;
      TakeOverStaleLock(lock_path);
      continue;
    }
    if (NowMs() >= give_up) {
      return Status::FromErrno(err, "open", "could not take lock file '" + lock_path + "'");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// True when a server accepts connections at `address` (Git's probe).
bool LiveServerAt(const UnixAddress& address) {
  int err = ConnectOnce(address, 1000);
  return err == 0 || err == EAGAIN;  // EAGAIN: alive, backlog full
}

// Removes a stale socket at `path`; refuses anything that is not a socket.
Status ClearStaleSocket(const std::string& path) {
  struct stat sb;
  if (lstat(path.c_str(), &sb) < 0) return Status::Ok();
  // Git would delete a regular file here; we never destroy what is not ours.
  if (!S_ISSOCK(sb.st_mode)) return Status::Lib(LibCode::kNotSocket, "'" + path + "'");
  if (unlink(path.c_str()) < 0 && errno != ENOENT) {
    return Status::FromErrno(errno, "unlink", "stale socket '" + path + "'");
  }
  return Status::Ok();
}

// Binds and listens on a new socket at `path`; on failure nothing is left.
Status BindAndListen(const ServerOptions& options, const UnixAddress& address, Listener* out) {
  const std::string& path = options.path;
  int fd = NewUnixSocket();
  if (fd < 0) return Status::FromErrno(errno, "socket");
  const char* failed = nullptr;
  struct stat sb;
  if (bind(fd, address.addr(), address.len()) < 0) {
    failed = "bind";
  } else if (options.socket_mode >= 0 && chmod(path.c_str(), static_cast<mode_t>(options.socket_mode)) < 0) {
    // Between bind and listen nobody can connect (ECONNREFUSED), so the
    // mode is in place before the first client; the umask is untouched.
    failed = "chmod";
  } else if (listen(fd, kListenBacklog) < 0) {
    failed = "listen";
  } else if (lstat(path.c_str(), &sb) < 0) {
    failed = "lstat";
  }
  if (failed != nullptr) {
    int err = errno;
    close(fd);
    if (std::string(failed) != "bind") unlink(path.c_str());
    return Status::FromErrno(err, failed, path);
  }
  out->fd = fd;
  out->dev = sb.st_dev;
  out->ino = sb.st_ino;
  return Status::Ok();
}

// take_over (the `replace` option): a live server may still listen at
// the path. Ours is bound under a temporary name and renamed over the
// path once it listens, so that the path never goes missing; clients
// reach us from the rename on. docs/design.md#replace
Status BindAndRenameOver(const ServerOptions& options, Listener* out) {
  const std::string& path = options.path;
  struct stat sb;
  if (lstat(path.c_str(), &sb) == 0 && !S_ISSOCK(sb.st_mode)) return Status::Lib(LibCode::kNotSocket, "'" + path + "'");
  ServerOptions at_temporary = options;
  at_temporary.path = path + ".new";
  UnixAddress address;
  Status st = address.Resolve(at_temporary.path);
  if (!st.ok()) {
    st.syscall = "bind";
    return st;
  }
  unlink(at_temporary.path.c_str());  // left by a crash; we hold the lock
  st = BindAndListen(at_temporary, address, out);
  if (!st.ok()) return st;
  if (rename(at_temporary.path.c_str(), path.c_str()) < 0) {
    int err = errno;
    close(out->fd);
    out->fd = -1;
    unlink(at_temporary.path.c_str());
    return Status::FromErrno(err, "rename", path);
  }
  return Status::Ok();  // the inode (out->dev, out->ino) is the same after the rename
}

}  // namespace

Status OpenListener(const ServerOptions& options, Listener* out) {
  if (options.listen_fd >= 0) {
    Status adopted = AdoptListeningSocket(options.listen_fd);
    if (!adopted.ok()) return adopted;
    out->fd = options.listen_fd;
    out->owns_path = false;
    return Status::Ok();
  }
  const std::string& path = options.path;
  UnixAddress address;
  Status st = address.Resolve(path);
  if (!st.ok()) {
    st.syscall = "bind";
    return st;
  }
  std::string lock_path = path + ".lock";
  int lock_fd = -1;
  st = TakeLock(lock_path, &lock_fd);
  if (!st.ok()) return st;
  if (options.take_over) {
    st = BindAndRenameOver(options, out);
  } else if (LiveServerAt(address)) {
    st = Status::FromErrno(EADDRINUSE, "listen", path);
  } else {
    st = ClearStaleSocket(path);
    if (st.ok()) st = BindAndListen(options, address, out);
  }
  unlink(lock_path.c_str());
  close(lock_fd);
  return st;
}

bool ListenerPathStolen(const std::string& path, const Listener& listener) {
  if (!listener.owns_path) return false;
  struct stat sb;
  if (lstat(path.c_str(), &sb) < 0) return errno == ENOENT || errno == ENOTDIR;
  return !S_ISSOCK(sb.st_mode) || sb.st_dev != listener.dev || sb.st_ino != listener.ino;
}

void RemoveListenerPath(const std::string& path, const Listener& listener) {
  if (listener.owns_path && !ListenerPathStolen(path, listener)) unlink(path.c_str());
}

}  // namespace sipc
