// Server tests: accepting on the application's thread while it is idle
// (Server::CallerListener / CallerIdle / AcceptOnCaller,
// docs/design.md#accepting-on-the-js-thread). A test thread plays the JS
// thread's event loop: before each wait it calls CallerIdle, it watches the
// server's copy of the listener with poll(), accepts with AcceptOnCaller
// and answers the complete requests itself; it can be made busy (it then
// calls nothing at all, as a JS thread blocked in a handler).
// Helpers: server_test_util.h.
#include "server_test_util.h"

namespace {

class CallerLoop {
 public:
  explicit CallerLoop(Server* server) : server_(server), fd_(server->CallerListener()) {
    if (fd_ >= 0) thread_ = std::thread([this] { Run(); });
  }
  ~CallerLoop() {
    exit_.store(true);
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) close(fd_);
  }
  int fd() const { return fd_; }
  void SetBusy(bool busy) { busy_.store(busy); }
  size_t served() const { return served_.load(); }
  bool left() const { return left_.load(); }
  bool WaitServed(size_t n, int64_t ms = kWaitMs) {
    int64_t give_up = NowMs() + ms;
    while (served() < n && NowMs() < give_up) SleepMs(2);
    return served() >= n;
  }
  // Waits until the caller's loop holds the listener (a turn said kWatch).
  bool WaitWatching(int64_t ms = kWaitMs) {
    int64_t give_up = NowMs() + ms;
    while (!watching_.load() && NowMs() < give_up) SleepMs(2);
    return watching_.load();
  }

 private:
  void Run() {
    while (!exit_.load() && !left_.load()) {
      if (busy_.load()) {
        watching_.store(false);
        SleepMs(1);  // blocked in a handler: no turn, no accept
        continue;
      }
      ListenerTurn turn = server_->CallerIdle();
      if (turn == ListenerTurn::kLeave) {
        left_.store(true);
        return;
      }
      watching_.store(turn == ListenerTurn::kWatch);
      if (turn != ListenerTurn::kWatch) {
        SleepMs(1);
        continue;
      }
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 5) != 1) continue;
      std::vector<CallerRequest> requests;
      turn = server_->AcceptOnCaller(4, &requests);
      for (CallerRequest& r : requests) {
        std::string text = Str(r.request);
        if (text == "ping") text = "pong";
        served_.fetch_add(1);  // before the client can see the answer
        End(server_, r.id, reinterpret_cast<const uint8_t*>(text.data()), text.size(), false);
      }
      if (turn == ListenerTurn::kLeave) left_.store(true);
    }
  }

  Server* server_;
  int fd_;
  std::thread thread_;
  std::atomic<bool> exit_{false};
  std::atomic<bool> busy_{false};
  std::atomic<bool> left_{false};
  std::atomic<bool> watching_{false};
  std::atomic<size_t> served_{0};
};

// Sends `n` pings from `threads` threads; returns how many got "pong".
size_t PingAll(const std::string& path, int threads, int per_thread) {
  std::atomic<size_t> ok{0};
  std::vector<std::thread> senders;
  for (int t = 0; t < threads; t++) {
    senders.emplace_back([&] {
      for (int i = 0; i < per_thread; i++) {
        std::string response;
        if (Send(path, "ping", &response).status.ok() && response == "pong") ok.fetch_add(1);
      }
    });
  }
  for (std::thread& t : senders) t.join();
  return ok.load();
}

TEST(caller_accepts_and_answers_requests_that_are_there_at_once) {
  ServerOptions options;
  options.threads = 2;
  Harness h(options);
  REQUIRE(h.start_status.ok());
  CallerLoop caller(h.server.get());
  REQUIRE(caller.fd() >= 0);
  REQUIRE(caller.WaitWatching());
  CHECK_EQ(PingAll(h.path, 4, 50), size_t{200});
  // Every request was answered, by the caller or (a connection whose
  // request was not all there at once, a take-over) by the serving threads.
  CHECK_EQ(caller.served() + h.delegate.requests(), size_t{200});
  CHECK(caller.served() > 0);
  // Counted once the flush went out, which the client may see first.
  int64_t give_up = NowMs() + kWaitMs;
  while (h.server->Stats().requests < 200 && NowMs() < give_up) SleepMs(2);
  CHECK_EQ(h.server->Stats().requests, uint64_t{200});
}

TEST(caller_drops_bad_requests_and_probes_as_the_serving_threads_do) {
  Harness h;
  REQUIRE(h.start_status.ok());
  CallerLoop caller(h.server.get());
  REQUIRE(caller.WaitWatching());
  // A liveness probe: connect, hang up. Closed silently.
  int probe = ConnectRaw(h.path);
  REQUIRE(probe >= 0);
  close(probe);
  // A malformed request, whole in one write: dropped and reported.
  int bad = ConnectRaw(h.path);
  REQUIRE(bad >= 0);
  REQUIRE(SendAll(bad, "zzzz0000"));
  RawRead r = ReadUntilClosed(bad);
  close(bad);
  CHECK(r.eof);
  CHECK(r.bytes.empty());
  CHECK_EQ(h.delegate.WaitClientErrors(1).size(), size_t{1});
  CHECK_EQ(h.delegate.CountClientErrors(LibCode::kProtocol), size_t{1});
  std::string response;
  CHECK(Send(h.path, "ping", &response).status.ok());
  CHECK(response == "pong");
  SleepMs(50);
  CHECK_EQ(h.delegate.client_errors().size(), size_t{1});
}

TEST(a_request_not_all_there_goes_to_a_serving_thread_which_polices_it) {
  ServerOptions options;
  options.request_timeout_ms = 400;
  Harness h(options);
  REQUIRE(h.start_status.ok());
  CallerLoop caller(h.server.get());
  REQUIRE(caller.WaitWatching());
  // Half a request: the caller accepts it, finds it incomplete and hands it
  // over; the rest arrives later and the serving thread completes it.
  int half = ConnectRaw(h.path);
  REQUIRE(half >= 0);
  std::string framed = Frame("slow");  // with its flush
  REQUIRE(SendAll(half, framed.substr(0, 5)));
  // A silent client: accepted by the caller, dropped by a serving thread
  // at requestTimeoutMs while the caller goes on serving.
  int64_t silent_at = NowMs();
  int silent = ConnectRaw(h.path);
  REQUIRE(silent >= 0);
  SleepMs(100);  // the caller has accepted both by now (not required: the result is the same)
  REQUIRE(SendAll(half, framed.substr(5)));
  RawRead answer = ReadUntilClosed(half);
  close(half);
  CHECK_EQ(answer.bytes, Frame("slow"));
  CHECK_EQ(h.delegate.requests(), size_t{1});  // through OnRequest: a serving thread read it
  RawRead dropped = ReadUntilClosed(silent);
  int64_t dropped_after = NowMs() - silent_at;
  close(silent);
  CHECK(dropped.eof);
  CHECK(dropped_after >= 350);
  CHECK(dropped_after < 5000);
  CHECK_EQ(h.delegate.WaitClientErrors(1).size(), size_t{1});
  CHECK_EQ(h.delegate.CountClientErrors(LibCode::kRequestTimeout), size_t{1});
}

TEST(a_busy_caller_loses_the_listener_to_the_serving_threads_and_takes_it_back) {
  ServerOptions options;
  options.threads = 2;
  options.request_timeout_ms = 500;
  Harness h(options);
  REQUIRE(h.start_status.ok());
  CallerLoop caller(h.server.get());
  REQUIRE(caller.WaitWatching());
  caller.SetBusy(true);
  SleepMs(20);
  size_t served_before = caller.served();
  // The caller does nothing now: the serving threads accept, read, answer
  // (through the delegate) and police.
  int64_t silent_at = NowMs();
  int silent = ConnectRaw(h.path);
  REQUIRE(silent >= 0);
  REQUIRE(PingAll(h.path, 1, 1) == 1);  // else the rest would wait in the backlog for nothing
  CHECK_EQ(PingAll(h.path, 4, 25), size_t{100});
  CHECK_EQ(caller.served(), served_before);
  CHECK_EQ(h.delegate.requests(), size_t{101});
  RawRead dropped = ReadUntilClosed(silent);
  int64_t dropped_after = NowMs() - silent_at;
  close(silent);
  CHECK(dropped.eof);
  CHECK(dropped_after >= 450);
  CHECK(dropped_after < 5000);
  CHECK_EQ(h.delegate.WaitClientErrors(1).size(), size_t{1});
  CHECK_EQ(h.delegate.CountClientErrors(LibCode::kRequestTimeout), size_t{1});
  // Idle again: the listener comes back to the caller.
  caller.SetBusy(false);
  REQUIRE(caller.WaitWatching());
  CHECK_EQ(PingAll(h.path, 2, 25), size_t{50});
  CHECK(caller.served() > served_before);
  CHECK_EQ(caller.served() + h.delegate.requests(), size_t{151});
}

TEST(a_stop_needs_nothing_from_an_idle_caller_and_tells_it_to_leave) {
  Harness h;
  REQUIRE(h.start_status.ok());
  {
    CallerLoop caller(h.server.get());
    REQUIRE(caller.WaitWatching());
    std::string response;
    CHECK(Send(h.path, "ping", &response).status.ok());
    h.server->Stop(0);
    CHECK(h.delegate.WaitStopped());
    int64_t give_up = NowMs() + kWaitMs;
    while (!caller.left() && NowMs() < give_up) SleepMs(2);
    CHECK(caller.left());
    CHECK_EQ(h.server->CallerIdle() == ListenerTurn::kLeave, true);
    CHECK_EQ(h.server->CallerListener(), -1);
  }
}

TEST(with_allow_peer_the_caller_is_offered_no_listener) {
  ServerOptions options;
  options.check_peer = true;
  Harness h(options);
  REQUIRE(h.start_status.ok());
  CHECK_EQ(h.server->CallerListener(), -1);
}

}  // namespace
