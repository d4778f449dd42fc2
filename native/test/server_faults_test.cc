// Server tests: running out of descriptors, clients that leave mid-response or stop reading.
// Helpers: server_test_util.h.
#include "server_test_util.h"

namespace {

// accept() failing with EMFILE leaves the connection in the backlog and
// the listening socket readable: no serving thread may busy-loop on it.
// With several threads the listener is an exclusive (shared) registration,
// which the pause must handle too.
void OutOfDescriptorsDoesNotSpinAndRecovers(int threads) {
  ServerOptions options;
  options.threads = threads;
  Harness h(options);
  REQUIRE(h.start_status.ok());
  rlimit old;
  REQUIRE(getrlimit(RLIMIT_NOFILE, &old) == 0);
  Fds fds;
  int first = ConnectRaw(h.path);  // make sure everything is warm
  REQUIRE(first >= 0);
  fds.add(first);
  SleepMs(50);
  // Our sockets exist before the limit drops; connecting them takes no
  // new descriptor, so only the server's accept() runs out.
  std::vector<int> pending;
  for (int i = 0; i < 20; i++) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    fds.add(fd);
    pending.push_back(fd);
  }
  // The limit applies to descriptor numbers, and accept() takes the
  // lowest free one: fill every free number below the limit, then free
  // exactly two for the server.
  rlimit tight = old;
  tight.rlim_cur = static_cast<rlim_t>(MaxFd() + 3);
  REQUIRE(setrlimit(RLIMIT_NOFILE, &tight) == 0);
  std::vector<int> fillers;
  for (;;) {
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) break;
    fillers.push_back(fd);
  }
  REQUIRE(fillers.size() >= 2);
  for (int i = 0; i < 2; i++) {
    close(fillers.back());
    fillers.pop_back();
  }
  for (int fd : fillers) fds.add(fd);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, h.path.c_str(), sizeof(addr.sun_path) - 1);
  for (int fd : pending) CHECK(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  SleepMs(200);
  double cpu0 = CpuSeconds();
  SleepMs(1000);
  double used = CpuSeconds() - cpu0;
  REQUIRE(setrlimit(RLIMIT_NOFILE, &old) == 0);
  std::fprintf(stderr, "    cpu over 1 s with accept() failing for lack of descriptors: %.3f s\n", used);
  CHECK(used < 0.5);
  for (int fd : fds.fds) close(fd);
  fds.fds.clear();
  std::string response;
  bool ok = false;
  int64_t give_up = NowMs() + kWaitMs;
  while (!ok && NowMs() < give_up) {
    ok = Send(h.path, "ping", &response).status.ok();
    if (!ok) SleepMs(50);
  }
  CHECK(ok);
}

TEST(out_of_descriptors_does_not_spin_and_recovers) { OutOfDescriptorsDoesNotSpinAndRecovers(1); }

TEST(out_of_descriptors_does_not_spin_and_recovers_with_two_threads) { OutOfDescriptorsDoesNotSpinAndRecovers(2); }

// ---- conversations that end early ----

TEST(client_leaving_mid_response_ends_the_conversation_quietly) {
  Harness h;
  REQUIRE(h.start_status.ok());
  int fd = ConnectRaw(h.path);
  REQUIRE(fd >= 0);
  SendAll(fd, Frame("stream"));
  char buf[4096];
  ssize_t n = recv(fd, buf, sizeof(buf), 0);
  CHECK(n > 0);
  close(fd);
  std::map<ConnId, int> lost = h.delegate.WaitLost(1);
  CHECK_EQ(lost.size(), size_t{1});
  CHECK(h.delegate.WaitStreamThreads());
  CHECK(h.delegate.client_errors().empty());
  std::string response;
  CHECK(Send(h.path, "ping", &response).status.ok());
}

TEST(client_that_stops_reading_is_dropped) {
  ServerOptions options;
  options.request_timeout_ms = 300;
  Harness h(options);
  REQUIRE(h.start_status.ok());
  int fd = ConnectRaw(h.path);
  REQUIRE(fd >= 0);
  SendAll(fd, Frame("big:30000000"));  // never read
  std::map<ConnId, int> lost = h.delegate.WaitLost(1);
  REQUIRE(lost.size() == 1);
  CHECK_EQ(lost.begin()->second, static_cast<int>(LibCode::kWriteStalled));
  close(fd);
}

}  // namespace
