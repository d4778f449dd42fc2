// Helpers of the tests of the real POSIX server (sipc::StartServer) and
// clients (SendCommandSync, CreateAsyncClient), without Node. The tests
// are split by behaviour into server_*_test.cc, linked into one binary
// (sipc_server_test, main in server_test_main.cc). A small C++
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
#pragma once

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

namespace sipc_server_test {

// The application's two ways to answer, through the one Reply() entry point.
inline ReplyOutcome Write(Server* server, ConnId id, const uint8_t* data, size_t len, uint64_t token) {
  ReplyChunk chunk;
  chunk.data = data;
  chunk.len = len;
  chunk.token = token;
  return server->Reply(id, chunk);
}
inline ReplyOutcome End(Server* server, ConnId id, const uint8_t* data, size_t len, bool quit) {
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

inline void SleepMs(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

inline std::vector<uint8_t> Bytes(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }
// An AsyncClient request (raw) whose bytes are the caller's only during Start().
inline ClientRequest Transient(const std::string& s) {
  return ClientRequest::Transient(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}
inline std::string Str(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }
inline std::string Str(const ByteBuffer& b) { return std::string(reinterpret_cast<const char*>(b.data()), b.size()); }

inline std::string BigPayload(size_t n) {
  std::string s(n, 'a');
  for (size_t i = 0; i < n; i++) s[i] = static_cast<char>('a' + i % 26);
  return s;
}

inline int CountDir(const char* dir) {
  DIR* d = opendir(dir);
  if (d == nullptr) return -1;
  int n = 0;
  while (readdir(d) != nullptr) n++;
  closedir(d);
  return n;
}
inline int FdCount() { return CountDir("/proc/self/fd"); }
inline int MaxFd() {
  int max = -1;
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') max = std::max(max, std::atoi(e->d_name));
  }
  closedir(d);
  return max;
}
inline int ThreadCount() { return CountDir("/proc/self/task"); }

inline double CpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

inline std::string MakeTempDir() {
  char tmpl[] = "/tmp/sipc-native-XXXXXX";
  char* dir = mkdtemp(tmpl);
  return dir != nullptr ? std::string(dir) : std::string("/tmp");
}

// The names in `dir` (without . and ..).
inline std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return names;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  closedir(d);
  return names;
}

inline void RemoveTree(const std::string& dir) {
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
  // kAllowOwnUserOnly: allows peers of this process's user, never answers
  // about anyone else (they stay undecided).
  enum class PeerPolicy { kAllow, kRefuse, kRefuseLate, kAllowLate, kNeverAnswer, kAllowOwnUserOnly };

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
    work_.push_back(Work{id, std::string(), true, peer.uid});
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
  std::vector<ConnId> hanging() {
    std::lock_guard<std::mutex> lock(mu_);
    return hanging_;
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
    int64_t uid = -1;  // with peer_check
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
          case PeerPolicy::kAllowOwnUserOnly:
            if (w.uid == static_cast<int64_t>(geteuid())) server->AllowPeer(w.id, true);
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

inline int ConnectRaw(const std::string& path) {
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

inline bool SendAll(int fd, const std::string& bytes) {
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
inline RawRead ReadUntilClosed(int fd, int64_t ms = kWaitMs) {
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

inline std::string Frame(const std::string& payload) {
  std::vector<uint8_t> out;
  pkt::AppendMessage(reinterpret_cast<const uint8_t*>(payload.data()), payload.size(), &out);
  return Str(out);
}

inline ClientResult Send(const std::string& path, const std::string& request, std::string* response,
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
  void OnChunk(uint64_t, ByteBuffer&& chunk, const std::shared_ptr<StreamLedger>& ledger) override {
    ledger->Taken(chunk.size());  // taken at once: never at the hand-over bound
  }
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

}  // namespace sipc_server_test

using namespace sipc_server_test;
