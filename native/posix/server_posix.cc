// The simple-ipc server on POSIX (SPEC section 3, with the section 7
// limits).
//
// Threads and ownership:
//  - The I/O thread (Git's "accept thread") waits on the Poller for the
//    listening socket, for connections still sending their request, for
//    sockets a worker found full (EAGAIN), and for hang-ups. It accepts,
//    reads requests without blocking, enforces the request limits, checks
//    for a stolen socket path, and runs the shutdown sequence.
//  - Worker threads take connections that have output queued, oldest
//    first, and write it with one sendmsg() per turn (never blocking: a
//    full socket is handed back to the I/O thread). They also close
//    finished conversations. No worker ever waits on a client.
//  - Any thread (in practice the JS thread) calls Write/End/Abort, which
//    only queue bytes and wake a worker.
//
// Locking: one mutex, `mutex_`, guards the connection table, each
// connection's fields marked (mu), the work queue and the stop state.
// System calls run outside it, on a connection that the caller holds
// `busy` (workers) or that is in the kReading phase (I/O thread: a
// connection's request reader belongs to the I/O thread alone).
// Delegate calls are made without holding the lock.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "../core/clock.h"
#include "inherited_listener.h"
#include "../core/output_queue.h"
#include "../core/pkt_line.h"
#include "../core/server.h"
#include "poller.h"
#include "socket_util.h"
#include "unix_address.h"

namespace sipc {

namespace {

constexpr int kListenBacklog = 50;           // as Git
constexpr int64_t kLockTimeoutMs = 100;      // as Git
constexpr int64_t kStolenCheckMs = 1000;     // SPEC: at least once a second
constexpr int64_t kAcceptPauseMs = 100;      // out of descriptors: retry accept() then
constexpr size_t kReadBufferSize = 256 * 1024;
constexpr int kMaxReadsPerEvent = 16;        // fairness between uploads
constexpr size_t kMaxIovPerWrite = 64;
constexpr uint64_t kListenKey = 0;

enum class Phase {
  kPeerCheck,  // accepted, waiting for AllowPeer; nothing read yet
  kReading,    // receiving the request (I/O thread)
  kHandling,   // request handed to the application
};

struct Conn {
  ConnId id = 0;
  int fd = -1;
  PeerInfo peer;
  int64_t deadline = 0;  // request must be complete by then (0: none)
  // I/O thread only, while kReading:
  bool registered = false;  // known to the poller
  pkt::Reader reader;
  ByteBuffer request;
  // (mu):
  Phase phase = Phase::kReading;
  OutputQueue out;
  bool ended = false;          // End() queued the flush: close once drained
  bool quit = false;           // End(quit): shut the server down after
  bool aborted = false;        // close without writing what is queued
  bool busy = false;           // a worker is in a system call on fd
  bool queued = false;         // in work_queue_
  bool want_writable = false;  // waiting for POLLOUT (I/O thread)
  int64_t writable_since = 0;

  explicit Conn(size_t max_request) : reader(max_request) {}
};

class PosixServer : public Server {
 public:
  PosixServer(const ServerOptions& options, ServerDelegate* delegate)
      : options_(options), delegate_(delegate) {
    if (options_.threads < 1) options_.threads = 1;
  }

  ~PosixServer() override {
    if (listen_fd_ >= 0) close(listen_fd_);
  }

  Status Listen();
  Status ListenOnInherited();
  void StartThreads();

  void Write(ConnId id, const uint8_t* data, size_t len, uint64_t token) override {
    std::vector<uint8_t> framed;
    pkt::AppendPackets(data, len, &framed);
    std::unique_lock<std::mutex> lock(mutex_);
    Conn* conn = FindHandling(id);
    if (conn == nullptr || conn->ended) return;
    conn->out.Push(std::move(framed), token);
    Schedule(conn);
  }

  void End(ConnId id, const uint8_t* data, size_t len, bool quit) override {
    std::vector<uint8_t> framed;
    pkt::AppendMessage(data, len, &framed);
    std::unique_lock<std::mutex> lock(mutex_);
    Conn* conn = FindHandling(id);
    if (conn == nullptr || conn->ended) return;
    conn->out.Push(std::move(framed), 0);
    conn->ended = true;
    conn->quit = quit;
    Schedule(conn);
  }

  bool WriteBorrowed(ConnId id, const uint8_t* data, size_t len, uint64_t token) override {
    std::unique_lock<std::mutex> lock(mutex_);
    Conn* conn = FindHandling(id);
    if (conn == nullptr || conn->ended) return false;
    conn->out.PushBorrowed(data, len, false, token);
    Schedule(conn);
    return true;
  }

  bool EndBorrowed(ConnId id, const uint8_t* data, size_t len, bool quit, uint64_t token) override {
    std::unique_lock<std::mutex> lock(mutex_);
    Conn* conn = FindHandling(id);
    if (conn == nullptr || conn->ended) return false;
    conn->out.PushBorrowed(data, len, true, token);
    conn->ended = true;
    conn->quit = quit;
    Schedule(conn);
    return true;
  }

  void Abort(ConnId id) override {
    std::unique_lock<std::mutex> lock(mutex_);
    Conn* conn = FindHandling(id);
    if (conn == nullptr || conn->ended) return;
    AbortLocked(conn);
  }

  void AllowPeer(ConnId id, bool allowed) override {
    std::unique_lock<std::mutex> lock(mutex_);
    auto it = conns_.find(id);
    if (it == conns_.end() || it->second->phase != Phase::kPeerCheck) return;
    Conn* conn = it->second.get();
    if (!allowed || stop_requested_) {
      CloseLocked(conn);
      return;
    }
    // Hand the connection to the I/O thread.
    conn->phase = Phase::kReading;
    poller_->Modify(conn->fd, kPollIn, conn->id, false);
  }

  void Stop(uint32_t grace_ms) override { RequestStop(StopReason::kClosed, grace_ms); }

  void Join() override {
    if (io_thread_.joinable()) io_thread_.join();
  }

 private:
  // (mu) helpers.
  Conn* FindHandling(ConnId id) {
    auto it = conns_.find(id);
    if (it == conns_.end() || it->second->phase != Phase::kHandling) return nullptr;
    return it->second.get();
  }

  void Schedule(Conn* conn) {
    if (conn->queued || conn->busy || conn->want_writable) return;
    conn->queued = true;
    work_queue_.push_back(conn->id);
    if (idle_workers_ > 0) work_cv_.notify_one();
  }

  // Ends a conversation without the flush: nothing more is written and a
  // worker closes the connection. Returns true if it was not aborted yet.
  bool AbortLocked(Conn* conn) {
    bool first = !conn->aborted;
    conn->aborted = true;
    conn->ended = true;
    // A worker in sendmsg() reads these buffers without the lock: it
    // drops the queue itself when it sees `aborted`.
    DropOutput(conn);
    conn->want_writable = false;
    Schedule(conn);
    return first;
  }

  // Drops a connection's queued output, unless a worker is in sendmsg()
  // on it (that worker drops it when it takes the lock back). Tokens of
  // the dropped entries wait in released_ for delivery.
  void DropOutput(Conn* conn) {
    if (conn->busy || conn->out.empty()) return;
    std::vector<uint64_t> tokens;
    conn->out.Clear(&tokens);
    if (!tokens.empty()) released_.emplace_back(conn->id, std::move(tokens));
  }

  // Reports dropped borrowed writes. Call without the lock.
  void DeliverReleased() {
    std::vector<std::pair<ConnId, std::vector<uint64_t>>> released;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      released.swap(released_);
    }
    for (auto& r : released) delegate_->OnReleased(r.first, r.second);
  }

  // Closes and forgets a connection nobody is in a system call on.
  void CloseLocked(Conn* conn) {
    DropOutput(conn);
    poller_->Forget(conn->fd);
    close(conn->fd);
    conns_.erase(conn->id);
    if (stop_requested_ && conns_.empty()) poller_->Wake();
  }

  void RequestStop(StopReason reason, uint32_t grace_ms) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stop_requested_) {
        // A later, shorter grace wins (e.g. close() after quit).
        int64_t deadline = NowMs() + grace_ms;
        if (deadline < grace_deadline_) grace_deadline_ = deadline;
      } else {
        stop_requested_ = true;
        stop_reason_ = reason;
        grace_deadline_ = NowMs() + grace_ms;
      }
    }
    poller_->Wake();
  }

  void IoLoop();
  void Accept();
  void ReadRequest(Conn* conn);
  void DropReading(Conn* conn, const Status& why, bool report);
  void OnHandlingEvent(ConnId id, uint32_t events);
  void CheckTimers(int64_t now);
  bool PathStolen();
  void WorkerLoop();
  void FinishStop();

  ServerOptions options_;
  ServerDelegate* delegate_;
  std::unique_ptr<Poller> poller_;
  int listen_fd_ = -1;
  // False for an inherited listener: its path belongs to whoever created
  // it, so stop never unlinks it and the stolen-path check is off.
  bool owns_path_ = true;
  dev_t socket_dev_ = 0;
  ino_t socket_ino_ = 0;
  std::thread io_thread_;
  std::vector<std::thread> workers_;

  std::mutex mutex_;
  std::condition_variable work_cv_;
  std::unordered_map<ConnId, std::unique_ptr<Conn>> conns_;  // (mu)
  std::deque<ConnId> work_queue_;                            // (mu)
  int idle_workers_ = 0;                                     // (mu)
  bool workers_exit_ = false;                                // (mu)
  bool stop_requested_ = false;                              // (mu)
  StopReason stop_reason_ = StopReason::kClosed;             // (mu)
  int64_t grace_deadline_ = 0;                               // (mu)
  std::vector<std::pair<ConnId, std::vector<uint64_t>>> released_;  // (mu)

  // I/O thread only.
  ConnId next_id_ = 1;
  std::deque<std::pair<int64_t, ConnId>> deadlines_;  // accept order = deadline order
  int64_t next_stolen_check_ = 0;
  int64_t accept_resume_at_ = 0;  // accept() paused until then (0: not paused)
  std::vector<uint8_t> read_buffer_;
};

Status TakeLock(const std::string& lock_path, int* out_fd) {
  int64_t give_up = NowMs() + kLockTimeoutMs;
  for (;;) {
    int fd = open(lock_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
      *out_fd = fd;
      return Status::Ok();
    }
    int err = errno;
    if (err != EEXIST || NowMs() >= give_up) {
      return Status::FromErrno(err, "open", "could not take lock file '" + lock_path + "'");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// True when a server accepts connections at `address` (Git's probe).
bool LiveServerAt(const UnixAddress& address) {
  int err = ConnectOnce(address, 1000);
  return err == 0 || err == EAGAIN;  // EAGAIN: alive, backlog full
}

// Serves the listening socket the process inherited (options_.listen_fd).
Status PosixServer::ListenOnInherited() {
  Status st = AdoptListeningSocket(options_.listen_fd);
  if (!st.ok()) return st;
  poller_ = Poller::Create();
  if (!poller_ || !poller_->Add(options_.listen_fd, kPollIn, kListenKey, false)) {
    return Status::FromErrno(errno, "epoll_ctl");  // the fd stays the caller's
  }
  listen_fd_ = options_.listen_fd;
  owns_path_ = false;
  return Status::Ok();
}

Status PosixServer::Listen() {
  if (options_.listen_fd >= 0) return ListenOnInherited();
  const std::string& path = options_.path;
  UnixAddress address;
  Status st = address.Resolve(path);
  if (!st.ok()) {
    st.syscall = "bind";
    return st;
  }

  std::string lock_path = path + ".lock";
  int lock_fd = -1;
  st = TakeLock(lock_path, &lock_fd);
  if (!st.ok()) return st;
  auto release_lock = [&] {
    unlink(lock_path.c_str());
    close(lock_fd);
  };

  // take_over (the `replace` option): a live server may be there; ours is
  // bound under a temporary name and renamed over the path once it
  // listens, so that the path never goes missing (docs/design.md).
  const bool take_over = options_.take_over;
  if (!take_over && LiveServerAt(address)) {
    release_lock();
    return Status::FromErrno(EADDRINUSE, "listen", path);
  }

  struct stat sb;
  if (lstat(path.c_str(), &sb) == 0) {
    if (!S_ISSOCK(sb.st_mode)) {
      // Git would delete it; we never destroy what is not ours.
      release_lock();
      return Status::Lib(LibCode::kNotSocket, "'" + path + "'");
    }
    if (!take_over && unlink(path.c_str()) < 0 && errno != ENOENT) {
      int err = errno;
      release_lock();
      return Status::FromErrno(err, "unlink", "stale socket '" + path + "'");
    }
  }

  const std::string bind_path = take_over ? path + ".new" : path;
  UnixAddress temporary_address;
  const UnixAddress* bind_address = &address;
  if (take_over) {
    st = temporary_address.Resolve(bind_path);
    if (!st.ok()) {
      release_lock();
      return st;
    }
    bind_address = &temporary_address;
    unlink(bind_path.c_str());  // left by a crash; we hold the lock
  }

  int fd = NewUnixSocket();
  if (fd < 0) {
    int err = errno;
    release_lock();
    return Status::FromErrno(err, "socket");
  }
  auto fail = [&](const char* syscall) {
    int err = errno;
    close(fd);
    release_lock();
    return Status::FromErrno(err, syscall, path);
  };
  if (bind(fd, bind_address->addr(), bind_address->len()) < 0) return fail("bind");
  // Between bind and listen nobody can connect (ECONNREFUSED), so the mode
  // is in place before the first client; the process umask is untouched.
  if (options_.socket_mode >= 0 && chmod(bind_path.c_str(), static_cast<mode_t>(options_.socket_mode)) < 0) {
    Status failed = fail("chmod");
    unlink(bind_path.c_str());
    return failed;
  }
  if (listen(fd, kListenBacklog) < 0) {
    Status failed = fail("listen");
    unlink(bind_path.c_str());
    return failed;
  }
  if (take_over && rename(bind_path.c_str(), path.c_str()) < 0) {
    Status failed = fail("rename");
    unlink(bind_path.c_str());
    return failed;
  }
  if (lstat(path.c_str(), &sb) < 0) {
    Status failed = fail("lstat");
    unlink(path.c_str());
    return failed;
  }
  socket_dev_ = sb.st_dev;
  socket_ino_ = sb.st_ino;
  listen_fd_ = fd;
  release_lock();

  poller_ = Poller::Create();
  if (!poller_ || !poller_->Add(listen_fd_, kPollIn, kListenKey, false)) {
    int err = errno;
    close(listen_fd_);
    listen_fd_ = -1;
    unlink(path.c_str());
    return Status::FromErrno(err, "epoll_ctl");
  }
  return Status::Ok();
}

void PosixServer::StartThreads() {
  read_buffer_.resize(kReadBufferSize);
  next_stolen_check_ = NowMs() + kStolenCheckMs;
  for (int i = 0; i < options_.threads; i++) workers_.emplace_back([this] { WorkerLoop(); });
  io_thread_ = std::thread([this] { IoLoop(); });
}

// I/O thread.
void PosixServer::IoLoop() {
  PollEvent events[128];
  bool stopping = false;
  for (;;) {
    int64_t now = NowMs();
    int timeout = static_cast<int>(next_stolen_check_ > now ? next_stolen_check_ - now : 0);
    if (!deadlines_.empty()) {
      int64_t left = deadlines_.front().first - now;
      if (left < timeout) timeout = left < 0 ? 0 : static_cast<int>(left);
    }
    if (accept_resume_at_ > 0) {
      int64_t left = accept_resume_at_ - now;
      if (left < timeout) timeout = left < 0 ? 0 : static_cast<int>(left);
    }
    if (stopping) timeout = timeout < 50 ? timeout : 50;
    int n = poller_->Wait(events, 128, timeout);
    for (int i = 0; i < n; i++) {
      uint64_t key = events[i].key;
      if (key == Poller::kWakeKey) continue;
      if (key == kListenKey) {
        if (!stopping) Accept();
        continue;
      }
      Conn* reading = nullptr;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        auto it = conns_.find(key);
        if (it == conns_.end()) continue;
        if (it->second->phase == Phase::kReading) reading = it->second.get();
      }
      if (reading != nullptr) {
        ReadRequest(reading);
      } else {
        OnHandlingEvent(key, events[i].events);
      }
    }
    now = NowMs();
    CheckTimers(now);
    DeliverReleased();
    if (accept_resume_at_ > 0 && now >= accept_resume_at_) {
      accept_resume_at_ = 0;
      if (listen_fd_ >= 0 && !stopping) poller_->Modify(listen_fd_, kPollIn, kListenKey, false);
    }

    bool stop_now;
    int64_t grace_deadline;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_now = stop_requested_;
      grace_deadline = grace_deadline_;
    }
    if (stop_now && !stopping) {
      stopping = true;
      // Stop accepting; drop everything that has not reached the
      // application (SPEC 3: queued connections are dropped). As in Git,
      // the listening socket itself stays open until the threads are
      // joined and the socket file is gone: until then the path still
      // reads as "listening", so whoever waits for it to stop (Git's
      // stop-daemon) also waits for the conversations to finish, and
      // finds no socket file once it is told the server is gone.
      poller_->Remove(listen_fd_);
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto it = conns_.begin(); it != conns_.end();) {
        Conn* conn = it->second.get();
        if (conn->phase != Phase::kHandling) {
          poller_->Forget(conn->fd);
          close(conn->fd);
          it = conns_.erase(it);
        } else {
          ++it;
        }
      }
      deadlines_.clear();
    }
    if (stopping) {
      std::vector<ConnId> lost;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (conns_.empty()) break;
        if (now >= grace_deadline) {
          // Out of patience: drop the conversations still running.
          for (auto& kv : conns_) {
            if (AbortLocked(kv.second.get())) lost.push_back(kv.first);
          }
        }
      }
      for (ConnId id : lost) {
        delegate_->OnConversationLost(id, Status::Lib(LibCode::kServerClosed, "closed before the handler finished"));
      }
    }
  }
  FinishStop();
}

void PosixServer::FinishStop() {
  StopReason reason;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    workers_exit_ = true;
    reason = stop_reason_;
  }
  work_cv_.notify_all();
  for (std::thread& t : workers_) t.join();
  workers_.clear();
  // Remove the socket file unless someone else's socket is there now,
  // then close the listener (clients still in its backlog get EOF).
  if (reason != StopReason::kStolen && owns_path_) {
    struct stat sb;
    if (lstat(options_.path.c_str(), &sb) == 0 && S_ISSOCK(sb.st_mode) && sb.st_dev == socket_dev_ &&
        sb.st_ino == socket_ino_) {
      unlink(options_.path.c_str());
    }
  }
  close(listen_fd_);
  listen_fd_ = -1;
  // The poller lives as long as the server object: Stop() may still come
  // from another thread after a stop of our own (quit, stolen path), and
  // its Wake() must find the poller there.
  DeliverReleased();
  delegate_->OnStopped(reason, Status::Ok());
}

// I/O thread.
void PosixServer::Accept() {
  for (;;) {
#if defined(__linux__)
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
#else
    int fd = accept(listen_fd_, nullptr, nullptr);
    if (fd >= 0 && !SetNonBlockingCloexec(fd)) {
      close(fd);
      continue;
    }
#endif
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of descriptors or memory: the rest stays in the backlog and
        // the listening socket stays readable. Stop watching it for a
        // moment, or the I/O thread would spin on it.
        poller_->Modify(listen_fd_, 0, kListenKey, false);
        accept_resume_at_ = NowMs() + kAcceptPauseMs;
      }
      // EAGAIN: drained.
      return;
    }
    PeerInfo peer = GetPeerInfo(fd);
    size_t open_conns;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      open_conns = conns_.size();
    }
    if (open_conns >= options_.max_connections) {
      close(fd);
      delegate_->OnClientError(
          Status::Lib(LibCode::kTooManyConnections, std::to_string(options_.max_connections) + " open"), peer);
      continue;
    }
    std::unique_ptr<Conn> owned(new Conn(options_.max_request_bytes));
    Conn* conn = owned.get();
    conn->id = next_id_++;
    conn->fd = fd;
    conn->peer = peer;
    if (options_.request_timeout_ms > 0) {
      conn->deadline = NowMs() + options_.request_timeout_ms;
      deadlines_.emplace_back(conn->deadline, conn->id);
    }
    conn->phase = options_.check_peer ? Phase::kPeerCheck : Phase::kReading;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      conns_.emplace(conn->id, std::move(owned));
    }
    if (conn->phase == Phase::kPeerCheck) {
      // One-shot: a hang-up while the application decides is reported
      // once, not on every Wait() (AllowPeer re-arms the registration).
      poller_->Add(fd, 0, conn->id, true);
      conn->registered = true;
      delegate_->OnPeerCheck(conn->id, peer);
      continue;
    }
    // Most clients send their request right after connecting: try to read
    // it now, and register with the poller only if it is not all there
    // (system calls are what a small request costs).
    ReadRequest(conn);
  }
}

// I/O thread; `conn` is in kReading.
void PosixServer::ReadRequest(Conn* conn) {
  for (int i = 0; i < kMaxReadsPerEvent; i++) {
    ssize_t n = recv(conn->fd, read_buffer_.data(), read_buffer_.size(), 0);
    if (n > 0) {
      conn->reader.Feed(read_buffer_.data(), static_cast<size_t>(n), &conn->request);
      switch (conn->reader.state()) {
        case pkt::Reader::State::kNeedMore:
          continue;
        case pkt::Reader::State::kProtocolError:
          DropReading(conn, Status::Lib(LibCode::kProtocol, std::string(conn->reader.error_text()) + " in request"),
                      true);
          return;
        case pkt::Reader::State::kTooLarge:
          DropReading(conn,
                      Status::Lib(LibCode::kRequestTooLarge,
                                  "limit " + std::to_string(options_.max_request_bytes) + " bytes"),
                      true);
          return;
        case pkt::Reader::State::kDone: {
          ByteBuffer request(std::move(conn->request));
          ConnId id = conn->id;
          PeerInfo peer = conn->peer;
          {
            std::lock_guard<std::mutex> lock(mutex_);
            conn->phase = Phase::kHandling;
            conn->reader = pkt::Reader();
            // From now on only a hang-up matters (one-shot: re-armed by
            // whoever handles it).
            if (conn->registered) {
              poller_->Modify(conn->fd, 0, id, true);
            } else {
              poller_->Add(conn->fd, 0, id, true);
            }
          }
          // `conn` may be gone as soon as the application answers.
          delegate_->OnRequest(id, std::move(request), peer);
          return;
        }
      }
    }
    if (n == 0) {
      // A client that hangs up without sending anything is a liveness
      // probe: close silently, as Git does.
      if (!conn->reader.started()) {
        DropReading(conn, Status::Ok(), false);
      } else {
        DropReading(conn, Status::Lib(LibCode::kIncompleteRequest), true);
      }
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      if (!conn->registered) {
        conn->registered = true;
        poller_->Add(conn->fd, kPollIn, conn->id, false);
      }
      return;
    }
    DropReading(conn, Status::FromErrno(errno, "read"), conn->reader.started());
    return;
  }
  // Out of turns with more to read: come back on the next readiness event.
  if (!conn->registered) {
    conn->registered = true;
    poller_->Add(conn->fd, kPollIn, conn->id, false);
  }
}

// I/O thread; `conn` is in kReading or kPeerCheck.
void PosixServer::DropReading(Conn* conn, const Status& why, bool report) {
  PeerInfo peer = conn->peer;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    CloseLocked(conn);
  }
  if (report) delegate_->OnClientError(why, peer);
}

// I/O thread: a one-shot event on a connection in kHandling.
void PosixServer::OnHandlingEvent(ConnId id, uint32_t events) {
  bool lost = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = conns_.find(id);
    if (it == conns_.end()) return;
    Conn* conn = it->second.get();
    if (conn->phase != Phase::kHandling) return;
    if (events & (kPollHangup | kPollError)) {
      if (conn->ended && !conn->aborted && !conn->want_writable) {
        // Already finishing; the worker will see the error itself.
        return;
      }
      // The client went away: the conversation is over.
      lost = AbortLocked(conn);
    } else if ((events & kPollOut) && conn->want_writable) {
      conn->want_writable = false;
      Schedule(conn);
    }
  }
  if (lost) delegate_->OnConversationLost(id, Status::FromErrno(ECONNRESET, "read", "client went away"));
}

// I/O thread.
void PosixServer::CheckTimers(int64_t now) {
  while (!deadlines_.empty() && deadlines_.front().first <= now) {
    ConnId id = deadlines_.front().second;
    deadlines_.pop_front();
    // Close under the lock that found it: a connection waiting for
    // AllowPeer may be closed by the application's thread at any moment.
    bool dropped = false;
    PeerInfo peer;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = conns_.find(id);
      if (it != conns_.end() && it->second->phase != Phase::kHandling) {
        peer = it->second->peer;
        CloseLocked(it->second.get());
        dropped = true;
      }
    }
    if (dropped) {
      delegate_->OnClientError(
          Status::Lib(LibCode::kRequestTimeout, std::to_string(options_.request_timeout_ms) + " ms"), peer);
    }
  }
  if (now < next_stolen_check_) return;
  next_stolen_check_ = now + kStolenCheckMs;
  // Clients that stopped reading their response: as long a limit as the
  // request gets.
  if (options_.request_timeout_ms > 0) {
    std::vector<ConnId> stalled;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto& kv : conns_) {
        Conn* conn = kv.second.get();
        if (conn->want_writable && now - conn->writable_since > options_.request_timeout_ms) {
          if (AbortLocked(conn)) stalled.push_back(conn->id);
        }
      }
    }
    for (ConnId id : stalled) {
      delegate_->OnConversationLost(id, Status::Lib(LibCode::kWriteStalled));
    }
  }
  if (owns_path_ && PathStolen()) RequestStop(StopReason::kStolen, 0);
}

bool PosixServer::PathStolen() {
  struct stat sb;
  if (lstat(options_.path.c_str(), &sb) < 0) return errno == ENOENT || errno == ENOTDIR;
  return !S_ISSOCK(sb.st_mode) || sb.st_dev != socket_dev_ || sb.st_ino != socket_ino_;
}

// Worker thread.
void PosixServer::WorkerLoop() {
  std::vector<uint64_t> tokens;
  iovec iov[kMaxIovPerWrite];
  ByteSpan spans[kMaxIovPerWrite];
  OutputQueue::HeaderScratch<kMaxIovPerWrite> headers;
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    while (work_queue_.empty() && !workers_exit_) {
      idle_workers_++;
      work_cv_.wait(lock);
      idle_workers_--;
    }
    if (work_queue_.empty()) return;  // workers_exit_
    ConnId id = work_queue_.front();
    work_queue_.pop_front();
    auto it = conns_.find(id);
    if (it == conns_.end()) continue;
    Conn* conn = it->second.get();
    conn->queued = false;
    if (conn->aborted) {
      CloseLocked(conn);
      continue;
    }
    size_t count = conn->out.Fill(spans, &headers);
    if (count == 0 && !conn->out.empty()) {
      // Only empty entries (a zero-length Write with a token): nothing to
      // send, and their tokens are done. Left queued, they would put the
      // connection back in the work queue forever.
      conn->out.Consume(0, &tokens);
    }
    bool finished = false;
    bool quit = false;
    bool lost = false;
    int write_errno = 0;
    if (count > 0) {
      for (size_t i = 0; i < count; i++) {
        iov[i].iov_base = const_cast<uint8_t*>(spans[i].data);
        iov[i].iov_len = spans[i].size;
      }
      conn->busy = true;
      int fd = conn->fd;
      lock.unlock();
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = count;
      ssize_t n;
      do {
        n = sendmsg(fd, &msg, kSendFlags | MSG_DONTWAIT);
      } while (n < 0 && errno == EINTR);
      write_errno = n < 0 ? errno : 0;
      lock.lock();
      conn->busy = false;
      if (n > 0) {
        conn->out.Consume(static_cast<size_t>(n), &tokens);
      } else if (write_errno == EAGAIN) {
        conn->want_writable = true;
        conn->writable_since = NowMs();
        poller_->Modify(conn->fd, kPollOut, conn->id, true);
      } else if (!conn->aborted) {
        lost = true;
        conn->aborted = true;
        conn->ended = true;
        DropOutput(conn);
      }
    }
    if (conn->aborted) {
      CloseLocked(conn);
    } else if (conn->out.empty()) {
      if (conn->ended) {
        quit = conn->quit;
        finished = true;
        CloseLocked(conn);
      } else if (!conn->want_writable) {
        // Idle until the handler writes again: watch for a hang-up.
        poller_->Modify(conn->fd, 0, conn->id, true);
      }
    } else if (!conn->want_writable) {
      // More to write: back of the queue, so that one large response
      // does not starve the others.
      Schedule(conn);
    }
    (void)finished;
    if (!tokens.empty() || lost || quit || !released_.empty()) {
      lock.unlock();
      DeliverReleased();
      if (!tokens.empty()) {
        delegate_->OnWritten(id, tokens);
        tokens.clear();
      }
      if (lost) delegate_->OnConversationLost(id, Status::FromErrno(write_errno, "write", "client went away"));
      if (quit) RequestStop(StopReason::kQuit, UINT32_MAX / 2);
      lock.lock();
    }
  }
}

}  // namespace

Status StartServer(const ServerOptions& options, ServerDelegate* delegate, std::unique_ptr<Server>* out) {
  std::unique_ptr<PosixServer> server(new PosixServer(options, delegate));
  Status st = server->Listen();
  if (!st.ok()) return st;
  server->StartThreads();
  *out = std::move(server);
  return Status::Ok();
}

}  // namespace sipc
