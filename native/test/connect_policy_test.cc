// Unit tests of native/core/connect_policy: Git's connect-retry rules
// (docs/protocol.md#connect-loop) as decisions over a simulated clock.
#include <cstdint>

#include "../core/clock.h"
#include "../core/connect_policy.h"
#include "test_util.h"

using sipc::ActiveState;
using sipc::ClientOptions;
using sipc::ConnectDecision;
using sipc::ConnectFailure;
using sipc::ConnectPolicy;
using Action = sipc::ConnectDecision::Action;

namespace {

ClientOptions Options(bool wait_if_busy, bool wait_if_not_found, uint32_t connect_timeout_ms,
                      int64_t timeout_ms = -1) {
  ClientOptions options;
  options.wait_if_busy = wait_if_busy;
  options.wait_if_not_found = wait_if_not_found;
  options.connect_timeout_ms = connect_timeout_ms;
  options.timeout_ms = timeout_ms;
  return options;
}

// Fails every attempt with `failure`, retrying exactly when told, and
// returns the final decision; `attempts` counts the attempts made.
ConnectDecision RunUntilFinal(ConnectPolicy* policy, ConnectFailure failure, int64_t start, int* attempts,
                              int64_t* end_time) {
  int64_t now = start;
  *attempts = 0;
  for (;;) {
    (*attempts)++;
    ConnectDecision d = policy->OnFailure(failure, now);
    if (d.action != Action::kRetry) {
      *end_time = now;
      return d;
    }
    if (d.retry_at_ms <= now) {
      sipc_test::Fail(__FILE__, __LINE__, "a retry must lie in the future");
      *end_time = now;
      return d;
    }
    now = d.retry_at_ms;
    if (*attempts > 1000000) {
      sipc_test::Fail(__FILE__, __LINE__, "never ends");
      *end_time = now;
      return d;
    }
  }
}

}  // namespace

TEST(not_found_without_waiting_gives_up_at_once_with_path_not_found) {
  ConnectPolicy policy(Options(true, false, 1000), 5000);
  ConnectDecision d = policy.OnFailure(ConnectFailure::kNotFound, 5000);
  CHECK(d.action == Action::kGiveUp);
  CHECK(d.state == ActiveState::kPathNotFound);
}

TEST(not_found_with_waiting_retries_every_50_ms_for_the_connect_timeout) {
  ConnectPolicy policy(Options(true, true, 1000), 5000);
  int attempts = 0;
  int64_t end = 0;
  ConnectDecision d = RunUntilFinal(&policy, ConnectFailure::kNotFound, 5000, &attempts, &end);
  CHECK(d.action == Action::kGiveUp);
  // Git's POSIX client: out of time is not-listening.
  CHECK(d.state == ActiveState::kNotListening);
  CHECK_EQ(end, 6000);       // the last attempt is at the window's end
  CHECK_EQ(attempts, 21);    // 0, 50, ..., 1000
}

TEST(not_found_out_of_time_state_is_chosen_by_the_platform) {
  ConnectPolicy policy(Options(true, true, 100), 0, ActiveState::kPathNotFound);
  int attempts = 0;
  int64_t end = 0;
  ConnectDecision d = RunUntilFinal(&policy, ConnectFailure::kNotFound, 0, &attempts, &end);
  CHECK(d.action == Action::kGiveUp);
  CHECK(d.state == ActiveState::kPathNotFound);
}

TEST(busy_without_waiting_gives_up_with_not_listening) {
  ConnectPolicy policy(Options(false, true, 1000), 0);
  ConnectDecision d = policy.OnFailure(ConnectFailure::kBusy, 0);
  CHECK(d.action == Action::kGiveUp);
  CHECK(d.state == ActiveState::kNotListening);
}

TEST(busy_with_waiting_retries_within_the_connect_timeout) {
  ConnectPolicy policy(Options(true, false, 1000), 100);
  ConnectDecision first = policy.OnFailure(ConnectFailure::kBusy, 100);
  CHECK(first.action == Action::kRetry);
  CHECK_EQ(first.retry_at_ms, 150);
  // A late attempt: the retry is clipped to the window's end.
  ConnectDecision late = policy.OnFailure(ConnectFailure::kBusy, 1080);
  CHECK(late.action == Action::kRetry);
  CHECK_EQ(late.retry_at_ms, 1100);
  ConnectDecision over = policy.OnFailure(ConnectFailure::kBusy, 1100);
  CHECK(over.action == Action::kGiveUp);
  CHECK(over.state == ActiveState::kNotListening);
}

TEST(other_failures_give_up_at_once_with_other_error) {
  ConnectPolicy policy(Options(true, true, 1000), 0);
  ConnectDecision d = policy.OnFailure(ConnectFailure::kOther, 0);
  CHECK(d.action == Action::kGiveUp);
  CHECK(d.state == ActiveState::kOtherError);
}

TEST(backlog_full_backs_off_to_10_ms_and_outlasts_the_connect_timeout) {
  ConnectPolicy policy(Options(true, false, 1000), 0);
  int64_t now = 0;
  const int64_t expected_delays[] = {1, 2, 4, 8, 10, 10, 10};
  for (int64_t delay : expected_delays) {
    ConnectDecision d = policy.OnFailure(ConnectFailure::kBacklogFull, now);
    REQUIRE(d.action == Action::kRetry);
    CHECK_EQ(d.retry_at_ms - now, delay);
    now = d.retry_at_ms;
  }
  // Far beyond connect_timeout_ms, with no exchange deadline: still waiting,
  // as Git's blocking connect() would.
  ConnectDecision d = policy.OnFailure(ConnectFailure::kBacklogFull, 60000);
  CHECK(d.action == Action::kRetry);
  CHECK_EQ(d.retry_at_ms, 60010);
}

TEST(backlog_full_waits_even_when_wait_if_busy_is_off) {
  ConnectPolicy policy(Options(false, false, 1000), 0);
  ConnectDecision d = policy.OnFailure(ConnectFailure::kBacklogFull, 2000);
  CHECK(d.action == Action::kRetry);
}

TEST(backlog_full_ends_at_the_exchange_deadline_with_a_timeout) {
  ConnectPolicy policy(Options(true, false, 1000, 3000), 1000);
  CHECK_EQ(policy.exchange_deadline_ms(), 4000);
  int attempts = 0;
  int64_t end = 0;
  ConnectDecision d = RunUntilFinal(&policy, ConnectFailure::kBacklogFull, 1000, &attempts, &end);
  CHECK(d.action == Action::kTimeout);
  CHECK_EQ(end, 4000);  // the last retry is clipped to the deadline
}

TEST(a_retry_never_lies_beyond_the_exchange_deadline) {
  ConnectPolicy policy(Options(true, true, 1000, 120), 0);
  ConnectDecision d = policy.OnFailure(ConnectFailure::kNotFound, 100);
  CHECK(d.action == Action::kRetry);
  CHECK_EQ(d.retry_at_ms, 120);
  ConnectDecision at_deadline = policy.OnFailure(ConnectFailure::kNotFound, 120);
  CHECK(at_deadline.action == Action::kTimeout);
}

TEST(no_exchange_deadline_when_timeout_is_negative) {
  ConnectPolicy policy(Options(true, true, 1000, -1), 7);
  CHECK_EQ(policy.exchange_deadline_ms(), -1);
  CHECK_EQ(policy.connect_deadline_ms(), 1007);
}

TEST(zero_connect_timeout_means_one_attempt) {
  ConnectPolicy policy(Options(true, true, 0), 0);
  CHECK(policy.OnFailure(ConnectFailure::kBusy, 0).action == Action::kGiveUp);
  CHECK(policy.OnFailure(ConnectFailure::kNotFound, 0).action == Action::kGiveUp);
}

TEST(no_time_limit_keeps_retrying_until_the_exchange_deadline) {
  // connectTimeoutMs: 0 in the API: no connect window of its own.
  ConnectPolicy policy(Options(true, true, sipc::kNoTimeLimitMs), 0);
  CHECK_EQ(policy.connect_deadline_ms(), INT64_MAX);
  ConnectDecision busy = policy.OnFailure(ConnectFailure::kBusy, int64_t{40} * 24 * 3600 * 1000);
  CHECK(busy.action == Action::kRetry);
  CHECK_EQ(busy.retry_at_ms, int64_t{40} * 24 * 3600 * 1000 + sipc::kConnectRetryMs);
  CHECK(policy.OnFailure(ConnectFailure::kNotFound, 5000).action == Action::kRetry);
  // The exchange's own deadline still ends it.
  ConnectPolicy bounded(Options(true, true, sipc::kNoTimeLimitMs, 3000), 0);
  int attempts = 0;
  int64_t end = 0;
  CHECK(RunUntilFinal(&bounded, ConnectFailure::kBusy, 0, &attempts, &end).action == Action::kTimeout);
  CHECK_EQ(end, 3000);
}

TEST_MAIN()
