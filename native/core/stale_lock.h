// When may a left-over `<path>.lock` be taken over? (docs/protocol.md#the-lock-file)
//
// Git creates the lock empty and holds it for milliseconds while it
// starts a server; we write our pid into it. A lock outlives its holder
// only when that process was killed mid-start. The rule, kept free of
// system calls so that it can be tested on its own:
//  - a lock naming a pid that no longer exists is stale (ours, killed);
//  - a lock naming a live pid is never stale, however old (its holder may
//    be stopped in a debugger; we never take a live process's lock);
//  - a lock without a pid (Git's, or ours caught between create and
//    write) is stale once it is older than kEmptyLockStaleMs;
//  - a lock that is not a regular file of this user (a FIFO, another
//    user's file) is never stale: what is not ours is never removed
//    (docs/security.md#files-beside-the-socket).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace sipc {

constexpr int64_t kEmptyLockStaleMs = 5000;

struct LockFileInfo {
  std::string content;   // the first bytes of the file
  int64_t age_ms = 0;    // now - the file's modification time
  bool ours = true;      // a regular file owned by this process's user
};

// The pid written in a lock file ("1234\n"), or -1 when there is none.
int64_t LockOwnerPid(const std::string& content);

// `pid_alive` answers whether a process exists (kill(pid, 0) on POSIX).
template <typename PidAlive>
bool LockIsStale(const LockFileInfo& lock, PidAlive&& pid_alive) {
  if (!lock.ours) return false;
  int64_t pid = LockOwnerPid(lock.content);
  if (pid > 0) return !pid_alive(pid);
  return lock.age_ms >= kEmptyLockStaleMs;
}

// What we write into a lock we create.
std::string LockContentFor(int64_t pid);

}  // namespace sipc
