// What one client, or one user, may hold of a server before the
// application has its request (docs/security.md#refused-and-undecided-peers,
// docs/security.md#memory): the rules, kept free of system calls and
// locks so that both transports share them and they can be tested alone.
// The transport guards each object with a lock of its own (a leaf lock:
// nothing else is taken while holding it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>

#include "status.h"

namespace sipc {

// A peer that connects and stays silent is asked about (allowPeer) after
// this long even without a byte: it cannot hold its connection for
// requestTimeoutMs just by saying nothing. A liveness probe hangs up
// sooner and is never asked.
constexpr int64_t kSilentPeerCheckMs = 100;

// Connections the application has not decided on yet (with allowPeer:
// waiting for the first byte or for the answer), counted per user. A
// user other than the server's own may hold at most a quarter of
// maxConnections of them, so that one user (or three) refused or slow to
// decide cannot take every slot from the others. The server's own user
// is not capped: it is out of the threat model (docs/security.md#threat-model).
class UndecidedPeers {
 public:
  UndecidedPeers(int64_t own_uid, uint32_t max_connections)
      : own_uid_(own_uid), cap_(max_connections / 4 > 0 ? max_connections / 4 : 1) {}

  // Counts a new undecided connection of `uid`; false (nothing counted)
  // when that user already holds its share.
  bool TryAdmit(int64_t uid) {
    uint32_t& n = count_[uid];
    if (uid != own_uid_ && n >= cap_) {
      if (n == 0) count_.erase(uid);
      return false;
    }
    n++;
    return true;
  }
  // A connection counted by TryAdmit was decided on (allowed) or closed.
  void Decided(int64_t uid) {
    auto it = count_.find(uid);
    if (it == count_.end()) return;
    if (--it->second == 0) count_.erase(it);
  }
  uint32_t cap() const { return cap_; }
  uint32_t held(int64_t uid) const {
    auto it = count_.find(uid);
    return it == count_.end() ? 0 : it->second;
  }

  static Status OverShareStatus(int64_t uid, uint32_t cap) {
    return Status::Lib(LibCode::kTooManyConnections, "uid " + std::to_string(uid) + " already holds " +
                                                         std::to_string(cap) + " connections not allowed yet");
  }

 private:
  int64_t own_uid_;
  uint32_t cap_;
  std::unordered_map<int64_t, uint32_t> count_;
};

// The bytes of requests still being read, across every connection
// (maxBufferedRequestBytes). A read that would take the total past the
// budget drops the connection it arrived on (the newest bytes), with
// ERR_IPC_BUFFER_FULL; what the others hold is kept.
class RequestMemory {
 public:
  explicit RequestMemory(size_t budget) : budget_(budget) {}

  // `held` grows to `now_held` bytes; false (nothing charged) past the budget.
  bool Grow(size_t* held, size_t now_held) {
    if (now_held <= *held) return true;
    size_t more = now_held - *held;
    if (total_ > budget_ || more > budget_ - total_) return false;
    total_ += more;
    *held = now_held;
    return true;
  }
  // The bytes a connection held are its no more (handed over, or dropped).
  void Release(size_t* held) {
    total_ -= *held < total_ ? *held : total_;
    *held = 0;
  }
  size_t total() const { return total_; }

  static Status FullStatus(size_t budget) {
    return Status::Lib(LibCode::kBufferFull, "budget " + std::to_string(budget) + " bytes");
  }

 private:
  size_t budget_;
  size_t total_ = 0;
};

}  // namespace sipc
