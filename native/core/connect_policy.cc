#include "connect_policy.h"

#include <algorithm>

#include "clock.h"

namespace sipc {

ConnectPolicy::ConnectPolicy(const ClientOptions& options, int64_t start_ms, ActiveState not_found_out_of_time)
    : wait_if_busy_(options.wait_if_busy),
      wait_if_not_found_(options.wait_if_not_found),
      not_found_out_of_time_(not_found_out_of_time),
      connect_deadline_ms_(DeadlineAfter(start_ms, options.connect_timeout_ms)),
      exchange_deadline_ms_(options.timeout_ms >= 0 ? start_ms + options.timeout_ms : -1) {}

ConnectDecision ConnectPolicy::OnFailure(ConnectFailure failure, int64_t now_ms) {
  if (exchange_deadline_ms_ >= 0 && now_ms >= exchange_deadline_ms_) {
    return ConnectDecision{ConnectDecision::Action::kTimeout, 0, ActiveState::kOtherError};
  }
  switch (failure) {
    case ConnectFailure::kNotFound:
      if (!wait_if_not_found_) return ConnectDecision{ConnectDecision::Action::kGiveUp, 0, ActiveState::kPathNotFound};
      return RetryWithin(now_ms, kConnectRetryMs, connect_deadline_ms_, not_found_out_of_time_);
    case ConnectFailure::kBusy:
      if (!wait_if_busy_) return ConnectDecision{ConnectDecision::Action::kGiveUp, 0, ActiveState::kNotListening};
      return RetryWithin(now_ms, kConnectRetryMs, connect_deadline_ms_, ActiveState::kNotListening);
    case ConnectFailure::kBacklogFull: {
      // A live server: wait as long as the exchange may last (its own
      // deadline, or the caller's signal), not only the connect window.
      int64_t delay = std::min<int64_t>(int64_t{1} << std::min(backlog_retries_, 4), kMaxBacklogRetryMs);
      backlog_retries_++;
      int64_t at = now_ms + delay;
      if (exchange_deadline_ms_ >= 0) at = std::min(at, exchange_deadline_ms_);
      return ConnectDecision{ConnectDecision::Action::kRetry, at, ActiveState::kListening};
    }
    case ConnectFailure::kOther:
      break;
  }
  return ConnectDecision{ConnectDecision::Action::kGiveUp, 0, ActiveState::kOtherError};
}

// Retry every `delay_ms` until `window_end_ms` (one last attempt at the
// window's end), then give up with `state_when_out_of_time`. A retry never
// lies beyond the exchange deadline.
ConnectDecision ConnectPolicy::RetryWithin(int64_t now_ms, int64_t delay_ms, int64_t window_end_ms,
                                           ActiveState state_when_out_of_time) const {
  if (now_ms >= window_end_ms) return ConnectDecision{ConnectDecision::Action::kGiveUp, 0, state_when_out_of_time};
  int64_t at = std::min(now_ms + delay_ms, window_end_ms);
  if (exchange_deadline_ms_ >= 0) at = std::min(at, exchange_deadline_ms_);
  return ConnectDecision{ConnectDecision::Action::kRetry, at, ActiveState::kListening};
}

}  // namespace sipc
