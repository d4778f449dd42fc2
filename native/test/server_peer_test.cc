// Server tests: allowPeer: allowed and refused peers, liveness probes, and the request deadline around the peer check.
// Helpers: server_test_util.h.
#include <grp.h>

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

// ---- credentials read only when used ----

TEST(peer_credentials_read_only_when_asked) {
  // Without allowPeer no request costs a getsockopt(SO_PEERCRED): the
  // peer comes deferred and PeerOf reads it, once, while the connection is
  // open (its client done sending); once closed there is nothing to read.
  Harness h;
  REQUIRE(h.start_status.ok());
  std::string response;
  for (int i = 0; i < 20; i++) CHECK(Send(h.path, "ping", &response).status.ok());
  CHECK_EQ(h.server->Stats().peer_lookups, uint64_t{0});
  CHECK(h.delegate.last_peer().deferred);
  CHECK_EQ(h.delegate.last_peer().pid, int64_t{-1});

  int fd = ConnectRaw(h.path);
  REQUIRE(SendAll(fd, Frame("hang")));
  REQUIRE(h.delegate.WaitHanging(1));
  ConnId id = h.delegate.hanging()[0];
  shutdown(fd, SHUT_WR);  // the client is done sending; the socket stays open
  PeerInfo peer;
  CHECK(h.server->PeerOf(id, &peer));
  CHECK(!peer.deferred);
  CHECK_EQ(peer.pid, static_cast<int64_t>(getpid()));
  CHECK_EQ(peer.uid, static_cast<int64_t>(geteuid()));
  CHECK_EQ(peer.gid, static_cast<int64_t>(getegid()));
  CHECK(h.server->PeerOf(id, &peer));  // read once, then kept
  CHECK_EQ(h.server->Stats().peer_lookups, uint64_t{1});
  close(fd);  // the client leaves; the watched conversation is lost, closed
  CHECK_EQ(h.delegate.WaitLost(1).size(), size_t{1});
  CHECK(!h.server->PeerOf(id, &peer));
  CHECK_EQ(h.server->Stats().peer_lookups, uint64_t{1});
}

TEST(peer_credentials_read_at_accept_with_allow_peer) {
  ServerOptions options;
  options.check_peer = true;
  Harness h(options);
  REQUIRE(h.start_status.ok());
  std::string response;
  for (int i = 0; i < 3; i++) CHECK(Send(h.path, "ping", &response).status.ok());
  CHECK_EQ(h.server->Stats().peer_lookups, uint64_t{3});
  CHECK(!h.delegate.last_peer().deferred);
  CHECK_EQ(h.delegate.last_peer().uid, static_cast<int64_t>(geteuid()));
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

// ---- refused and undecided peers (docs/security.md#refused-and-undecided-peers) ----

TEST(silent_peer_is_asked_without_a_byte) {
  // A refused peer that says nothing is closed once asked, after
  // kSilentPeerCheckMs (100 ms), long before its request deadline. The
  // bound leaves a loaded machine 30 times that, and still sees a wait of
  // seconds.
  ServerOptions options;
  options.check_peer = true;
  options.request_timeout_ms = 30000;
  Harness h(options);
  REQUIRE(h.start_status.ok());
  h.delegate.SetPeerPolicy(TestDelegate::PeerPolicy::kRefuse);
  int fd = ConnectRaw(h.path);
  int64_t start = NowMs();
  RawRead r = ReadUntilClosed(fd, 10000);
  CHECK(r.eof);
  CHECK(NowMs() - start < 3000);
  CHECK_EQ(h.delegate.peer_checks(), size_t{1});
  close(fd);
  // An allowed silent peer is read on, and served when it speaks.
  h.delegate.SetPeerPolicy(TestDelegate::PeerPolicy::kAllow);
  fd = ConnectRaw(h.path);
  CHECK(h.delegate.WaitPeerChecks(2));
  REQUIRE(SendAll(fd, Frame("ping")));
  r = ReadUntilClosed(fd, 10000);
  CHECK(r.bytes.find("pong") != std::string::npos);
  close(fd);
}

// Another user's undecided connections: at most a quarter of
// maxConnections; the server's own user is still served. Needs root to
// run the other user's side as uid 65534 (a child process).
TEST(undecided_connections_of_another_user_are_capped) {
  if (geteuid() != 0) {
    std::fprintf(stderr, "    SKIPPED: needs root to connect as uid 65534\n");
    return;
  }
  ServerOptions options;
  options.check_peer = true;
  options.max_connections = 40;  // a share of 10
  options.socket_mode = 0666;
  Harness h(options);
  REQUIRE(h.start_status.ok());
  h.delegate.SetPeerPolicy(TestDelegate::PeerPolicy::kAllowOwnUserOnly);
  REQUIRE(chmod(h.dir.c_str(), 0755) == 0);  // the other user may reach the socket
  int ready[2];
  REQUIRE(pipe(ready) == 0);
  pid_t child = fork();
  if (child == 0) {
    close(ready[0]);
    if (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0) _exit(2);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, h.path.c_str(), sizeof(addr.sun_path) - 1);
    for (int i = 0; i < 60; i++) {
      int fd = socket(AF_UNIX, SOCK_STREAM, 0);
      if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
        // The server may have closed it at once (over the share).
        if (send(fd, "0", 1, MSG_NOSIGNAL) < 0) {
        }
      }
    }
    if (write(ready[1], "r", 1) < 0) _exit(3);
    pause();
    _exit(0);
  }
  close(ready[1]);
  char byte;
  bool child_ready = read(ready[0], &byte, 1) == 1;
  close(ready[0]);
  if (!child_ready) {
    int status = 0;
    waitpid(child, &status, 0);
    std::fprintf(stderr, "    the uid 65534 child ended early: status %d\n", status);
  }
  CHECK(child_ready);
  // 10 held, 50 refused at once.
  CHECK(h.delegate.WaitPeerChecks(10));
  std::vector<int> errors = h.delegate.WaitClientErrors(50);
  CHECK_EQ(h.delegate.CountClientErrors(LibCode::kTooManyConnections), size_t{50});
  std::string response;
  for (int i = 0; i < 20; i++) CHECK(Send(h.path, "ping", &response).status.ok() && response == "pong");
  kill(child, SIGKILL);
  int status;
  waitpid(child, &status, 0);
}

// ---- memory of incomplete requests (docs/security.md#memory) ----

TEST(incomplete_requests_share_a_memory_budget) {
  ServerOptions options;
  options.max_buffered_request_bytes = 1 << 20;
  Harness h(options);
  REQUIRE(h.start_status.ok());
  // Four clients, one after the other, each 384 KiB into a request that
  // never ends: two fit in 1 MiB, the third and fourth are dropped.
  std::string part;
  for (int i = 0; i < 6; i++) part += Frame(std::string(65516, 'x')).substr(0, 65520);
  Fds fds;
  for (int i = 0; i < 4; i++) {
    uint64_t before = h.server->Stats().bytes_in;
    size_t errors_before = h.delegate.client_errors().size();
    int fd = ConnectRaw(h.path);
    bool sent = SendAll(fd, part);  // a dropped client may see EPIPE
    CHECK(sent || i >= 2);
    fds.add(fd);
    int64_t deadline = NowMs() + kWaitMs;
    // The first two: until all their bytes are read; the others: until
    // they are dropped (their bytes may all be counted in before the drop).
    while (NowMs() < deadline && h.delegate.client_errors().size() == errors_before &&
           (i >= 2 || h.server->Stats().bytes_in < before + part.size())) {
      SleepMs(5);
    }
    CHECK_EQ(h.delegate.CountClientErrors(LibCode::kBufferFull), size_t{i < 2 ? 0u : i - 1u});
  }
  // The first two are still being read: no end of stream for them.
  for (int i = 0; i < 2; i++) {
    pollfd p{fds.fds[static_cast<size_t>(i)], POLLIN, 0};
    CHECK_EQ(poll(&p, 1, 0), 0);
  }
  // A small request is served meanwhile.
  std::string response;
  CHECK(Send(h.path, "ping", &response).status.ok() && response == "pong");
  CHECK_EQ(h.delegate.CountClientErrors(LibCode::kBufferFull), size_t{2});
}

TEST(handed_over_and_dropped_requests_give_back_their_memory_budget) {
  // What a request held counts no more once it is handed to the
  // application, or once its connection is closed: the budget bounds the
  // requests still being read, not what the application holds or what was
  // ever read.
  ServerOptions options;
  options.max_buffered_request_bytes = 1 << 20;
  Harness h(options);
  REQUIRE(h.start_status.ok());
  // Four whole requests of 600 KiB (each arrives in several reads, so it
  // is charged while read), from clients that never read their echo: the
  // conversations stay open, their requests in the application's hands.
  std::string big(600 * 1024, 'b');
  std::string framed = Frame(big);
  Fds readers;
  for (int i = 0; i < 4; i++) {
    size_t before = h.delegate.requests();
    int fd = ConnectRaw(h.path);
    readers.add(fd);
    CHECK(SendAll(fd, framed));  // a dropped client may see EPIPE
    int64_t deadline = NowMs() + kWaitMs;
    while (NowMs() < deadline && h.delegate.requests() == before && h.delegate.client_errors().empty()) SleepMs(5);
  }
  CHECK_EQ(h.delegate.requests(), size_t{4});
  CHECK_EQ(h.delegate.CountClientErrors(LibCode::kBufferFull), size_t{0});
  // Two clients hold 768 KiB of requests that never end, then hang up.
  std::string part;
  for (int i = 0; i < 6; i++) part += Frame(std::string(65516, 'x')).substr(0, 65520);
  std::vector<int> fds;
  for (int i = 0; i < 2; i++) {
    uint64_t before = h.server->Stats().bytes_in;
    int fd = ConnectRaw(h.path);
    CHECK(SendAll(fd, part));
    fds.push_back(fd);
    int64_t deadline = NowMs() + kWaitMs;
    while (NowMs() < deadline && h.server->Stats().bytes_in < before + part.size() && h.delegate.client_errors().empty()) {
      SleepMs(5);
    }
  }
  for (int fd : fds) close(fd);
  h.delegate.WaitClientErrors(2);
  CHECK_EQ(h.delegate.CountClientErrors(LibCode::kIncompleteRequest), size_t{2});
  // Their 768 KiB are free again: another 600 KiB request fits.
  std::string response;
  CHECK(Send(h.path, big, &response).status.ok() && response == big);
  CHECK_EQ(h.delegate.CountClientErrors(LibCode::kBufferFull), size_t{0});
}

}  // namespace
