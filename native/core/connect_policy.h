// Git's connect-retry rules as a pure decision (no system calls), shared
// by the POSIX and the Windows clients (docs/protocol.md#connect-loop).
//
// The transport tries to connect, classifies a failure, and asks the
// policy what to do next: try again at a given time, or give up with an
// active state. The policy never sleeps and never reads a clock itself;
// the caller passes the current time, so the rules are testable without
// sockets or pipes.
//
// Thread ownership: a ConnectPolicy belongs to the one exchange that
// created it and is used only by the thread driving that exchange.
#pragma once

#include <cstdint>

#include "client.h"

namespace sipc {

// What a failed connect attempt means, whatever the platform.
enum class ConnectFailure {
  kNotFound,     // nothing at the path/name (ENOENT, ERROR_FILE_NOT_FOUND)
  kBusy,         // a server is there but takes no one now (ECONNREFUSED,
                 // ETIMEDOUT, ERROR_PIPE_BUSY)
  kBacklogFull,  // a live server whose listen backlog is full (EAGAIN on a
                 // non-blocking Unix-socket connect): Git's blocking
                 // connect() would simply wait
  kOther,        // anything else: give up at once
};

struct ConnectDecision {
  enum class Action {
    kRetry,    // try again at retry_at_ms
    kGiveUp,   // fail the connect with `state`
    kTimeout,  // the exchange's own deadline (timeout_ms) has passed
  };
  Action action = Action::kGiveUp;
  int64_t retry_at_ms = 0;                      // with kRetry
  ActiveState state = ActiveState::kOtherError;  // with kGiveUp
};

class ConnectPolicy {
 public:
  // `start_ms`: when the first attempt was made. The connect window is
  // options.connect_timeout_ms from then; the exchange deadline is
  // options.timeout_ms from then (none when negative).
  // `not_found_out_of_time`: the state when waiting for a missing path
  // runs out of time. Git's POSIX client says not-listening there, its
  // Windows client path-not-found.
  ConnectPolicy(const ClientOptions& options, int64_t start_ms,
                ActiveState not_found_out_of_time = ActiveState::kNotListening);

  // The decision after a failed attempt at time `now_ms`.
  ConnectDecision OnFailure(ConnectFailure failure, int64_t now_ms);

  int64_t connect_deadline_ms() const { return connect_deadline_ms_; }
  // -1 when the exchange has no deadline of its own.
  int64_t exchange_deadline_ms() const { return exchange_deadline_ms_; }

 private:
  ConnectDecision RetryWithin(int64_t now_ms, int64_t delay_ms, int64_t window_end_ms,
                              ActiveState state_when_out_of_time) const;

  bool wait_if_busy_;
  bool wait_if_not_found_;
  ActiveState not_found_out_of_time_;
  int64_t connect_deadline_ms_;
  int64_t exchange_deadline_ms_;
  int backlog_retries_ = 0;
};

// Back-off between attempts while the backlog is full: 1, 2, 4, 8 ms,
// then this.
constexpr int64_t kMaxBacklogRetryMs = 10;

}  // namespace sipc
