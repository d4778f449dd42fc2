#include "listener_posix.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <random>
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

// A file we may take as our own beside the socket: a regular file of this
// process's user (docs/security.md#files-beside-the-socket).
bool RegularFileOfOurs(const struct stat& sb) { return S_ISREG(sb.st_mode) && sb.st_uid == geteuid(); }

enum class LockLook { kGone, kOurs, kForeign };

// Reads what a stale-lock decision needs. Never follows a symlink and never
// waits on a FIFO (O_NONBLOCK): anything but a regular file of ours is
// kForeign, and is never taken over.
LockLook InspectLock(const std::string& lock_path, LockFileInfo* info, struct stat* sb) {
  int fd = open(lock_path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? LockLook::kGone : LockLook::kForeign;  // ELOOP, ENXIO, EACCES...
  if (fstat(fd, sb) < 0 || !RegularFileOfOurs(*sb)) {
    close(fd);
    info->ours = false;
    return LockLook::kForeign;
  }
  char buf[32];
  ssize_t n = read(fd, buf, sizeof(buf));
  close(fd);
  if (n < 0) n = 0;
  info->content.assign(buf, static_cast<size_t>(n));
  int64_t mtime_ms = static_cast<int64_t>(sb->st_mtime) * 1000;
  int64_t now_ms = static_cast<int64_t>(time(nullptr)) * 1000;
  info->age_ms = now_ms - mtime_ms;
  return LockLook::kOurs;
}

// Moves a stale lock out of the way, unless another starter got there
// first. The rename is checked against the inode we judged: if the file
// we moved is a newer lock (a third process took the path between our
// look and our rename), it is put back at once.
// Returns false when the lock is not ours to judge (kForeign).
bool TakeOverStaleLock(const std::string& lock_path) {
  LockFileInfo info;
  struct stat judged;
  LockLook look = InspectLock(lock_path, &info, &judged);
  if (look != LockLook::kOurs) return look == LockLook::kGone;
  if (!LockIsStale(info, ProcessAlive)) return true;
  static std::atomic<unsigned> counter{0};
  std::string aside = lock_path + ".stale." + std::to_string(getpid()) + "." + std::to_string(counter++);
  if (rename(lock_path.c_str(), aside.c_str()) < 0) return true;  // someone else moved it
  struct stat moved;
  if (lstat(aside.c_str(), &moved) == 0 && (moved.st_ino != judged.st_ino || moved.st_dev != judged.st_dev)) {
    if (link(aside.c_str(), lock_path.c_str()) < 0) {
      // The path was taken again meanwhile; the lock we moved belongs to a
      // process that is still starting. Leave it where it is: that
      // process removes its lock by path and finds the new owner's, the
      // one way this rule can be wrong (three starters racing within
      // microseconds of a stale lock).
      return true;
    }
  }
  unlink(aside.c_str());
  return true;
}

// The lock we hold: its descriptor and its inode, so that we remove only
// our own file when we release it.
struct HeldLock {
  int fd = -1;
  dev_t dev = 0;
  ino_t ino = 0;
};

Status ForeignLockStatus(const std::string& lock_path) {
  return Status::Lib(LibCode::kUnsafeFile, "lock file '" + lock_path + "' is not a regular file of this user");
}

Status TakeLock(const std::string& lock_path, HeldLock* held) {
  int64_t give_up = NowMs() + kLockTimeoutMs;
  bool checked_stale = false;
  bool foreign = false;
  for (;;) {
    // O_EXCL: never follows a symlink nor opens an existing FIFO.
    int fd = open(lock_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
    if (fd >= 0) {
      std::string content = LockContentFor(getpid());
      if (write(fd, content.data(), content.size()) < 0) {
        // An empty lock still works as Git's; it only loses the fast
        // stale check.
      }
      struct stat sb;
      if (fstat(fd, &sb) == 0) {
        held->dev = sb.st_dev;
        held->ino = sb.st_ino;
      }
      held->fd = fd;
      return Status::Ok();
    }
    int err = errno;
    if (err != EEXIST) return Status::FromErrno(err, "open", "could not take lock file '" + lock_path + "'");
    if (!checked_stale) {
      checked_stale = true;
      foreign = !TakeOverStaleLock(lock_path);
      continue;
    }
    if (NowMs() >= give_up) {
      if (foreign) return ForeignLockStatus(lock_path);
      return Status::FromErrno(err, "open", "could not take lock file '" + lock_path + "'");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// Removes the lock if the file at its path is still the one we created
// (in a directory others may write, it may have been swapped).
void ReleaseLock(const std::string& lock_path, const HeldLock& held) {
  struct stat sb;
  if (lstat(lock_path.c_str(), &sb) == 0 && sb.st_dev == held.dev && sb.st_ino == held.ino) unlink(lock_path.c_str());
  close(held.fd);
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

// Binds and listens on a new socket at `path`, its mode from the umask
// (no socketMode: nothing to race); on failure nothing is left.
Status BindAndListen(const ServerOptions& options, const UnixAddress& address, Listener* out) {
  const std::string& path = options.path;
  int fd = NewUnixSocket();
  if (fd < 0) return Status::FromErrno(errno, "socket");
  const char* failed = nullptr;
  struct stat sb;
  if (bind(fd, address.addr(), address.len()) < 0) {
    failed = "bind";
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

// ---------------------------------------------------------------------------
// Binding where nobody else can reach the socket (docs/security.md#the-socket-file)
//
// A socket's mode set by path after bind() can be redirected (the path
// swapped for a symlink in between), and one set before bind() on the
// descriptor (Linux's fchmod) is still cut by the umask and ignored
// elsewhere. So a socket with a mode, and every socket that takes a path
// over, is bound in a new 0700 directory beside the path, given its mode
// and made to listen there, all through that directory's descriptor; only
// then is it linked to the path (or renamed over it). Nobody can connect
// before the mode is in place, and no path another user can change is
// followed after bind().

constexpr const char kStagedName[] = "s";

// `path` split into its directory (opened) and its last component.
struct PathParent {
  int fd = -1;
  std::string dir;
  std::string base;
  ~PathParent() {
    if (fd >= 0) close(fd);
  }
};

Status OpenParent(const std::string& path, PathParent* out) {
  size_t slash = path.rfind('/');
  out->dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  out->base = slash == std::string::npos ? path : path.substr(slash + 1);
  if (out->base.empty()) return Status::FromErrno(EINVAL, "bind", "socket path ends with '/': '" + path + "'");
#if defined(O_PATH)
  out->fd = open(out->dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
#else
  out->fd = open(out->dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
#endif
  if (out->fd < 0) return Status::FromErrno(errno, "open", "directory of '" + path + "'");
  return Status::Ok();
}

// A new directory of ours, mode 0700, beside the socket path.
struct PrivateDir {
  int fd = -1;
  std::string name;  // in the parent
  dev_t dev = 0;
  ino_t ino = 0;
};

std::string RandomSuffix() {
  uint64_t bits;
  try {
    std::random_device rd;
    bits = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  } catch (...) {
    bits = static_cast<uint64_t>(NowMs()) * 0x9E3779B97F4A7C15ull ^ static_cast<uint64_t>(getpid());
  }
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 12; i++, bits >>= 4) out += kHex[bits & 15];
  return out;
}

Status MakePrivateDir(const PathParent& parent, PrivateDir* out) {
  for (int attempt = 0;; attempt++) {
    std::string name = ".sipc-" + RandomSuffix();
    if (mkdirat(parent.fd, name.c_str(), 0700) < 0) {
      if (errno == EEXIST && attempt < 8) continue;  // taken (by chance or on purpose): another name
      return Status::FromErrno(errno, "mkdir", "private directory beside '" + parent.dir + "/" + parent.base + "'");
    }
    out->name = name;
    break;
  }
  out->fd = openat(parent.fd, out->name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  struct stat sb;
  if (out->fd < 0 || fstat(out->fd, &sb) < 0 || !S_ISDIR(sb.st_mode) || sb.st_uid != geteuid() ||
      (sb.st_mode & 077) != 0) {
    // Swapped between mkdir and open by someone who may write the parent.
    if (out->fd >= 0) close(out->fd);
    out->fd = -1;
    return Status::Lib(LibCode::kUnsafeFile, "private directory '" + parent.dir + "/" + out->name + "' was replaced");
  }
  out->dev = sb.st_dev;
  out->ino = sb.st_ino;
  return Status::Ok();
}

// Removes the staged socket (if still there) and the directory, if the
// name still holds our directory.
void RemovePrivateDir(const PathParent& parent, PrivateDir* dir) {
  if (dir->fd < 0) return;
  unlinkat(dir->fd, kStagedName, 0);
  struct stat sb;
  if (fstatat(parent.fd, dir->name.c_str(), &sb, AT_SYMLINK_NOFOLLOW) == 0 && sb.st_dev == dir->dev &&
      sb.st_ino == dir->ino) {
    unlinkat(parent.fd, dir->name.c_str(), AT_REMOVEDIR);
  }
  close(dir->fd);
  dir->fd = -1;
}

// The address of the staged socket: through the directory's descriptor on
// Linux (no path anyone else can change), else by its path.
Status StagedAddress(const PathParent& parent, const PrivateDir& dir, UnixAddress* address) {
#if defined(__linux__)
  Status st = address->Resolve("/proc/self/fd/" + std::to_string(dir.fd) + "/" + kStagedName);
  struct stat sb;
  if (st.ok() && stat(("/proc/self/fd/" + std::to_string(dir.fd)).c_str(), &sb) == 0 && sb.st_ino == dir.ino) return st;
#endif
  return address->Resolve(parent.dir + "/" + dir.name + "/" + kStagedName);
}

// Makes the listening staged socket reachable at the path: linked (a new
// name, failing if anything is there: EADDRINUSE, as bind() would), or,
// to take a path over, renamed over it.
Status PublishStaged(const PathParent& parent, const PrivateDir& dir, bool replace, const std::string& path) {
  if (!replace) {
    if (linkat(dir.fd, kStagedName, parent.fd, parent.base.c_str(), 0) == 0) return Status::Ok();
    if (errno == EEXIST) return Status::FromErrno(EADDRINUSE, "bind", path);
    if (errno != EPERM && errno != ENOTSUP && errno != EOPNOTSUPP && errno != EMLINK) {
      return Status::FromErrno(errno, "link", path);
    }
    // A file system without hard links: a rename, once the name is free.
    struct stat sb;
    if (fstatat(parent.fd, parent.base.c_str(), &sb, AT_SYMLINK_NOFOLLOW) == 0) {
      return Status::FromErrno(EADDRINUSE, "bind", path);
    }
  }
  if (renameat(dir.fd, kStagedName, parent.fd, parent.base.c_str()) < 0) return Status::FromErrno(errno, "rename", path);
  return Status::Ok();
}

// Binds a new socket in `dir`, gives it its mode, listens; *sb: its file.
Status BindInPrivateDir(const ServerOptions& options, const PathParent& parent, const PrivateDir& dir, int fd,
                        struct stat* sb) {
  UnixAddress address;
  Status st = StagedAddress(parent, dir, &address);
  if (!st.ok()) return st;
  if (bind(fd, address.addr(), address.len()) < 0) return Status::FromErrno(errno, "bind", options.path);
  if (fstatat(dir.fd, kStagedName, sb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISSOCK(sb->st_mode)) {
    return Status::Lib(LibCode::kUnsafeFile, "the socket bound in '" + parent.dir + "/" + dir.name + "' is not there");
  }
  if (options.socket_mode >= 0 && fchmodat(dir.fd, kStagedName, static_cast<mode_t>(options.socket_mode), 0) < 0) {
    return Status::FromErrno(errno, "chmod", options.path);
  }
  if (listen(fd, kListenBacklog) < 0) return Status::FromErrno(errno, "listen", options.path);
  return Status::Ok();
}

Status BindStaged(const ServerOptions& options, bool replace, Listener* out) {
  PathParent parent;
  Status st = OpenParent(options.path, &parent);
  if (!st.ok()) return st;
  PrivateDir dir;
  st = MakePrivateDir(parent, &dir);
  if (!st.ok()) return st;
  int fd = NewUnixSocket();
  struct stat sb;
  if (fd < 0) {
    st = Status::FromErrno(errno, "socket");
  } else {
    st = BindInPrivateDir(options, parent, dir, fd, &sb);
    if (st.ok()) st = PublishStaged(parent, dir, replace, options.path);
  }
  RemovePrivateDir(parent, &dir);
  if (!st.ok()) {
    if (fd >= 0) close(fd);
    return st;
  }
  out->fd = fd;
  out->dev = sb.st_dev;  // the same inode under its new name
  out->ino = sb.st_ino;
  return Status::Ok();
}

// take_over (the `replace` option): a live server may still listen at
// the path. Ours is staged and renamed over the path once it listens, so
// that the path never goes missing; clients reach us from the rename on.
// docs/design.md#replace
Status BindAndRenameOver(const ServerOptions& options, Listener* out) {
  const std::string& path = options.path;
  struct stat sb;
  if (lstat(path.c_str(), &sb) == 0 && !S_ISSOCK(sb.st_mode)) return Status::Lib(LibCode::kNotSocket, "'" + path + "'");
  return BindStaged(options, true, out);
}

}  // namespace

Status OpenListener(const ServerOptions& options, Listener* out) {
  if (options.listen_fd >= 0) {
    Status adopted = AdoptListeningSocket(options.listen_fd, &out->fd);
    if (!adopted.ok()) return adopted;
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
  HeldLock lock;
  st = TakeLock(lock_path, &lock);
  if (!st.ok()) return st;
  if (options.take_over) {
    st = BindAndRenameOver(options, out);
  } else if (LiveServerAt(address)) {
    st = Status::FromErrno(EADDRINUSE, "listen", path);
  } else {
    st = ClearStaleSocket(path);
    if (st.ok()) st = options.socket_mode >= 0 ? BindStaged(options, false, out) : BindAndListen(options, address, out);
  }
  ReleaseLock(lock_path, lock);
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
