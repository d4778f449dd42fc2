// Tests of the real POSIX server (sipc::StartServer) and clients
// (SendCommandSync, CreateAsyncClient), without Node: a small C++
// ServerDelegate answers requests from a thread of its own, the way the
// N-API layer does from the JS thread. Built under ASan+UBSan and TSan.
//
// Requests understood by the test delegate:
//   ping          -> pong
//   big:N         -> N bytes ('a' + i % 26) in 10000-byte writes, then end
//   stream        -> 64 KiB writes every millisecond until the client leaves
//   hang          -> never answered
//   abort         -> Abort(): the client must see an incomplete response
//   quit          -> empty response, then the server shuts down
//   zero-token    -> an empty write with a token, then "done"
//   anything else -> echoed back
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <dirent.h>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "../core/client.h"
#include "../core/clock.h"
#include "../core/pkt_line.h"
#include "../core/server.h"
#include "test_util.h"

using namespace sipc;

namespace {

// The application's two ways to answer, through the one Reply() entry point.
ReplyOutcome Write(Server* server, ConnId id, const uint8_t* data, size_t len, uint64_t token) {
  ReplyChunk chunk;
  chunk.data = data;
  chunk.len = len;
  chunk.token = token;
  return server->Reply(id, chunk);
}
ReplyOutcome End(Server* server, ConnId id, const uint8_t* data, size_t len, bool quit) {
  ReplyChunk chunk;
  chunk.data = data;
  chunk.len = len;
  chunk.end = true;
  chunk.quit = quit;
  return server->Reply(id, chunk);
}

// Timeouts in this file are generous (machines are busy); they bound a
// test that would otherwise hang, they never measure speed.
constexpr int64_t kWaitMs = 20000;

void SleepMs(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

std::vector<uint8_t> Bytes(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }
std::string Str(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }
std::string Str(const ByteBuffer& b) { return std::string(reinterpret_cast<const char*>(b.data()), b.size()); }

std::string BigPayload(size_t n) {
  std::string s(n, 'a');
  for (size_t i = 0; i < n; i++) s[i] = static_cast<char>('a' + i % 26);
  return s;
}

int CountDir(const char* dir) {
  DIR* d = opendir(dir);
  if (d == nullptr) return -1;
  int n = 0;
  while (readdir(d) != nullptr) n++;
  closedir(d);
  return n;
}
int FdCount() { return CountDir("/proc/self/fd"); }
int MaxFd() {
  int max = -1;
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') max = std::max(max, std::atoi(e->d_name));
  }
  closedir(d);
  return max;
}
int ThreadCount() { return CountDir("/proc/self/task"); }

double CpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

std::string MakeTempDir() {
  char tmpl[] = "/tmp/sipc-native-XXXXXX";
  char* dir = mkdtemp(tmpl);
  return dir != nullptr ? std::string(dir) : std::string("/tmp");
}

void RemoveTree(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (d != nullptr) {
    while (dirent* e = readdir(d)) {
      std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      std::string full = dir + "/" + name;
      struct stat sb;
      if (lstat(full.c_str(), &sb) == 0 && S_ISDIR(sb.st_mode)) {
        RemoveTree(full);
      } else {
        unlink(full.c_str());
      }
    }
    closedir(d);
  }
  rmdir(dir.c_str());
}

// ---- the delegate ----

class TestDelegate : public ServerDelegate {
 public:
  enum class PeerPolicy { kAllow, kRefuse, kRefuseLate, kAllowLate, kNeverAnswer };

  TestDelegate() : responder_([this] { Respond(); }) {}
  ~TestDelegate() override { StopResponder(); }

  void SetServer(Server* server) {
    std::lock_guard<std::mutex> lock(mu_);
    server_ = server;
    cv_.notify_all();
  }

  void SetPeerPolicy(PeerPolicy policy, int late_ms = 0) {
    std::lock_guard<std::mutex> lock(mu_);
    peer_policy_ = policy;
    late_ms_ = late_ms;
  }

  void StopResponder() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      responder_exit_ = true;
      cv_.notify_all();
    }
    if (responder_.joinable()) responder_.join();
    for (std::thread& t : late_threads_) t.join();
    late_threads_.clear();
  }

  // ServerDelegate (server threads).
  void OnRequest(ConnId id, ByteBuffer&& request, const PeerInfo& peer) override {
    std::lock_guard<std::mutex> lock(mu_);
    requests_++;
    last_peer_ = peer;
    work_.push_back(Work{id, Str(request), false});
    cv_.notify_all();
  }
  void OnPeerCheck(ConnId id, const PeerInfo& peer) override {
    std::lock_guard<std::mutex> lock(mu_);
    peer_checks_++;
    last_peer_ = peer;
    work_.push_back(Work{id, std::string(), true});
    cv_.notify_all();
  }
  void OnWritten(ConnId id, const std::vector<uint64_t>& tokens) override {
    std::lock_guard<std::mutex> lock(mu_);
    for (uint64_t t : tokens) written_tokens_.insert(t);
    (void)id;
  }
  void OnConversationLost(ConnId id, const Status& why) override {
    std::lock_guard<std::mutex> lock(mu_);
    lost_[id] = why.code;
    cv_.notify_all();
  }
  void OnClientError(const Status& why, const PeerInfo& peer) override {
    std::lock_guard<std::mutex> lock(mu_);
    client_errors_.push_back(why.code);
    (void)peer;
    cv_.notify_all();
  }
  void OnStopped(StopReason reason) override {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_ = true;
    stop_reason_ = reason;
    cv_.notify_all();
  }

  // Test side.
  bool WaitStopped(int64_t ms = kWaitMs) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::milliseconds(ms), [&] { return stopped_; });
  }
  bool stopped() {
    std::lock_guard<std::mutex> lock(mu_);
    return stopped_;
  }
  StopReason stop_reason() {
    std::lock_guard<std::mutex> lock(mu_);
    return stop_reason_;
  }
  // Waits until `n` client errors were reported; returns them.
  std::vector<int> WaitClientErrors(size_t n, int64_t ms = kWaitMs) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(ms), [&] { return client_errors_.size() >= n; });
    return client_errors_;
  }
  std::vector<int> client_errors() {
    std::lock_guard<std::mutex> lock(mu_);
    return client_errors_;
  }
  size_t CountClientErrors(LibCode code) {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    for (int c : client_errors_) n += c == static_cast<int>(code);
    return n;
  }
  std::map<ConnId, int> WaitLost(size_t n, int64_t ms = kWaitMs) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(ms), [&] { return lost_.size() >= n; });
    return lost_;
  }
  bool WaitHanging(size_t n, int64_t ms = kWaitMs) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::milliseconds(ms), [&] { return hanging_.size() >= n; });
  }
  size_t peer_checks() {
    std::lock_guard<std::mutex> lock(mu_);
    return peer_checks_;
  }
  bool WaitPeerChecks(size_t n, int64_t ms = kWaitMs) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::milliseconds(ms), [&] { return peer_checks_ >= n; });
  }
  size_t requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  PeerInfo last_peer() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_peer_;
  }
  bool token_written(uint64_t t) {
    std::lock_guard<std::mutex> lock(mu_);
    return written_tokens_.count(t) > 0;
  }

 private:
  struct Work {
    ConnId id;
    std::string request;
    bool peer_check;
  };

  bool IsLost(ConnId id) {
    std::lock_guard<std::mutex> lock(mu_);
    return lost_.count(id) > 0 || responder_exit_;
  }

  // The responder thread: the "JS thread" of this test.
  void Respond() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return responder_exit_ || (server_ != nullptr && !work_.empty()); });
      if (responder_exit_) return;
      Work w = work_.front();
      work_.pop_front();
      Server* server = server_;
      PeerPolicy policy = peer_policy_;
      int late_ms = late_ms_;
      lock.unlock();
      if (w.peer_check) {
        switch (policy) {
          case PeerPolicy::kAllow:
            server->AllowPeer(w.id, true);
            break;
          case PeerPolicy::kRefuse:
            server->AllowPeer(w.id, false);
            break;
          case PeerPolicy::kRefuseLate:
          case PeerPolicy::kAllowLate:
            // Answer from another thread, around the request deadline.
            lock.lock();
            late_threads_.emplace_back([server, id = w.id, late_ms, allow = policy == PeerPolicy::kAllowLate] {
              SleepMs(late_ms);
              server->AllowPeer(id, allow);
            });
            lock.unlock();
            break;
          case PeerPolicy::kNeverAnswer:
            break;
        }
      } else {
        Answer(server, w);
        // As the JS layer does for a conversation its handler keeps past
        // the first turn: watch it for a client that leaves.
        server->Watch(w.id);
      }
      lock.lock();
    }
  }

  void Answer(Server* server, const Work& w) {
    const std::string& r = w.request;
    if (r == "ping") {
      End(server, w.id, reinterpret_cast<const uint8_t*>("pong"), 4, false);
    } else if (r.rfind("big:", 0) == 0) {
      size_t n = std::stoul(r.substr(4));
      std::string data = BigPayload(n);
      for (size_t off = 0; off < n; off += 10000) {
        size_t len = std::min<size_t>(10000, n - off);
        Write(server, w.id, reinterpret_cast<const uint8_t*>(data.data() + off), len, 0);
      }
      End(server, w.id, nullptr, 0, false);
    } else if (r == "stream") {
      // Runs on a thread of its own so that other requests go on.
      std::thread([this, server, id = w.id] {
        std::string chunk(65536, 's');
        int64_t give_up = NowMs() + kWaitMs;
        while (!IsLost(id) && NowMs() < give_up) {
          Write(server, id, reinterpret_cast<const uint8_t*>(chunk.data()), chunk.size(), 0);
          SleepMs(1);
        }
        std::lock_guard<std::mutex> lock(mu_);
        stream_threads_done_++;
        cv_.notify_all();
      }).detach();
      std::lock_guard<std::mutex> lock(mu_);
      stream_threads_++;
    } else if (r == "hang") {
      std::lock_guard<std::mutex> lock(mu_);
      hanging_.push_back(w.id);
      cv_.notify_all();
    } else if (r == "abort") {
      Write(server, w.id, reinterpret_cast<const uint8_t*>("partial"), 7, 0);
      server->Abort(w.id);
    } else if (r == "quit") {
      End(server, w.id, nullptr, 0, true);
    } else if (r == "zero-token-idle") {
      // An empty write with a token and nothing else queued, then the
      // end a little later (from another thread).
      if (Write(server, w.id, nullptr, 0, 78) == ReplyOutcome::kSent) {
        std::lock_guard<std::mutex> lock(mu_);
        written_tokens_.insert(78);  // nothing to wait for: done at once
      }
      std::lock_guard<std::mutex> lock(mu_);
      late_threads_.emplace_back([server, id = w.id] {
        SleepMs(600);
        End(server, id, reinterpret_cast<const uint8_t*>("done"), 4, false);
      });
    } else if (r == "zero-token") {
      Write(server, w.id, nullptr, 0, 77);
      End(server, w.id, reinterpret_cast<const uint8_t*>("done"), 4, false);
    } else {
      End(server, w.id, reinterpret_cast<const uint8_t*>(r.data()), r.size(), false);
    }
  }

 public:
  // Stream writer threads must be gone before the server is destroyed.
  bool WaitStreamThreads(int64_t ms = kWaitMs) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::milliseconds(ms), [&] { return stream_threads_done_ == stream_threads_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  Server* server_ = nullptr;
  bool responder_exit_ = false;
  std::deque<Work> work_;
  PeerPolicy peer_policy_ = PeerPolicy::kAllow;
  int late_ms_ = 0;
  size_t requests_ = 0;
  size_t peer_checks_ = 0;
  PeerInfo last_peer_;
  std::set<uint64_t> written_tokens_;
  std::map<ConnId, int> lost_;
  std::vector<int> client_errors_;
  std::vector<ConnId> hanging_;
  int stream_threads_ = 0;
  int stream_threads_done_ = 0;
  bool stopped_ = false;
  StopReason stop_reason_ = StopReason::kClosed;
  std::vector<std::thread> late_threads_;  // kRefuseLate answers
  std::thread responder_;
};

// A server in a fresh directory, stopped and cleaned up at the end.
struct Harness {
  std::string dir;
  std::string path;
  TestDelegate delegate;
  std::unique_ptr<Server> server;
  Status start_status;

  explicit Harness(ServerOptions options = ServerOptions(), const std::string& name = "s.ipc") {
    dir = MakeTempDir();
    path = dir + "/" + name;
    options.path = path;
    start_status = StartServer(options, &delegate, &server);
    if (start_status.ok()) delegate.SetServer(server.get());
  }

  ~Harness() {
    if (server) {
      server->Stop(0);
      delegate.WaitStopped();
      server->Join();
    }
    delegate.WaitStreamThreads();
    delegate.StopResponder();
    server.reset();
    RemoveTree(dir);
  }
};

// ---- raw clients ----

int ConnectRaw(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool SendAll(int fd, const std::string& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

struct RawRead {
  std::string bytes;
  bool eof = false;    // orderly end or reset
  bool reset = false;  // ECONNRESET
};

// Reads until the server closes, or `ms` elapse.
RawRead ReadUntilClosed(int fd, int64_t ms = kWaitMs) {
  RawRead r;
  int64_t deadline = NowMs() + ms;
  char buf[65536];
  for (;;) {
    int64_t left = deadline - NowMs();
    if (left <= 0) return r;
    pollfd pfd{fd, POLLIN, 0};
    int rc = poll(&pfd, 1, static_cast<int>(left));
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) return r;
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n > 0) {
      r.bytes.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    r.eof = true;
    r.reset = n < 0 && errno == ECONNRESET;
    return r;
  }
}

std::string Frame(const std::string& payload) {
  std::vector<uint8_t> out;
  pkt::AppendMessage(reinterpret_cast<const uint8_t*>(payload.data()), payload.size(), &out);
  return Str(out);
}

ClientResult Send(const std::string& path, const std::string& request, std::string* response,
                  int64_t timeout_ms = kWaitMs) {
  ClientOptions options;
  options.timeout_ms = timeout_ms;
  ByteBuffer out;
  ClientResult r = SendCommandSync(path, reinterpret_cast<const uint8_t*>(request.data()), request.size(), options, &out);
  *response = Str(out);
  return r;
}

// An AsyncClient delegate that collects results.
class Collector : public ClientDelegate {
 public:
  void OnChunk(uint64_t, std::vector<uint8_t>&&) override {}
  void OnConnected(uint64_t) override {}
  void OnComplete(uint64_t id, const ClientResult& result, ByteBuffer&& response) override {
    std::lock_guard<std::mutex> lock(mu_);
    results_[id] = std::make_pair(result.status.code, Str(response));
    cv_.notify_all();
  }
  bool Wait(size_t n, int64_t ms = kWaitMs) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::milliseconds(ms), [&] { return results_.size() >= n; });
  }
  std::map<uint64_t, std::pair<int, std::string>> results() {
    std::lock_guard<std::mutex> lock(mu_);
    return results_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<uint64_t, std::pair<int, std::string>> results_;
};

// Closes the descriptors of a test, whatever happens.
struct Fds {
  std::vector<int> fds;
  ~Fds() {
    for (int fd : fds) close(fd);
  }
  void add(int fd) { fds.push_back(fd); }
};

}  // namespace

// ---- basics ----

TEST(ping_pong_and_peer_credentials) {
  Harness h;
  REQUIRE(h.start_status.ok());
  std::string response;
  ClientResult r = Send(h.path, "ping", &response);
  CHECK(r.status.ok());
  CHECK_EQ(response, std::string("pong"));
  PeerInfo peer = h.delegate.last_peer();
  CHECK_EQ(peer.pid, static_cast<int64_t>(getpid()));
  CHECK_EQ(peer.uid, static_cast<int64_t>(getuid()));
  CHECK_EQ(peer.gid, static_cast<int64_t>(getgid()));
  CHECK(GetActiveState(h.path) == ActiveState::kListening);
}

TEST(big_and_empty_responses) {
  Harness h;
  REQUIRE(h.start_status.ok());
  std::string response;
  CHECK(Send(h.path, "big:1000000", &response).status.ok());
  CHECK(response == BigPayload(1000000));
  CHECK(Send(h.path, "", &response).status.ok());
  CHECK(response.empty());
  std::string large = BigPayload(300000);
  CHECK(Send(h.path, large, &response).status.ok());
  CHECK(response == large);
}

TEST(abort_is_never_a_complete_response) {
  Harness h;
  REQUIRE(h.start_status.ok());
  std::string response;
  ClientResult r = Send(h.path, "abort", &response);
  CHECK(!r.status.ok());
  CHECK(r.status.is(LibCode::kIncompleteResponse));
}

TEST(empty_write_with_token_is_reported_and_does_not_stall) {
  Harness h;
  REQUIRE(h.start_status.ok());
  std::string response;
  ClientResult r = Send(h.path, "zero-token", &response);
  CHECK(r.status.ok());
  CHECK_EQ(response, std::string("done"));
}

TEST(empty_write_with_token_while_idle_does_not_spin) {
  Harness h;
  REQUIRE(h.start_status.ok());
  double cpu0 = CpuSeconds();
  std::string response;
  ClientResult r = Send(h.path, "zero-token-idle", &response);
  double used = CpuSeconds() - cpu0;
  CHECK(r.status.ok());
  CHECK_EQ(response, std::string("done"));
  CHECK(h.delegate.token_written(78));
  std::fprintf(stderr, "    cpu during a 600 ms idle conversation: %.3f s\n", used);
  CHECK(used < 0.3);
}

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

TEST(socket_mode_is_applied_and_umask_untouched) {
  mode_t old = umask(022);
  {
    ServerOptions options;
    options.socket_mode = 0600;
    Harness h(options);
    REQUIRE(h.start_status.ok());
    struct stat sb;
    REQUIRE(lstat(h.path.c_str(), &sb) == 0);
    CHECK_EQ(sb.st_mode & 07777, mode_t{0600});
    mode_t now = umask(022);
    CHECK_EQ(now, mode_t{022});
  }
  umask(old);
}

TEST(long_socket_path_beyond_sun_path) {
  std::string name(60, 'n');
  std::string dir = MakeTempDir();
  std::string sub = dir + "/" + std::string(60, 'd');
  REQUIRE(mkdir(sub.c_str(), 0700) == 0);
  std::string rel = std::string(60, 'd') + "/" + name;
  REQUIRE((dir + "/" + rel).size() > sizeof(sockaddr_un{}.sun_path));
  {
    ServerOptions options;
    TestDelegate delegate;
    std::unique_ptr<Server> server;
    options.path = dir + "/" + rel;
    Status st = StartServer(options, &delegate, &server);
    REQUIRE(st.ok());
    delegate.SetServer(server.get());
    std::string response;
    CHECK(Send(options.path, "ping", &response).status.ok());
    CHECK_EQ(response, std::string("pong"));
    server->Stop(0);
    CHECK(delegate.WaitStopped());
    server->Join();
    struct stat sb;
    CHECK(lstat(options.path.c_str(), &sb) < 0);
    delegate.StopResponder();
  }
  RemoveTree(dir);
}

// ---- rendezvous ----

TEST(live_server_path_is_refused_and_stale_socket_replaced) {
  Harness h;
  REQUIRE(h.start_status.ok());
  TestDelegate other;
  std::unique_ptr<Server> second;
  ServerOptions options;
  options.path = h.path;
  Status st = StartServer(options, &other, &second);
  CHECK_EQ(st.code, EADDRINUSE);
  other.StopResponder();

  // A stale socket (bound, never listening, closed) is replaced.
  std::string stale = h.dir + "/stale.ipc";
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, stale.c_str(), sizeof(addr.sun_path) - 1);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  close(fd);
  TestDelegate third;
  std::unique_ptr<Server> server3;
  options.path = stale;
  st = StartServer(options, &third, &server3);
  REQUIRE(st.ok());
  third.SetServer(server3.get());
  std::string response;
  CHECK(Send(stale, "ping", &response).status.ok());
  server3->Stop(0);
  CHECK(third.WaitStopped());
  server3->Join();
  third.StopResponder();
}

TEST(non_socket_at_path_is_left_alone) {
  std::string dir = MakeTempDir();
  std::string path = dir + "/file.ipc";
  int fd = open(path.c_str(), O_WRONLY | O_CREAT, 0600);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, "data", 4) == 4);
  close(fd);
  TestDelegate delegate;
  std::unique_ptr<Server> server;
  ServerOptions options;
  options.path = path;
  Status st = StartServer(options, &delegate, &server);
  CHECK(st.is(LibCode::kNotSocket));
  struct stat sb;
  CHECK(lstat(path.c_str(), &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size == 4);
  delegate.StopResponder();
  RemoveTree(dir);
}

TEST(stolen_path_removed_stops_the_server) {
  Harness h;
  REQUIRE(h.start_status.ok());
  REQUIRE(unlink(h.path.c_str()) == 0);
  int64_t start = NowMs();
  CHECK(h.delegate.WaitStopped());
  CHECK(h.delegate.stop_reason() == StopReason::kStolen);
  std::fprintf(stderr, "    stopped %lld ms after the unlink\n", static_cast<long long>(NowMs() - start));
}

TEST(stolen_path_replaced_stops_and_keeps_the_new_socket) {
  Harness h;
  REQUIRE(h.start_status.ok());
  REQUIRE(unlink(h.path.c_str()) == 0);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, h.path.c_str(), sizeof(addr.sun_path) - 1);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  REQUIRE(listen(fd, 5) == 0);
  CHECK(h.delegate.WaitStopped());
  CHECK(h.delegate.stop_reason() == StopReason::kStolen);
  h.server->Join();
  struct stat sb;
  CHECK(lstat(h.path.c_str(), &sb) == 0 && S_ISSOCK(sb.st_mode));
  close(fd);
}

TEST(quit_answers_then_stops) {
  Harness h;
  REQUIRE(h.start_status.ok());
  std::string response = "x";
  ClientResult r = Send(h.path, "quit", &response);
  CHECK(r.status.ok());
  CHECK(response.empty());
  CHECK(h.delegate.WaitStopped());
  CHECK(h.delegate.stop_reason() == StopReason::kQuit);
  h.server->Join();
  struct stat sb;
  CHECK(lstat(h.path.c_str(), &sb) < 0);
}

// ---- malformed requests (docs/protocol.md#pkt-line-framing) ----

TEST(malformed_requests_are_dropped_without_a_response) {
  Harness h;
  REQUIRE(h.start_status.ok());
  const std::vector<std::string> bad = {
      "0003",                              // reserved length
      "00g5x",                             // non-hex
      "G005x",                             // non-hex, first position
      "000 ",                              // space
      std::string("00\0" "5x", 5),         // NUL
      "fff1" + std::string(70000, 'x'),    // above 65520
      "ffff",                              // far above
      "0009abcde" "zzzz",                  // good packet, then garbage
  };
  size_t expected = 0;
  for (const std::string& input : bad) {
    int fd = ConnectRaw(h.path);
    REQUIRE(fd >= 0);
    SendAll(fd, input);
    RawRead r = ReadUntilClosed(fd);
    close(fd);
    CHECK(r.eof);
    CHECK(r.bytes.empty());
    expected++;
    std::vector<int> errors = h.delegate.WaitClientErrors(expected);
    REQUIRE(errors.size() >= expected);
    CHECK_EQ(errors[expected - 1], static_cast<int>(LibCode::kProtocol));
  }
  CHECK_EQ(h.delegate.requests(), size_t{0});
  // The server still answers.
  std::string response;
  CHECK(Send(h.path, "ping", &response).status.ok());
}

TEST(delim_response_end_and_empty_packet_end_a_request) {
  Harness h;
  REQUIRE(h.start_status.ok());
  for (const char* end : {"0001", "0002", "0004", "0000"}) {
    int fd = ConnectRaw(h.path);
    REQUIRE(fd >= 0);
    SendAll(fd, std::string("0008echo") + end);
    RawRead r = ReadUntilClosed(fd);
    close(fd);
    CHECK_EQ(r.bytes, Frame("echo"));
  }
  // Upper-case hex.
  int fd = ConnectRaw(h.path);
  SendAll(fd, "000Aechoes0000");
  RawRead r = ReadUntilClosed(fd);
  close(fd);
  CHECK_EQ(r.bytes, Frame("echoes"));
}

TEST(truncated_request_and_liveness_probe) {
  Harness h;
  REQUIRE(h.start_status.ok());
  // A probe: connect and hang up. Silent.
  for (int i = 0; i < 5; i++) close(ConnectRaw(h.path));
  // Truncated: half a message, then hang up.
  int fd = ConnectRaw(h.path);
  SendAll(fd, "000aabc");
  shutdown(fd, SHUT_WR);
  RawRead r = ReadUntilClosed(fd);
  close(fd);
  CHECK(r.eof);
  CHECK(r.bytes.empty());
  std::vector<int> errors = h.delegate.WaitClientErrors(1);
  REQUIRE(errors.size() == 1);
  CHECK_EQ(errors[0], static_cast<int>(LibCode::kIncompleteRequest));
  SleepMs(100);
  CHECK_EQ(h.delegate.client_errors().size(), size_t{1});
}

// ---- limits ----

TEST(max_request_bytes_exact_and_one_over) {
  ServerOptions options;
  options.max_request_bytes = 100000;
  Harness h(options);
  REQUIRE(h.start_status.ok());
  std::string exact = BigPayload(100000);
  std::string response;
  CHECK(Send(h.path, exact, &response).status.ok());
  CHECK(response == exact);
  ClientResult r = Send(h.path, BigPayload(100001), &response);
  CHECK(!r.status.ok());
  std::vector<int> errors = h.delegate.WaitClientErrors(1);
  REQUIRE(errors.size() == 1);
  CHECK_EQ(errors[0], static_cast<int>(LibCode::kRequestTooLarge));
  CHECK_EQ(h.delegate.requests(), size_t{1});
}

TEST(oversized_request_stream_is_cut_off) {
  // A client that keeps sending after the limit is disconnected: its
  // writes fail, the server does not buffer them.
  ServerOptions options;
  options.max_request_bytes = 1 << 20;
  Harness h(options);
  REQUIRE(h.start_status.ok());
  int fd = ConnectRaw(h.path);
  REQUIRE(fd >= 0);
  std::string packet = "fff0" + std::string(pkt::kMaxPayload, 'x');
  size_t sent = 0;
  bool failed = false;
  int64_t give_up = NowMs() + kWaitMs;
  while (NowMs() < give_up && sent < (size_t{256} << 20)) {
    if (!SendAll(fd, packet)) {
      failed = true;
      break;
    }
    sent += packet.size();
  }
  close(fd);
  CHECK(failed);
  CHECK(sent < (size_t{16} << 20));
  CHECK_EQ(h.delegate.WaitClientErrors(1).size(), size_t{1});
  CHECK_EQ(h.delegate.CountClientErrors(LibCode::kRequestTooLarge), size_t{1});
}

TEST(request_timeout_drops_silent_and_slow_clients) {
  ServerOptions options;
  options.request_timeout_ms = 300;
  Harness h(options);
  REQUIRE(h.start_status.ok());
  int silent = ConnectRaw(h.path);
  int slow = ConnectRaw(h.path);
  REQUIRE(silent >= 0 && slow >= 0);
  SendAll(slow, "00");
  RawRead a = ReadUntilClosed(silent);
  RawRead b = ReadUntilClosed(slow);
  close(silent);
  close(slow);
  CHECK(a.eof && a.bytes.empty());
  CHECK(b.eof && b.bytes.empty());
  h.delegate.WaitClientErrors(2);
  CHECK_EQ(h.delegate.CountClientErrors(LibCode::kRequestTimeout), size_t{2});
  // A request that completes in time is not affected.
  std::string response;
  CHECK(Send(h.path, "ping", &response).status.ok());
}

TEST(max_connections_closes_extra_connections_at_once) {
  ServerOptions options;
  options.max_connections = 10;
  Harness h(options);
  REQUIRE(h.start_status.ok());
  Fds idle;
  for (int i = 0; i < 10; i++) {
    int fd = ConnectRaw(h.path);
    REQUIRE(fd >= 0);
    idle.add(fd);
  }
  int extra = ConnectRaw(h.path);
  REQUIRE(extra >= 0);
  RawRead r = ReadUntilClosed(extra);
  close(extra);
  CHECK(r.eof);
  std::vector<int> errors = h.delegate.WaitClientErrors(1);
  REQUIRE(!errors.empty());
  CHECK_EQ(errors[0], static_cast<int>(LibCode::kTooManyConnections));
  // Free the slots: the server serves again.
  for (int fd : idle.fds) close(fd);
  idle.fds.clear();
  std::string response;
  bool ok = false;
  int64_t give_up = NowMs() + kWaitMs;
  while (!ok && NowMs() < give_up) {
    ok = Send(h.path, "ping", &response).status.ok();
    if (!ok) SleepMs(20);
  }
  CHECK(ok);
}

TEST(idle_and_dribbling_clients_do_not_delay_others) {
  ServerOptions options;
  options.threads = 2;
  Harness h(options);
  REQUIRE(h.start_status.ok());
  Fds fds;
  std::vector<int> dribblers;
  for (int i = 0; i < 200; i++) {
    int fd = ConnectRaw(h.path);
    REQUIRE(fd >= 0);
    fds.add(fd);
    if (i % 2 == 0) dribblers.push_back(fd);
  }
  // Half of them start a request they will never finish.
  for (int fd : dribblers) SendAll(fd, "0");
  std::atomic<bool> stop_dribbling{false};
  std::thread dribble([&] {
    const char* rest = "00100123456789abcdefghijklmnopqrstuvwxyz";  // never a whole message
    size_t i = 1;
    while (!stop_dribbling) {
      for (int fd : dribblers) {
        char c = rest[i % 30];
        send(fd, &c, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
      }
      i++;
      SleepMs(50);
    }
  });
  int64_t worst = 0;
  bool all_ok = true;
  for (int i = 0; i < 50; i++) {
    int64_t start = NowMs();
    std::string response;
    ClientResult r = Send(h.path, "ping", &response, 10000);
    all_ok = all_ok && r.status.ok() && response == "pong";
    worst = std::max(worst, NowMs() - start);
  }
  stop_dribbling = true;
  dribble.join();
  CHECK(all_ok);
  std::fprintf(stderr, "    slowest of 50 pings beside 200 idle/slow clients: %lld ms\n",
               static_cast<long long>(worst));
  // Stopping does not wait for any of them.
  int64_t start = NowMs();
  h.server->Stop(60000);
  CHECK(h.delegate.WaitStopped());
  CHECK(NowMs() - start < 10000);
}

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

TEST(stop_drops_hanging_handlers_after_the_grace_time) {
  Harness h;
  REQUIRE(h.start_status.ok());
  std::vector<uint8_t> request = Bytes("hang");
  Collector collector;
  std::unique_ptr<AsyncClient> client = CreateAsyncClient(&collector);
  ClientOptions copts;
  for (uint64_t id = 1; id <= 5; id++) client->Start(id, h.path, Bytes(Frame("hang")), copts, false);
  CHECK(h.delegate.WaitHanging(5));
  int64_t start = NowMs();
  h.server->Stop(200);
  CHECK(h.delegate.WaitStopped());
  CHECK(NowMs() - start < 10000);
  CHECK_EQ(h.delegate.WaitLost(5).size(), size_t{5});
  for (auto& kv : h.delegate.WaitLost(5)) CHECK_EQ(kv.second, static_cast<int>(LibCode::kServerClosed));
  CHECK(collector.Wait(5));
  for (auto& kv : collector.results()) CHECK_EQ(kv.second.first, static_cast<int>(LibCode::kIncompleteResponse));
  client->Shutdown();
  h.server->Join();
  struct stat sb;
  CHECK(lstat(h.path.c_str(), &sb) < 0);
}

// Requests that complete while a stop begins: one that reaches the
// application after the grace time was enforced must not escape it (it
// would never be answered when nothing is left to answer it, as when a
// worker thread's environment is torn down, and the stop would never end).
// The window is a few instructions wide, so this makes many stops with
// requests arriving all the time on two serving threads.
TEST(stop_ends_while_requests_keep_arriving) {
  for (int round = 0; round < 40; round++) {
    ServerOptions options;
    options.threads = 2;
    Harness h(options);
    REQUIRE(h.start_status.ok());
    std::atomic<bool> done{false};
    std::vector<std::thread> clients;
    for (int c = 0; c < 4; c++) {
      clients.emplace_back([&] {
        std::vector<int> open;
        while (!done.load()) {
          int fd = ConnectRaw(h.path);
          if (fd < 0) {
            SleepMs(1);
            continue;
          }
          SendAll(fd, Frame("hang"));
          open.push_back(fd);
          if (open.size() > 16) {
            close(open.front());
            open.erase(open.begin());
          }
        }
        for (int fd : open) close(fd);
      });
    }
    REQUIRE(h.delegate.WaitHanging(1));
    SleepMs(round % 7);
    h.server->Stop(0);
    bool stopped = h.delegate.WaitStopped(10000);
    done.store(true);
    for (std::thread& t : clients) t.join();
    CHECK(stopped);
    if (!stopped) {
      std::fprintf(stderr, "    round %d: the stop did not end\n", round);
      std::abort();  // the harness's destructor would wait forever
    }
  }
}

TEST(stop_with_every_kind_of_client_connected) {
  ServerOptions options;
  options.threads = 2;
  Harness h(options);
  REQUIRE(h.start_status.ok());
  Fds fds;
  for (int i = 0; i < 20; i++) fds.add(ConnectRaw(h.path));        // silent
  for (int i = 0; i < 20; i++) {                                    // mid-request
    int fd = ConnectRaw(h.path);
    SendAll(fd, "0010abc");
    fds.add(fd);
  }
  int reader = ConnectRaw(h.path);  // a large response it does not read
  SendAll(reader, Frame("big:20000000"));
  fds.add(reader);
  int streamer = ConnectRaw(h.path);
  SendAll(streamer, Frame("stream"));
  fds.add(streamer);
  SleepMs(200);
  int64_t start = NowMs();
  h.server->Stop(300);
  CHECK(h.delegate.WaitStopped());
  int64_t took = NowMs() - start;
  CHECK(took < 10000);
  std::fprintf(stderr, "    stop took %lld ms\n", static_cast<long long>(took));
  h.server->Join();
  for (int fd : fds.fds) {
    RawRead r = ReadUntilClosed(fd, 5000);
    CHECK(r.eof);
  }
  CHECK(h.delegate.WaitStreamThreads());
}

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

// ---- lock files ----

std::string WriteLock(const std::string& path, const std::string& content, int age_s) {
  std::string lock = path + ".lock";
  int fd = open(lock.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd >= 0) {
    if (!content.empty() && write(fd, content.data(), content.size()) < 0) {
    }
    close(fd);
  }
  if (age_s > 0) {
    struct timeval times[2];
    gettimeofday(&times[0], nullptr);
    times[0].tv_sec -= age_s;
    times[1] = times[0];
    utimes(lock.c_str(), times);
  }
  return lock;
}

// A pid that is certainly dead: a child that has exited and been reaped.
pid_t DeadPid() {
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  int status;
  waitpid(pid, &status, 0);
  return pid;
}

TEST(stale_lock_of_a_dead_process_is_taken_over) {
  std::string dir = MakeTempDir();
  std::string path = dir + "/s.ipc";
  std::string lock = WriteLock(path, std::to_string(DeadPid()) + "\n", 0);
  TestDelegate delegate;
  ServerOptions options;
  options.path = path;
  std::unique_ptr<Server> server;
  Status st = StartServer(options, &delegate, &server);
  CHECK(st.ok());
  struct stat sb;
  CHECK(lstat(lock.c_str(), &sb) < 0);  // released after the start, as always
  if (server) {
    server->Stop(0);
    delegate.WaitStopped();
    server->Join();
  }
  delegate.StopResponder();
  RemoveTree(dir);
}

TEST(old_empty_lock_is_taken_over_but_a_fresh_one_is_not) {
  std::string dir = MakeTempDir();
  std::string path = dir + "/s.ipc";
  ServerOptions options;
  options.path = path;
  {
    // Git's empty lock, left by a Git killed 10 s ago.
    std::string lock = WriteLock(path, "", 10);
    TestDelegate delegate;
    std::unique_ptr<Server> server;
    CHECK(StartServer(options, &delegate, &server).ok());
    if (server) {
      server->Stop(0);
      delegate.WaitStopped();
      server->Join();
    }
    delegate.StopResponder();
  }
  {
    // An empty lock just created: someone is starting right now.
    std::string lock = WriteLock(path, "", 0);
    TestDelegate delegate;
    std::unique_ptr<Server> server;
    Status st = StartServer(options, &delegate, &server);
    CHECK_EQ(st.code, EEXIST);
    struct stat sb;
    CHECK(lstat(lock.c_str(), &sb) == 0);  // left alone
    delegate.StopResponder();
  }
  RemoveTree(dir);
}

TEST(lock_of_a_live_process_is_never_taken) {
  std::string dir = MakeTempDir();
  std::string path = dir + "/s.ipc";
  // Our own pid: alive, however old the lock.
  std::string lock = WriteLock(path, std::to_string(getpid()) + "\n", 60);
  TestDelegate delegate;
  ServerOptions options;
  options.path = path;
  std::unique_ptr<Server> server;
  Status st = StartServer(options, &delegate, &server);
  CHECK_EQ(st.code, EEXIST);
  struct stat sb;
  CHECK(lstat(lock.c_str(), &sb) == 0);
  delegate.StopResponder();
  RemoveTree(dir);
}

// ---- stopping ----

TEST(a_stopping_server_refuses_new_connections_and_bounds_the_quit) {
  // A handler that never finishes, then quit: new clients are refused at
  // once (not left hanging), and the quit's grace ends the stop.
  ServerOptions options;
  options.quit_grace_ms = 500;
  Harness h(options);
  REQUIRE(h.start_status.ok());
  int hanging = ConnectRaw(h.path);
  SendAll(hanging, Frame("hang"));
  CHECK(h.delegate.WaitHanging(1));
  std::string response;
  int64_t start = NowMs();
  CHECK(Send(h.path, "quit", &response).status.ok());
  SleepMs(50);
  int fd = ConnectRaw(h.path);
  std::fprintf(stderr, "    connect while stopping: %s\n", fd < 0 ? std::strerror(errno) : "connected");
  CHECK(fd < 0 && errno == ECONNREFUSED);
  if (fd >= 0) close(fd);
  CHECK(h.delegate.WaitStopped());
  int64_t took = NowMs() - start;
  std::fprintf(stderr, "    stopped %lld ms after the quit (grace 500 ms)\n", static_cast<long long>(took));
  CHECK(took >= 450);
  CHECK(h.delegate.stop_reason() == StopReason::kQuit);
  h.server->Join();
  CHECK(ReadUntilClosed(hanging, 5000).eof);
  close(hanging);
}

TEST(idle_timeout_stops_the_server_and_serves_what_it_accepted) {
  ServerOptions options;
  options.idle_timeout_ms = 300;
  options.quit_grace_ms = 5000;
  Harness h(options);
  REQUIRE(h.start_status.ok());
  // Activity keeps it alive.
  for (int i = 0; i < 6; i++) {
    std::string response;
    CHECK(Send(h.path, "ping", &response).status.ok());
    SleepMs(100);
  }
  CHECK(!h.delegate.stopped());
  CHECK(h.delegate.WaitStopped(5000));
  CHECK(h.delegate.stop_reason() == StopReason::kIdle);
  h.server->Join();
  struct stat sb;
  CHECK(lstat(h.path.c_str(), &sb) < 0);
}

TEST(stats_count_requests_bytes_and_drops) {
  ServerOptions options;
  options.max_request_bytes = 100;
  options.threads = 2;
  Harness h(options);
  REQUIRE(h.start_status.ok());
  std::string response;
  for (int i = 0; i < 10; i++) CHECK(Send(h.path, "ping", &response).status.ok());
  int fd = ConnectRaw(h.path);
  SendAll(fd, "0003");
  CHECK(ReadUntilClosed(fd, 5000).eof);
  close(fd);
  fd = ConnectRaw(h.path);
  SendAll(fd, Frame(std::string(200, 'x')));
  CHECK(ReadUntilClosed(fd, 5000).eof);
  close(fd);
  h.delegate.WaitClientErrors(2);
  // A client can read its reply before the writing thread has counted it
  // (the counters are updated after sendmsg returns): wait for the count.
  ServerStats st = h.server->Stats();
  for (int64_t give_up = NowMs() + kWaitMs; NowMs() < give_up; SleepMs(10)) {
    st = h.server->Stats();
    if (st.requests == 10 && st.connections_handling + st.connections_reading + st.connections_peer_check == 0) break;
  }
  CHECK_EQ(st.requests, uint64_t{10});
  CHECK_EQ(st.dropped_protocol, uint64_t{1});
  CHECK_EQ(st.dropped_too_large, uint64_t{1});
  CHECK_EQ(st.bytes_out, uint64_t{10 * (8 + 4)});  // "0008pong0000"
  CHECK(st.bytes_in >= uint64_t{10 * 12 + 4});
  CHECK_EQ(st.connections_handling + st.connections_reading + st.connections_peer_check, uint64_t{0});
}

// ---- load ----

TEST(many_concurrent_sync_and_async_clients) {
  ServerOptions options;
  options.threads = 4;
  Harness h(options);
  REQUIRE(h.start_status.ok());
  std::atomic<int> ok{0};
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; t++) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 100; i++) {
        std::string request = "req-" + std::to_string(t) + "-" + std::to_string(i);
        if (i % 25 == 0) request = "big:200000";
        std::string response;
        ClientResult r = Send(h.path, request, &response);
        bool good = r.status.ok() && (request == "big:200000" ? response == BigPayload(200000) : response == request);
        (good ? ok : bad)++;
      }
    });
  }
  Collector collector;
  std::unique_ptr<AsyncClient> client = CreateAsyncClient(&collector);
  ClientOptions copts;
  copts.timeout_ms = kWaitMs;
  const uint64_t kAsync = 1000;
  for (uint64_t id = 1; id <= kAsync; id++) {
    client->Start(id, h.path, Bytes(Frame("async-" + std::to_string(id))), copts, false);
  }
  for (std::thread& t : threads) t.join();
  CHECK(collector.Wait(kAsync, 60000));
  auto results = collector.results();
  size_t async_ok = 0;
  for (auto& kv : results) async_ok += kv.second.first == 0 && kv.second.second == "async-" + std::to_string(kv.first);
  client->Shutdown();
  CHECK_EQ(ok.load(), 1600);
  CHECK_EQ(bad.load(), 0);
  CHECK_EQ(async_ok, size_t{kAsync});
  CHECK(h.delegate.client_errors().empty());
}

TEST(thousand_connections_at_once) {
  ServerOptions options;
  options.threads = 4;
  Harness h(options);
  REQUIRE(h.start_status.ok());
  Collector collector;
  std::unique_ptr<AsyncClient> client = CreateAsyncClient(&collector);
  ClientOptions copts;
  copts.timeout_ms = 60000;
  copts.connect_timeout_ms = 30000;
  for (uint64_t id = 1; id <= 1000; id++) client->Start(id, h.path, Bytes(Frame("ping")), copts, false);
  CHECK(collector.Wait(1000, 90000));
  size_t good = 0;
  for (auto& kv : collector.results()) good += kv.second.first == 0 && kv.second.second == "pong";
  client->Shutdown();
  CHECK_EQ(good, size_t{1000});
}

TEST(no_descriptor_or_thread_leak_across_a_server_lifetime) {
  int fds0 = FdCount();
  int threads0 = ThreadCount();
  {
    ServerOptions options;
    options.threads = 6;
    Harness h(options);
    REQUIRE(h.start_status.ok());
    Collector collector;
    std::unique_ptr<AsyncClient> client = CreateAsyncClient(&collector);
    ClientOptions copts;
    for (uint64_t id = 1; id <= 2000; id++) {
      client->Start(id, h.path, Bytes(Frame(id % 3 == 0 ? "abort" : "ping")), copts, false);
    }
    CHECK(collector.Wait(2000, 60000));
    client->Shutdown();
    for (int i = 0; i < 20; i++) close(ConnectRaw(h.path));
    CHECK(FdCount() > fds0);
  }
  CHECK_EQ(FdCount(), fds0);
  // Threads end asynchronously after join returns on some libcs; give them
  // a moment.
  int64_t give_up = NowMs() + 5000;
  while (ThreadCount() != threads0 && NowMs() < give_up) SleepMs(10);
  CHECK_EQ(ThreadCount(), threads0);
}

int main(int argc, char** argv) {
  // SIGPIPE is left at its default: the library must never raise it.
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4096) {
    rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  return sipc_test::RunAll(argc, argv);
}
