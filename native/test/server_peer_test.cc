// Server tests: allowPeer: allowed and refused peers, liveness probes, and the request deadline around the peer check.
// Helpers: server_test_util.h.
#include "server_test_util.h"

namespace {

// ---- access control ----

TEST(allow_peer_true_and_false) {
  ServerOptions options;
  options.check_peer = true;
  Harness h(options);
  REQUIRE(h.start_status.ok());
  std::string response;
  CHECK(Send(h.path, "ping", &response).status.ok());
  CHECK_EQ(response, std::string("pong"));
  CHECK_EQ(h.delegate.last_peer().pid, static_cast<int64_t>(getpid()));
  h.delegate.SetPeerPolicy(TestDelegate::PeerPolicy::kRefuse);
  size_t before = h.delegate.requests();
  ClientResult r = Send(h.path, "ping", &response);
  CHECK(!r.status.ok());
  CHECK_EQ(h.delegate.requests(), before);
}

TEST(peer_check_pending_when_client_hangs_up_does_not_spin) {
  // A connection waiting for AllowPeer whose client hangs up must not make
  // the I/O thread busy-loop on the hang-up.
  ServerOptions options;
  options.check_peer = true;
  options.request_timeout_ms = 0;
  Harness h(options);
  REQUIRE(h.start_status.ok());
  h.delegate.SetPeerPolicy(TestDelegate::PeerPolicy::kNeverAnswer);
  for (int i = 0; i < 3; i++) {
    int fd = ConnectRaw(h.path);
    SendAll(fd, "0");  // a byte, so that the application is asked
    close(fd);
  }
  CHECK(h.delegate.WaitPeerChecks(3));
  SleepMs(100);
  double cpu0 = CpuSeconds();
  SleepMs(1000);
  double used = CpuSeconds() - cpu0;
  std::fprintf(stderr, "    cpu while idle with 3 hung-up pending peers: %.3f s\n", used);
  CHECK(used < 0.5);
}

TEST(peer_refused_around_the_request_deadline) {
  // AllowPeer(false) from another thread racing the request timeout of
  // the same connection (ASan: no use after free).
  ServerOptions options;
  options.check_peer = true;
  options.request_timeout_ms = 20;
  Harness h(options);
  REQUIRE(h.start_status.ok());
  h.delegate.SetPeerPolicy(TestDelegate::PeerPolicy::kRefuseLate, 20);
  Fds fds;
  for (int round = 0; round < 10; round++) {
    for (int i = 0; i < 20; i++) {
      int fd = ConnectRaw(h.path);
      // Half of them send a byte (asked, then refused around the deadline,
      // which restarts at the answer); the others stay silent (dropped by
      // the deadline without the application being asked).
      if (i % 2 == 0) SendAll(fd, "0");
      fds.add(fd);
    }
    SleepMs(30);
  }
  CHECK(h.delegate.WaitPeerChecks(100));
  SleepMs(200);
  for (int fd : fds.fds) {
    RawRead r = ReadUntilClosed(fd, 5000);
    CHECK(r.eof);
  }
}

TEST(liveness_probe_never_reaches_allow_peer) {
  // Git's clients probe with a connection that sends nothing: the
  // application is not asked about it, and it is not an error.
  ServerOptions options;
  options.check_peer = true;
  Harness h(options);
  REQUIRE(h.start_status.ok());
  h.delegate.SetPeerPolicy(TestDelegate::PeerPolicy::kAllow);
  for (int i = 0; i < 5; i++) close(ConnectRaw(h.path));
  std::string response;
  ClientResult r = Send(h.path, "ping", &response);
  CHECK(r.status.ok());
  CHECK_EQ(response, std::string("pong"));
  CHECK(h.delegate.WaitPeerChecks(1));
  SleepMs(100);
  std::fprintf(stderr, "    peer checks after 5 probes and 1 request: %zu\n", h.delegate.peer_checks());
  CHECK_EQ(h.delegate.peer_checks(), size_t{1});
  CHECK(h.delegate.client_errors().empty());
}

TEST(request_deadline_waits_for_the_allow_peer_answer) {
  // The application takes three times the request timeout to decide; the
  // client's request, sitting in the socket all along, is still served.
  ServerOptions options;
  options.check_peer = true;
  options.request_timeout_ms = 100;
  Harness h(options);
  REQUIRE(h.start_status.ok());
  h.delegate.SetPeerPolicy(TestDelegate::PeerPolicy::kAllowLate, 300);
  std::string response;
  ClientResult r = Send(h.path, "ping", &response);
  CHECK(r.status.ok());
  CHECK_EQ(response, std::string("pong"));
  CHECK_EQ(h.delegate.CountClientErrors(LibCode::kRequestTimeout), size_t{0});
}

}  // namespace
