#pragma once

#include <chrono>
#include <cstdint>

namespace sipc {

// A time limit of this many ms is none: the API's 0 (docs/api.md#time-limits)
// reaches the core as this, since a native 0 means "at once" (a stop's
// grace, a single connect attempt).
constexpr uint32_t kNoTimeLimitMs = UINT32_MAX;

// The deadline `limit_ms` after `now`; never (INT64_MAX) for kNoTimeLimitMs.
inline int64_t DeadlineAfter(int64_t now, uint32_t limit_ms) {
  return limit_ms == kNoTimeLimitMs ? INT64_MAX : now + limit_ms;
}

// Monotonic milliseconds, for deadlines.
inline int64_t NowMs() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

}  // namespace sipc
