// Poller: readiness notification for many descriptors (epoll on Linux,
// poll() elsewhere), plus a Waker that lets another thread interrupt
// Wait(). Thread-safety: Add/Modify/Remove may be called from any thread
// (epoll_ctl is thread-safe); Wait from the owning thread only.
#pragma once

#include <cstdint>
#include <memory>

namespace sipc {

constexpr uint32_t kPollIn = 1;
constexpr uint32_t kPollOut = 2;
// The peer closed both ways (always reported). A half-close shows as
// kPollIn, where read() returns 0.
constexpr uint32_t kPollHangup = 4;
constexpr uint32_t kPollError = 8;
// Add() only: when several pollers watch one descriptor (a listening
// socket shared by serving threads), wake one of them per event, not all
// (epoll's EPOLLEXCLUSIVE; other backends wake all, which is only slower).
constexpr uint32_t kPollExclusive = 16;

struct PollEvent {
  uint64_t key;
  uint32_t events;
};

class Poller {
 public:
  virtual ~Poller() = default;
  // `events` of kPollIn/kPollOut; hang-up and error are always reported.
  // With `oneshot`, the registration is disarmed after one event until
  // Modify() arms it again.
  virtual bool Add(int fd, uint32_t events, uint64_t key, bool oneshot) = 0;
  virtual bool Modify(int fd, uint32_t events, uint64_t key, bool oneshot) = 0;
  virtual void Remove(int fd) = 0;
  // The descriptor registered as `fd` with `key` is closed, or about to
  // be. epoll drops the registration by itself on close (a no-op there);
  // the poll() backend must be told. Safe after the close too: once
  // closed, the number may already belong to a new descriptor that
  // another thread has added under its own key, and that registration
  // stays (only the one made with `key` goes).
  virtual void Forget(int fd, uint64_t key) {
    (void)fd;
    (void)key;
  }
  // Returns the number of events stored, 0 on timeout; -1 + errno.
  virtual int Wait(PollEvent* out, int max, int timeout_ms) = 0;
  // Interrupts a Wait() from any thread; it reports `key` = kWakeKey.
  virtual void Wake() = 0;
  static constexpr uint64_t kWakeKey = ~uint64_t{0};
  // A descriptor that is readable while Wait() has events to report, for
  // nesting this poller in another event loop; -1 when the backend has
  // none (poll()).
  virtual int fd() const { return -1; }

  // nullptr + errno on failure.
  static std::unique_ptr<Poller> Create();
};

}  // namespace sipc
