// Where an asynchronous exchange waits for its response: on the calling
// (JS) thread's side or on the I/O thread (docs/design.md#client). The
// rules are written here once; the transports only apply them.
//
// The calling thread finishes an exchange only when doing so costs it
// bounded, non-blocking calls and nothing has to wait: the response of a
// small exchange, read when its socket says it is there. Everything that
// may have to wait while the calling thread is busy belongs to the I/O
// thread, which takes an exchange over from the calling thread's side and
// never gives it back.
//
// Pure C++: no OS calls, no clock (callers pass `now`), no locking.
#pragma once

#include <cstdint>

#include "exchange.h"

namespace sipc {

struct CallerSide {
  // How long an exchange may wait on the calling thread's side before the
  // I/O thread takes it over: long enough for a server's answer to a small
  // request, short against any server's write stall limit, so a response
  // that arrives while the calling thread is busy is still read in time.
  static constexpr int64_t kWaitMs = 5;
  // The I/O thread keeps looking at the calling thread's side for this
  // long after it was last seen empty, so that a run of exchanges does not
  // wake it for each one.
  static constexpr int64_t kWatchAfterEmptyMs = 1000;

  // Right after the calling thread's first step: connected, the whole
  // request sent, and not a stream (a stream's flow control and chunks
  // are the I/O thread's). A connect still in progress or retried, a
  // request the kernel did not take at once, a connect-only exchange:
  // the I/O thread's from the start.
  static bool WaitsOnCaller(const ClientExchange& exchange) {
    return !exchange.stream() && exchange.phase() == ClientExchange::Phase::kReceive;
  }

  // When the I/O thread takes over an exchange still waiting on the
  // calling thread's side (waiting since `since`): after kWaitMs, or at
  // its deadline if that comes first, so that timeoutMs fires on time
  // whatever the calling thread is doing.
  static int64_t HandOverAt(const ClientExchange& exchange, int64_t since) {
    int64_t at = since + kWaitMs;
    int64_t deadline = exchange.deadline();
    return deadline >= 0 && deadline < at ? deadline : at;
  }

  // After the calling thread stepped an exchange whose socket was ready:
  // one that is not over (a response larger than one bounded step, or
  // arriving in pieces) goes to the I/O thread.
  static bool HandOverAfterStep(const ClientExchange& exchange) { return !exchange.done(); }
};

}  // namespace sipc
