// The simple-ipc server on POSIX (docs/protocol.md#the-server, with the
// limits of docs/protocol.md#limits).
//
// The rules of the conversation (what a read means, the request deadline
// and the peer check, stalled writers, what a Reply queues, the stop
// grace) are native/core/conversation.h's
// (docs/design.md#the-conversation-core); this file does the I/O and asks
// it.
//
// Threads and ownership (docs/design.md#the-posix-server):
//  - `threads` serving threads. Each has its own Poller and owns the
//    connections it accepted, from accept to close: it accepts on the
//    shared listening socket, reads requests without blocking, enforces
//    the request limits and deadlines, notices clients that leave, and
//    writes what a Reply could not write at once. Serving thread 0 also
//    checks for a stolen socket path, runs the idle timeout and the stop
//    sequence, and is the one the owner joins.
//  - The application's thread (the JS thread) calls Reply. Bytes are
//    written by the thread that has them: when nothing is queued, Reply
//    makes one non-blocking sendmsg() and, after the last chunk, closes the
//    connection itself; what the kernel did not take is queued and the
//    owning serving thread writes it when the socket is writable. Reply
//    never blocks and never loops on a socket.
//  - While it is idle, the application's thread also accepts
//    (AcceptOnCaller, docs/design.md#accepting-on-the-js-thread): one
//    recv() per connection; a complete request is its own at once, any
//    other connection goes to a serving thread (HandOver), which owns it
//    from then on as if it had accepted it. The listener is watched by
//    the caller or by the serving threads, never both; thread 0 takes it
//    from a caller that stays busy while a connection waits.
//
// Locking: each serving thread has one mutex, `mu`, that guards its
// connection table and every connection field marked (mu). A system call
// on a connection runs outside the lock, by the one thread that set
// `busy` (a writer), or, while the connection is still sending its
// request, by its serving thread alone (the request reader belongs to
// it). No thread ever holds two serving threads' mutexes, nor calls the
// delegate while holding one. `stop_mutex_` only guards the stop request
// and is never held while taking a `mu`. `listener_mu_` orders the
// listener's hand-overs, the caller's accepts and the start of a stop; it
// is taken before a `mu`, never while holding one.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <mutex>
#include <queue>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../core/admission.h"
#include "../core/clock.h"
#include "../core/conversation.h"
#include "../core/output_queue.h"
#include "../core/pkt_line.h"
#include "../core/server.h"
#include "listener_posix.h"
#include "poller.h"
#include "socket_util.h"

namespace sipc {

namespace {

// accept() errors that no retry can cure: the listening socket is gone.
bool ListenerBroken(int err) { return err == EBADF || err == EINVAL || err == ENOTSOCK || err == EOPNOTSUPP; }

// A listening socket shut down by another holder (an inherited socket is
// shared) stays readable while accept() answers EAGAIN, so the poller
// would wake us for nothing, forever; only POLLRDHUP tells (Linux). One
// non-blocking poll(), made only when a wake-up found nothing to accept.
bool ListenerShutDown(int fd) {
#if defined(POLLRDHUP)
  pollfd p{fd, POLLRDHUP, 0};
  return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
#else
  (void)fd;
  return false;
#endif
}

// One accept() of a non-blocking, close-on-exec connection, for the
// serving threads and the caller alike. -1 with *err = 0: try again at
// once (interrupted, or a connection gone before it was taken).
int AcceptOne(int listen_fd, int* err) {
#if defined(__linux__)
  int fd = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
#else
  int fd = accept(listen_fd, nullptr, nullptr);
  if (fd >= 0 && !SetNonBlockingCloexec(fd)) {
    close(fd);
    *err = 0;
    return -1;
  }
#endif
  if (fd < 0) *err = errno == EINTR || errno == ECONNABORTED ? 0 : errno;
  return fd;
}

// Out of descriptors or memory: the backlog waits until accept() is tried
// again a little later.
bool OutOfResources(int err) { return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM; }

// A connection waits in the backlog: one non-blocking poll().
bool ListenerReadable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

constexpr int64_t kStolenCheckMs = 1000;  // docs/protocol.md#stolen-path: at least once a second
constexpr int64_t kAcceptPauseMs = 100;   // out of descriptors: retry accept() then
constexpr size_t kReadBufferSize = 256 * 1024;
constexpr int kMaxReadsPerEvent = 16;     // fairness between uploads
// One accept() per wake-up: the listener is level-triggered, so a backlog
// that holds more wakes this thread's next Wait() at once, and the
// accept() that would find the backlog empty (EAGAIN) is never made when a
// wake-up was for one connection, the usual case. With several serving
// threads each arrival also wakes one idle thread (EPOLLEXCLUSIVE).
constexpr int kAcceptsPerWakeUp = 1;
constexpr int kMaxAcceptsOnStop = 1 << 20;  // a draining stop takes the whole backlog
constexpr int kMaxWritesPerEvent = 16;    // fairness between large responses
// The application's thread accepts while it is idle
// (docs/design.md#accepting-on-the-js-thread). Serving thread 0 checks on
// it: a connection waiting while the caller has made no progress for two
// checks in a row is the serving threads' to take. kCallerCheckMs apart
// while the caller is active; the period doubles up to kCallerQuietCheckMs
// while nothing happens at all (an idle server wakes thread 0 about 16
// times a second for it).
constexpr int64_t kCallerCheckMs = 2;
constexpr int64_t kCallerQuietCheckMs = 64;
constexpr uint64_t kListenKey = ~uint64_t{0} - 1;  // Poller::kWakeKey is ~0
constexpr int kThreadBits = 10;                    // up to 1024 serving threads

using Phase = ConversationPhase;

// A connection: the conversation (docs/design.md#the-conversation-core)
// and the socket it runs on.
struct Conn {
  int fd = -1;
  // conv.id never changes after Adopt; conv.peer only once, when read
  // (see peer_known). conv.reader and
  // conv.request: the serving thread's alone, while kAwaitFirstByte or
  // kReading. Every other conv field: (mu).
  Conversation conv;
  // (mu):
  bool registered = false;  // known to the owner's poller
  bool busy = false;        // a thread is in a system call on fd
  bool undecided = false;   // counted in the server's UndecidedPeers
  // conv.peer was read from the socket: at accept with allowPeer, else on
  // first use (Server::PeerOf, or a client error that reports it). Set
  // once, by the serving thread before the request is handed over, or
  // (mu) after.
  bool peer_known = false;
  // The request bytes charged to the server's RequestMemory: the serving
  // thread's alone (only it reads, hands over or drops a request).
  size_t buffered = 0;

  explicit Conn(size_t max_request) : conv(max_request) {}
};

// Delegate calls collected under a lock, made after it is released.
using Notices = ConversationNotices;

class PosixServer;

class ServingThread {
 public:
  ServingThread(PosixServer* server, int index, std::unique_ptr<Poller> poller)
      : server_(server), index_(index), poller_(std::move(poller)) {}

  void Start() { thread_ = std::thread([this] { Run(); }); }
  void Join() {
    if (thread_.joinable()) thread_.join();
  }
  Poller* poller() { return poller_.get(); }

  // (mu) helpers, also used by PosixServer's entry points.
  std::mutex mu;
  Conn* Find(ConnId id) {
    auto it = conns_.find(id);
    return it == conns_.end() ? nullptr : it->second.get();
  }
  Conn* FindHandling(ConnId id) {
    Conn* c = Find(id);
    return c != nullptr && c->conv.phase == Phase::kHandling ? c : nullptr;
  }
  void CloseLocked(Conn* conn, Notices* notices);
  bool AbortLocked(Conn* conn, Notices* notices);
  ReplyOutcome QueueLocked(Conn* conn, const ReplyChunk& chunk, size_t already_sent);
  void FinishLocked(Conn* conn, Notices* notices);
  void WatchLocked(Conn* conn);
  size_t CountLocked() const { return conns_.size() + handed_over_.size(); }
  void CountPhasesLocked(ServerStats* stats) const;
  int index() const { return index_; }

  // The caller's thread (AcceptOnCaller), for a connection it accepted.
  // A complete request: the conversation joins this thread's table in the
  // application's hands. False when a stop refuses it (the caller closes).
  bool AdoptHandling(std::unique_ptr<Conn> conn);
  // A request not all there: this thread reads the rest and polices it.
  void HandOver(std::unique_ptr<Conn> conn, int64_t accepted_at);
  std::vector<ConnId> AbortAllLocked(Notices* notices);
  const PeerInfo& KnownPeer(Conn* conn);

  // Serving thread.
  void Deliver(Notices& notices);

 private:
  void Run();
  int NextTimeout(int64_t now) const;
  void Dispatch(const PollEvent& event);
  void Accept(int max_accepts);
  void Adopt(int fd);
  void AdoptHandedOver();
  void AwaitFirstByte(Conn* conn);
  void StartPeerCheck(Conn* conn);
  void AskSilentPeers(int64_t now);
  void StartRequestClock(Conn* conn, int64_t now);
  void ReadRequest(Conn* conn);
  void RequestComplete(Conn* conn);
  void DropUnstarted(Conn* conn, const Status& why, bool report);
  void OnHandlingEvent(ConnId id, uint32_t events);
  void WriteQueuedLocked(Conn* conn, std::unique_lock<std::mutex>& lock, Notices* notices);
  void RunTimers(int64_t now);
  void DropStalledWriters(int64_t now);
  void LeaveListener();
  void DropUnstartedAll();

  PosixServer* server_;
  int index_;
  std::unique_ptr<Poller> poller_;
  std::thread thread_;
  std::unordered_map<ConnId, std::unique_ptr<Conn>> conns_;  // (mu)
  // (mu) Connections the caller's thread accepted whose request was not
  // all there, with when they were accepted; counted as open and reading.
  std::vector<std::pair<std::unique_ptr<Conn>, int64_t>> handed_over_;

  // Serving thread only.
  std::priority_queue<std::pair<int64_t, ConnId>, std::vector<std::pair<int64_t, ConnId>>,
                      std::greater<std::pair<int64_t, ConnId>>>
      deadlines_;
  int64_t next_stall_check_ = 0;
  int64_t accept_resume_at_ = 0;  // accept() paused until then (0: not paused)
  // Connections in kAwaitFirstByte, asked about once silent for
  // kSilentPeerCheckMs (docs/security.md#refused-and-undecided-peers).
  std::priority_queue<std::pair<int64_t, ConnId>, std::vector<std::pair<int64_t, ConnId>>,
                      std::greater<std::pair<int64_t, ConnId>>>
      silent_peers_;
  bool on_listener_ = true;
  std::vector<uint8_t> read_buffer_;
};

class PosixServer : public Server {
 public:
  PosixServer(const ServerOptions& options, ServerDelegate* delegate)
      : options_(options),
        delegate_(delegate),
        undecided_(static_cast<int64_t>(geteuid()), options.max_connections),
        request_memory_(options.max_buffered_request_bytes) {
    if (options_.threads < 1) options_.threads = 1;
    if (options_.threads > (1 << kThreadBits)) options_.threads = 1 << kThreadBits;
    idle_.timeout_ms = options_.idle_timeout_ms;
  }
  ~PosixServer() override {
    if (listener_.fd >= 0) close(listener_.fd);
  }

  Status Listen();
  Status StartThreads();

  ReplyOutcome Reply(ConnId id, const ReplyChunk& chunk) override;
  void Watch(ConnId id) override;
  ServerStats Stats() override;
  void Abort(ConnId id) override;
  void AllowPeer(ConnId id, bool allowed) override;
  bool PeerOf(ConnId id, PeerInfo* peer) override;
  void Stop(uint32_t grace_ms) override { RequestStop(StopReason::kClosed, grace_ms); }
  void Join() override { threads_[0]->Join(); }
  int CallerListener() override;
  ListenerTurn CallerIdle() override;
  ListenerTurn AcceptOnCaller(int max, std::vector<CallerRequest>* out) override;

  // For the serving threads.
  const ServerOptions& options() const { return options_; }
  ServerDelegate* delegate() { return delegate_; }
  int listen_fd() const { return listener_.fd; }
  // How every serving thread's poller watches the listener: with several
  // threads, one is woken per connection, not all.
  uint32_t listener_events() const { return kPollIn | (options_.threads > 1 ? kPollExclusive : 0); }
  bool stopping() const { return stopping_.load(std::memory_order_acquire); }
  bool exiting() const { return exit_.load(std::memory_order_acquire); }
  // Connections not yet handed to the application are dropped on a stop,
  // except when nobody new can reach the listener any more (see
  // BeginStop): then the stop finishes everything it accepted or queued.
  bool drop_unstarted_on_stop() const { return !drain_on_stop_.load(std::memory_order_acquire); }
  bool grace_over() const { return grace_over_.load(std::memory_order_acquire); }
  // Whether a request completing now must be dropped rather than handed to
  // the application: once a stop has begun, unless an idle stop is still
  // within its grace time (docs/protocol.md#stopping). Serving threads
  // call it under their mu, which orders it with AbortAllConversations.
  bool refuses_new_requests() const {
    return stopping() && StopRefusesRequests(!drop_unstarted_on_stop(), grace_over());
  }
  void RequestStop(StopReason reason, uint32_t grace_ms);
  // Unique per server; the low bits name the owning serving thread.
  ConnId NewConnId(int thread_index) {
    return (next_seq_.fetch_add(1, std::memory_order_relaxed) << kThreadBits) | static_cast<ConnId>(thread_index);
  }
  // A serving thread's pause (out of descriptors) is over: it watches the
  // listener again, unless the caller has it.
  void ResumeListener(Poller* poller);
  bool TryOpen();  // counts a new connection; false over maxConnections
  // docs/security.md#refused-and-undecided-peers: false when `uid` holds its share.
  bool AdmitUndecided(int64_t uid);
  void UndecidedDone(int64_t uid);
  uint32_t undecided_cap() const { return undecided_.cap(); }
  // docs/security.md#memory: false when the request would take the total
  // of incomplete requests past maxBufferedRequestBytes.
  bool ChargeRequest(size_t* held, size_t now_held);
  void ReleaseRequest(size_t* held);
  void CountDrop(ReadVerdict::Counter counter);
  // One non-blocking recv() on a connection still sending its request,
  // given to its conversation: false when nothing was there (EAGAIN), else
  // *verdict says what the bytes, the end or the error made of the
  // request. For whichever thread reads that connection now.
  bool ReadOnce(Conn* conn, std::vector<uint8_t>* buffer, ReadVerdict* verdict);
  // The only getsockopt(SO_PEERCRED) of the server, counted (Stats).
  PeerInfo ReadPeer(int fd) {
    peer_lookups.fetch_add(1, std::memory_order_relaxed);
    return GetPeerInfo(fd);
  }
  void Closed();
  void ThreadLeftListener() { threads_off_listener_.fetch_add(1, std::memory_order_acq_rel); }
  void Coordinate(int64_t now);
  int CoordinatorTimeout(int64_t now) const;
  void FinishStop();

  std::atomic<uint64_t> requests_served{0};
  std::atomic<uint64_t> dropped_protocol{0};
  std::atomic<uint64_t> dropped_too_large{0};
  std::atomic<uint64_t> dropped_timeout{0};
  std::atomic<uint64_t> dropped_too_many{0};
  std::atomic<uint64_t> bytes_in{0};
  std::atomic<uint64_t> bytes_out{0};
  std::atomic<uint64_t> peer_lookups{0};

 private:
  uint64_t OpenConnections() const {
    int64_t open = open_connections_.load(std::memory_order_acquire);
    return open > 0 ? static_cast<uint64_t>(open) : 0;
  }
  ServingThread* ThreadOf(ConnId id) {
    size_t index = static_cast<size_t>(id & ((ConnId{1} << kThreadBits) - 1));
    return index < threads_.size() ? threads_[index].get() : nullptr;
  }
  ssize_t SendNow(int fd, const ReplyChunk& chunk, size_t* framed_size);
  ReplyOutcome AfterSendLocked(ServingThread* t, Conn* c, const ReplyChunk& chunk, ssize_t sent, int err,
                               size_t framed_size, Notices* notices);
  void BeginStop();
  void WatchCaller(int64_t now);
  void TakeListenerFromCallerLocked();
  void AdoptOnCaller(int fd, std::vector<CallerRequest>* out);
  void DropOnCaller(int fd, const Status& why, bool report);
  bool AllConnectionsClosed();
  void AbortAllConversations();

  ServerOptions options_;
  ServerDelegate* delegate_;
  Listener listener_;
  std::vector<std::unique_ptr<ServingThread>> threads_;

  std::atomic<bool> stopping_{false};
  std::atomic<bool> drain_on_stop_{false};  // written by thread 0 before stopping_
  std::atomic<bool> exit_{false};
  std::atomic<int> threads_off_listener_{0};
  std::atomic<int64_t> open_connections_{0};
  std::atomic<int64_t> idle_since_{0};
  std::atomic<uint64_t> next_seq_{1};
  IdleRule idle_;

  // The listener between the caller's thread and the serving threads
  // (docs/design.md#accepting-on-the-js-thread). listener_mu_ orders the
  // hand-overs, the caller's accepts and the start of a stop: taken before
  // a serving thread's mu, never while holding one, nor stop_mutex_.
  std::mutex listener_mu_;
  std::atomic<bool> caller_owns_{false};  // written under listener_mu_
  std::atomic<uint64_t> caller_turns_{0};  // the caller's progress, bumped each turn
  int64_t caller_resume_at_ = 0;  // (listener_mu_) the caller ran out of descriptors: threads' until then
  // The caller's thread only.
  size_t caller_next_thread_ = 0;
  std::vector<uint8_t> caller_buffer_;
  // Serving thread 0 only: its checks on the caller.
  uint64_t caller_turns_seen_ = 0;
  bool caller_suspect_ = false;  // last check: a connection waited, no progress
  int64_t caller_check_period_ = kCallerCheckMs;
  int64_t next_caller_check_ = 0;

  mutable std::mutex stop_mutex_;
  StopRequest stop_;  // (stop_mutex_)

  // A leaf lock: taken alone or under a serving thread's mu, and nothing
  // is taken while holding it.
  std::mutex admission_mu_;
  UndecidedPeers undecided_;       // (admission_mu_)
  RequestMemory request_memory_;   // (admission_mu_)

  // Serving thread 0 only.
  StopReason stop_reason_seen_ = StopReason::kClosed;
  bool stop_begun_ = false;
  bool listener_closed_ = false;
  // Set by thread 0 when the grace time ends, before it takes any thread's
  // mu to abort what runs: a request completing later sees it (under that
  // mu) and is dropped instead of reaching the application.
  std::atomic<bool> grace_over_{false};
  int64_t next_stolen_check_ = 0;
};

// ---------------------------------------------------------------------------
// Start

Status PosixServer::Listen() { return OpenListener(options_, &listener_); }

Status PosixServer::StartThreads() {
  for (int i = 0; i < options_.threads; i++) {
    std::unique_ptr<Poller> poller = Poller::Create();
    if (!poller || !poller->Add(listener_.fd, listener_events(), kListenKey, false)) {
      Status st = Status::FromErrno(errno, "epoll_ctl");
      threads_.clear();
      close(listener_.fd);
      RemoveListenerPath(options_.path, listener_);
      listener_.fd = -1;
      return st;
    }
    threads_.emplace_back(new ServingThread(this, i, std::move(poller)));
  }
  int64_t now = NowMs();
  next_stolen_check_ = now + kStolenCheckMs;
  idle_since_.store(now);
  for (auto& t : threads_) t->Start();
  return Status::Ok();
}

// ---------------------------------------------------------------------------
// The application's entry points (any thread; in practice the JS thread)

// One non-blocking sendmsg() of the chunk's framed bytes, straight from the
// caller's memory. Returns what sendmsg returned (errno set on -1).
ssize_t PosixServer::SendNow(int fd, const ReplyChunk& chunk, size_t* framed_size) {
  *framed_size = pkt::EncodedSize(chunk.len) + (chunk.end ? pkt::kHeaderSize : 0);
  if (*framed_size == 0) return 0;
  pkt::Span spans[kMaxSendSpans];
  char headers[kMaxSendSpans / 2 + 1][pkt::kHeaderSize];
  size_t count = pkt::FramedSpans(chunk.data, chunk.len, 0, spans, kMaxSendSpans, headers, chunk.end);
  return SendSpans(fd, spans, count, MSG_DONTWAIT);
}

ReplyOutcome PosixServer::Reply(ConnId id, const ReplyChunk& chunk) {
  ServingThread* t = ThreadOf(id);
  if (t == nullptr) return ReplyOutcome::kGone;
  Notices notices;
  notices.id = id;
  ReplyOutcome outcome;
  {
    std::unique_lock<std::mutex> lock(t->mu);
    Conn* c = t->Find(id);
    if (c == nullptr || !c->conv.TakesReplies()) return ReplyOutcome::kGone;
    if (c->busy || !c->conv.out.empty()) {
      // Bytes before these are still on their way: keep the order.
      outcome = t->QueueLocked(c, chunk, 0);
    } else {
      c->busy = true;
      int fd = c->fd;
      lock.unlock();
      size_t framed_size;
      ssize_t sent = SendNow(fd, chunk, &framed_size);
      int err = sent < 0 ? errno : 0;
      lock.lock();
      c->busy = false;
      outcome = AfterSendLocked(t, c, chunk, sent, err, framed_size, &notices);
    }
  }
  t->Deliver(notices);
  return outcome;
}

ReplyOutcome PosixServer::AfterSendLocked(ServingThread* t, Conn* c, const ReplyChunk& chunk, ssize_t sent, int err,
                                          size_t framed_size, Notices* notices) {
  if (c->conv.aborted) {
    // The client left (or the stop grace ran out) during our send.
    t->CloseLocked(c, notices);
    return ReplyOutcome::kGone;
  }
  if (sent < 0 && err != EAGAIN) {
    notices->Lose(t->AbortLocked(c, notices), Status::FromErrno(err, "write", "client went away"));
    return ReplyOutcome::kGone;
  }
  size_t taken = sent > 0 ? static_cast<size_t>(sent) : 0;
  bytes_out.fetch_add(taken, std::memory_order_relaxed);
  if (taken < framed_size) return t->QueueLocked(c, chunk, taken);
  if (chunk.end) {
    c->conv.MarkLast(chunk);
    t->FinishLocked(c, notices);
  }
  return ReplyOutcome::kSent;
}

void PosixServer::Watch(ConnId id) {
  ServingThread* t = ThreadOf(id);
  if (t == nullptr) return;
  std::lock_guard<std::mutex> lock(t->mu);
  Conn* c = t->Find(id);
  if (c != nullptr && c->conv.TakesReplies()) t->WatchLocked(c);
}

void PosixServer::Abort(ConnId id) {
  ServingThread* t = ThreadOf(id);
  if (t == nullptr) return;
  Notices notices;
  notices.id = id;
  {
    std::lock_guard<std::mutex> lock(t->mu);
    Conn* c = t->Find(id);
    if (c == nullptr || !c->conv.TakesReplies()) return;
    t->AbortLocked(c, &notices);
  }
  t->Deliver(notices);  // released tokens only: the application asked
}

void PosixServer::AllowPeer(ConnId id, bool allowed) {
  ServingThread* t = ThreadOf(id);
  if (t == nullptr) return;
  Notices notices;
  {
    std::lock_guard<std::mutex> lock(t->mu);
    Conn* c = t->Find(id);
    if (c == nullptr || c->conv.phase != Phase::kPeerCheck) return;
    if (!allowed || stopping()) {
      t->CloseLocked(c, &notices);
      return;
    }
    // The request deadline starts when the serving thread reads next
    // (docs/protocol.md#limits): the time the application took to decide
    // is not the client's.
    c->conv.AllowRead();
    if (c->undecided) {
      c->undecided = false;
      UndecidedDone(c->conv.peer.uid);
    }
    t->poller()->Modify(c->fd, kPollIn, c->conv.id, false);
  }
}

// Under the owner's mu, so that the descriptor cannot be closed (and its
// number reused by another client) while getsockopt() reads it: a
// non-blocking call, the one system call this file makes under a lock.
// The kernel keeps a socket's peer credentials after the peer has gone,
// so a connection still open answers right even when its client left.
bool PosixServer::PeerOf(ConnId id, PeerInfo* peer) {
  ServingThread* t = ThreadOf(id);
  if (t == nullptr) return false;
  std::lock_guard<std::mutex> lock(t->mu);
  Conn* c = t->Find(id);
  if (c == nullptr) return false;
  *peer = t->KnownPeer(c);
  return true;
}

// ---------------------------------------------------------------------------
// Accepting on the caller's thread (docs/design.md#accepting-on-the-js-thread)

// The serving threads start with the listener; the caller takes it at its
// first CallerIdle. Not with allowPeer: a connection then waits for its
// first byte, a serving thread's job from the start.
int PosixServer::CallerListener() {
  std::lock_guard<std::mutex> lock(listener_mu_);
  if (options_.check_peer || stopping() || listener_.fd < 0) return -1;
  return fcntl(listener_.fd, F_DUPFD_CLOEXEC, 0);
}

// The caller's loop is about to wait. Taking the listener back costs one
// epoll_ctl per serving thread, and happens only after a take-over.
ListenerTurn PosixServer::CallerIdle() {
  caller_turns_.fetch_add(1, std::memory_order_relaxed);
  if (stopping()) return ListenerTurn::kLeave;
  if (caller_owns_.load(std::memory_order_acquire)) return ListenerTurn::kWatch;
  std::lock_guard<std::mutex> lock(listener_mu_);
  if (stopping()) return ListenerTurn::kLeave;
  if (caller_owns_.load(std::memory_order_relaxed)) return ListenerTurn::kWatch;
  if (caller_resume_at_ > 0 && NowMs() < caller_resume_at_) return ListenerTurn::kPause;
  caller_resume_at_ = 0;
  for (auto& t : threads_) t->poller()->Remove(listener_.fd);
  caller_owns_.store(true, std::memory_order_release);
  // Thread 0 may sleep for up to a second: it must start its checks now.
  threads_[0]->poller()->Wake();
  return ListenerTurn::kWatch;
}

ListenerTurn PosixServer::AcceptOnCaller(int max, std::vector<CallerRequest>* out) {
  caller_turns_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(listener_mu_);
  if (stopping()) return ListenerTurn::kLeave;
  // A wake-up that raced a take-over: the serving threads accept now.
  if (!caller_owns_.load(std::memory_order_relaxed)) return ListenerTurn::kPause;
  if (caller_buffer_.empty()) caller_buffer_.resize(kReadBufferSize);
  for (int i = 0; i < max; i++) {
    int err = 0;
    int fd = AcceptOne(listener_.fd, &err);
    if (fd >= 0) {
      AdoptOnCaller(fd, out);
      continue;
    }
    if (err == 0) continue;
    bool nothing_at_all = i == 0 && (err == EAGAIN || err == EWOULDBLOCK);
    if (ListenerBroken(err) || (nothing_at_all && ListenerShutDown(listener_.fd))) {
      RequestStop(StopReason::kListenerFailed, options_.quit_grace_ms);
      return ListenerTurn::kLeave;
    }
    if (OutOfResources(err)) {
      // The serving threads know how to pause; the caller's loop would
      // spin on the readable listener.
      caller_resume_at_ = NowMs() + kAcceptPauseMs;
      TakeListenerFromCallerLocked();
      return ListenerTurn::kPause;
    }
    break;  // EAGAIN: drained
  }
  return ListenerTurn::kWatch;
}

// A connection the caller accepted: one read, which usually brings the
// whole request. What is not complete at once goes to a serving thread
// (round robin), which reads the rest and polices the request deadline
// from the moment of the accept; the caller never waits for a client.
void PosixServer::AdoptOnCaller(int fd, std::vector<CallerRequest>* out) {
  if (!TryOpen()) {
    dropped_too_many.fetch_add(1, std::memory_order_relaxed);
    DropOnCaller(fd, Conversation::TooManyConnectionsStatus(options_.max_connections), true);
    return;
  }
  int64_t accepted_at = NowMs();
  ServingThread* t = threads_[caller_next_thread_++ % threads_.size()].get();
  std::unique_ptr<Conn> conn(new Conn(options_.max_request_bytes));
  conn->conv.id = NewConnId(t->index());
  conn->fd = fd;
  conn->conv.peer.deferred = true;
  conn->conv.phase = Phase::kReading;
  ReadVerdict verdict;
  if (!ReadOnce(conn.get(), &caller_buffer_, &verdict)) {
    t->HandOver(std::move(conn), accepted_at);
    return;
  }
  if (verdict.kind == ReadVerdict::Kind::kNeedMore) {
    if (!ChargeRequest(&conn->buffered, conn->conv.request.size())) {
      dropped_too_large.fetch_add(1, std::memory_order_relaxed);
      DropOnCaller(fd, RequestMemory::FullStatus(options_.max_buffered_request_bytes), true);
      Closed();
      return;
    }
    t->HandOver(std::move(conn), accepted_at);
    return;
  }
  if (verdict.kind == ReadVerdict::Kind::kDrop) {
    CountDrop(verdict.counter);
    DropOnCaller(fd, verdict.why, verdict.report);
    Closed();
    return;
  }
  CallerRequest request;
  request.id = conn->conv.id;
  request.request = conn->conv.TakeRequest();
  request.peer = conn->conv.peer;
  if (!t->AdoptHandling(std::move(conn))) return;  // a stop refuses it: closed
  out->push_back(std::move(request));
}

// Closes a connection the caller accepted and has not counted in any
// table (the caller calls Closed() when it was counted open).
void PosixServer::DropOnCaller(int fd, const Status& why, bool report) {
  PeerInfo peer;
  if (report) peer = ReadPeer(fd);  // errors are rare: their peer is read
  close(fd);
  if (report) delegate_->OnClientError(why, peer);
}

// Serving thread 0: a connection waits and the caller has made no
// progress for two checks in a row (it is busy, or was descheduled): the
// serving threads take the listener until the caller's loop is idle again.
void PosixServer::WatchCaller(int64_t now) {
  if (!caller_owns_.load(std::memory_order_acquire) || now < next_caller_check_) return;
  uint64_t turns = caller_turns_.load(std::memory_order_relaxed);
  bool progress = turns != caller_turns_seen_;
  caller_turns_seen_ = turns;
  if (progress) {
    caller_suspect_ = false;
    caller_check_period_ = kCallerCheckMs;
  } else if (ListenerReadable(listener_.fd)) {
    if (caller_suspect_) {
      std::lock_guard<std::mutex> lock(listener_mu_);
      if (!stopping()) TakeListenerFromCallerLocked();
      caller_suspect_ = false;
    } else {
      caller_suspect_ = true;
    }
    caller_check_period_ = kCallerCheckMs;
  } else {
    caller_suspect_ = false;
    caller_check_period_ = std::min(caller_check_period_ * 2, kCallerQuietCheckMs);
  }
  next_caller_check_ = now + caller_check_period_;
}

// (listener_mu_) Every serving thread watches the listener again.
void PosixServer::TakeListenerFromCallerLocked() {
  if (!caller_owns_.load(std::memory_order_relaxed)) return;
  caller_owns_.store(false, std::memory_order_release);
  for (auto& t : threads_) t->poller()->Add(listener_.fd, listener_events(), kListenKey, false);
}

void PosixServer::ResumeListener(Poller* poller) {
  std::lock_guard<std::mutex> lock(listener_mu_);
  if (!stopping() && !caller_owns_.load(std::memory_order_relaxed)) {
    poller->Add(listener_.fd, listener_events(), kListenKey, false);
  }
}

ServerStats PosixServer::Stats() {
  ServerStats stats;
  for (auto& t : threads_) {
    std::lock_guard<std::mutex> lock(t->mu);
    t->CountPhasesLocked(&stats);
  }
  stats.requests = requests_served.load(std::memory_order_relaxed);
  stats.dropped_protocol = dropped_protocol.load(std::memory_order_relaxed);
  stats.dropped_too_large = dropped_too_large.load(std::memory_order_relaxed);
  stats.dropped_timeout = dropped_timeout.load(std::memory_order_relaxed);
  stats.dropped_too_many = dropped_too_many.load(std::memory_order_relaxed);
  stats.bytes_in = bytes_in.load(std::memory_order_relaxed);
  stats.bytes_out = bytes_out.load(std::memory_order_relaxed);
  stats.peer_lookups = peer_lookups.load(std::memory_order_relaxed);
  return stats;
}

void PosixServer::RequestStop(StopReason reason, uint32_t grace_ms) {
  {
    std::lock_guard<std::mutex> lock(stop_mutex_);
    stop_.Request(reason, NowMs(), grace_ms);
  }
  threads_[0]->poller()->Wake();
}

bool PosixServer::TryOpen() {
  int64_t open = open_connections_.fetch_add(1, std::memory_order_acq_rel);
  if (open < static_cast<int64_t>(options_.max_connections)) return true;
  open_connections_.fetch_sub(1, std::memory_order_acq_rel);
  return false;
}

bool PosixServer::AdmitUndecided(int64_t uid) {
  std::lock_guard<std::mutex> lock(admission_mu_);
  return undecided_.TryAdmit(uid);
}

void PosixServer::UndecidedDone(int64_t uid) {
  std::lock_guard<std::mutex> lock(admission_mu_);
  undecided_.Decided(uid);
}

bool PosixServer::ChargeRequest(size_t* held, size_t now_held) {
  std::lock_guard<std::mutex> lock(admission_mu_);
  return request_memory_.Grow(held, now_held);
}

bool PosixServer::ReadOnce(Conn* conn, std::vector<uint8_t>* buffer, ReadVerdict* verdict) {
  ssize_t n;
  do {
    n = recv(conn->fd, buffer->data(), buffer->size(), 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;
  if (n > 0) {
    bytes_in.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
    *verdict = conn->conv.Feed(buffer->data(), static_cast<size_t>(n), options_.max_request_bytes);
  } else {
    *verdict = n == 0 ? conn->conv.EndOfInput() : conn->conv.ReadFailed(Status::FromErrno(errno, "read"));
  }
  return true;
}

void PosixServer::ReleaseRequest(size_t* held) {
  std::lock_guard<std::mutex> lock(admission_mu_);
  request_memory_.Release(held);
}

void PosixServer::CountDrop(ReadVerdict::Counter counter) {
  if (counter == ReadVerdict::Counter::kProtocol) dropped_protocol.fetch_add(1, std::memory_order_relaxed);
  if (counter == ReadVerdict::Counter::kTooLarge) dropped_too_large.fetch_add(1, std::memory_order_relaxed);
}

void PosixServer::Closed() {
  if (open_connections_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  idle_since_.store(NowMs());
  // The last one: a stop waiting for it can finish now.
  if (stopping()) threads_[0]->poller()->Wake();
}

// ---------------------------------------------------------------------------
// The stop sequence and the other duties of serving thread 0

int PosixServer::CoordinatorTimeout(int64_t now) const {
  int64_t wake = next_stolen_check_;
  wake = std::min(wake, idle_.DueAt(OpenConnections(), idle_since_.load()));
  if (caller_owns_.load(std::memory_order_acquire) && !stop_begun_) wake = std::min(wake, next_caller_check_);
  if (stop_begun_) {
    std::lock_guard<std::mutex> lock(stop_mutex_);
    if (!grace_over()) wake = std::min(wake, stop_.grace_deadline);
    if (!listener_closed_) wake = std::min(wake, now + 1);  // waiting for the others to leave it
  }
  return wake <= now ? 0 : static_cast<int>(std::min<int64_t>(wake - now, 1 << 30));
}

void PosixServer::Coordinate(int64_t now) {
  if (!stop_begun_) {
    if (now >= next_stolen_check_) {
      next_stolen_check_ = now + kStolenCheckMs;
      if (ListenerPathStolen(options_.path, listener_)) RequestStop(StopReason::kStolen, options_.quit_grace_ms);
    }
    if (idle_.Due(now, OpenConnections(), idle_since_.load())) RequestStop(StopReason::kIdle, options_.quit_grace_ms);
    WatchCaller(now);
    bool requested;
    {
      std::lock_guard<std::mutex> lock(stop_mutex_);
      requested = stop_.requested;
      stop_reason_seen_ = stop_.reason;
    }
    if (!requested) return;
    BeginStop();
  }
  if (!listener_closed_ && threads_off_listener_.load(std::memory_order_acquire) == options_.threads) {
    // Nobody accepts on it any more: now its number may be reused.
    close(listener_.fd);
    listener_.fd = -1;
    listener_closed_ = true;
  }
  int64_t grace_deadline;
  {
    std::lock_guard<std::mutex> lock(stop_mutex_);
    grace_deadline = stop_.grace_deadline;
  }
  if (now >= grace_deadline && !grace_over()) AbortAllConversations();
  if (listener_closed_ && AllConnectionsClosed()) exit_.store(true, std::memory_order_release);
}

// Stops taking new connections at once (they are refused, so that clients
// retry and find the next server, or report not-listening), while the
// socket file stays until the end (docs/protocol.md#stopping). An idle stop
// first removes the path, so that nobody new can reach us, and then serves
// what is already queued: no request is lost. So does a quit or stolen
// stop once the path leads elsewhere (a replacement renamed its socket
// over it): the clients that reached us before are served, not dropped.
void PosixServer::BeginStop() {
  stop_begun_ = true;
  bool path_elsewhere = (stop_reason_seen_ == StopReason::kQuit || stop_reason_seen_ == StopReason::kStolen) &&
                        ListenerPathStolen(options_.path, listener_);
  drain_on_stop_.store(StopDrains(stop_reason_seen_, path_elsewhere), std::memory_order_release);
  {
    // After this, the caller's thread accepts no more (AcceptOnCaller
    // looks under the same lock): the listener is the serving threads'
    // to leave, drain and close.
    std::lock_guard<std::mutex> lock(listener_mu_);
    stopping_.store(true, std::memory_order_release);
  }
  if (stop_reason_seen_ == StopReason::kIdle) RemoveListenerPath(options_.path, listener_);
  // Linux refuses new connects on a shut-down listener but still lets us
  // accept the ones queued before; elsewhere the close that follows once
  // every serving thread has left it does the refusing. An inherited
  // socket is shared with its owner (systemd keeps it to start the next
  // instance): shutting it down would stop it for them too, so new
  // clients wait in its backlog for whoever serves it next.
  if (listener_.owns_path) shutdown(listener_.fd, SHUT_RD);
  for (auto& t : threads_) t->poller()->Wake();
}

bool PosixServer::AllConnectionsClosed() {
  for (auto& t : threads_) {
    std::lock_guard<std::mutex> lock(t->mu);
    if (t->CountLocked() > 0) return false;
  }
  return true;
}

// Out of patience: drop the conversations still running.
void PosixServer::AbortAllConversations() {
  grace_over_.store(true, std::memory_order_release);
  for (auto& t : threads_) {
    Notices notices;
    std::vector<ConnId> lost;
    {
      std::lock_guard<std::mutex> lock(t->mu);
      lost = t->AbortAllLocked(&notices);
    }
    t->Deliver(notices);
    for (ConnId id : lost) {
      delegate_->OnConversationLost(id, Conversation::GraceOverStatus());
    }
  }
}

// Serving thread 0, after every connection is gone.
void PosixServer::FinishStop() {
  for (auto& t : threads_) t->poller()->Wake();
  for (size_t i = 1; i < threads_.size(); i++) threads_[i]->Join();
  if (stop_reason_seen_ != StopReason::kStolen) RemoveListenerPath(options_.path, listener_);
  delegate_->OnStopped(stop_reason_seen_);
}

// ---------------------------------------------------------------------------
// ServingThread: (mu) helpers

// Closes and forgets a connection nobody is in a system call on.
void ServingThread::CloseLocked(Conn* conn, Notices* notices) {
  conn->conv.DropQueued(&notices->released);
  if (conn->undecided) server_->UndecidedDone(conn->conv.peer.uid);
  if (conn->buffered > 0) server_->ReleaseRequest(&conn->buffered);
  if (conn->registered) poller_->Forget(conn->fd, conn->conv.id);
  close(conn->fd);
  conns_.erase(conn->conv.id);
  server_->Closed();
}

// The connection's credentials, read from its socket on first use
// (docs/design.md#the-posix-server: most handlers never look). The caller
// holds mu, or is the serving thread before the request is handed over.
const PeerInfo& ServingThread::KnownPeer(Conn* conn) {
  if (!conn->peer_known) {
    conn->conv.peer = server_->ReadPeer(conn->fd);
    conn->peer_known = true;
  }
  return conn->conv.peer;
}

// Ends a conversation without the flush. Returns true the first time.
bool ServingThread::AbortLocked(Conn* conn, Notices* notices) {
  bool first = conn->conv.Abort();
  // A thread in sendmsg() reads the queued buffers without the lock: it
  // closes the connection itself when it sees `aborted`.
  if (!conn->busy) CloseLocked(conn, notices);
  return first;
}

// Queues what a Reply could not write at once (`already_sent` framed bytes
// of it went out), and makes sure the serving thread writes it.
ReplyOutcome ServingThread::QueueLocked(Conn* conn, const ReplyChunk& chunk, size_t already_sent) {
  ReplyOutcome outcome = conn->conv.Queue(chunk, Conversation::FrameCopy(chunk), already_sent);
  if (conn->busy || conn->conv.write_waiting) return outcome;  // its writer carries on
  conn->conv.WaitForPeer(NowMs());
  if (conn->registered) {
    poller_->Modify(conn->fd, kPollOut, conn->conv.id, true);
  } else {
    conn->registered = true;
    poller_->Add(conn->fd, kPollOut, conn->conv.id, true);
  }
  return outcome;
}

// The flush went out: the conversation is complete.
void ServingThread::FinishLocked(Conn* conn, Notices* notices) {
  notices->quit = conn->conv.quit;
  server_->requests_served.fetch_add(1, std::memory_order_relaxed);
  CloseLocked(conn, notices);
}

void ServingThread::WatchLocked(Conn* conn) {
  if (conn->registered) return;  // already watched (or writing)
  conn->registered = true;
  poller_->Add(conn->fd, 0, conn->conv.id, true);
}

void ServingThread::CountPhasesLocked(ServerStats* stats) const {
  for (auto& kv : conns_) {
    CountConnection(kv.second->conv.phase, stats);
  }
  for (auto& handed : handed_over_) CountConnection(handed.first->conv.phase, stats);
}

bool ServingThread::AdoptHandling(std::unique_ptr<Conn> conn) {
  std::unique_lock<std::mutex> lock(mu);
  if (server_->refuses_new_requests()) {
    lock.unlock();
    close(conn->fd);
    server_->Closed();
    return false;
  }
  ConnId id = conn->conv.id;
  conns_.emplace(id, std::move(conn));
  return true;
}

void ServingThread::HandOver(std::unique_ptr<Conn> conn, int64_t accepted_at) {
  {
    std::lock_guard<std::mutex> lock(mu);
    handed_over_.emplace_back(std::move(conn), accepted_at);
  }
  poller_->Wake();
}

// Serving thread: the connections the caller handed over become ours,
// their request deadline counted from their accept.
void ServingThread::AdoptHandedOver() {
  std::vector<std::pair<std::unique_ptr<Conn>, int64_t>> handed;
  std::vector<Conn*> adopted;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (handed_over_.empty()) return;
    handed.swap(handed_over_);
    for (auto& h : handed) {
      Conn* conn = h.first.get();
      StartRequestClock(conn, h.second);
      conns_.emplace(conn->conv.id, std::move(h.first));
      adopted.push_back(conn);
    }
  }
  if (!on_listener_ && server_->drop_unstarted_on_stop()) {
    DropUnstartedAll();  // handed over just before a stop that drops them
    return;
  }
  for (Conn* conn : adopted) ReadRequest(conn);
}

// Aborts every conversation in the application's hands; returns the ids
// reported lost.
std::vector<ConnId> ServingThread::AbortAllLocked(Notices* notices) {
  std::vector<Conn*> handling;
  for (auto& kv : conns_) {
    if (kv.second->conv.phase == Phase::kHandling) handling.push_back(kv.second.get());
  }
  std::vector<ConnId> lost;
  for (Conn* c : handling) {
    ConnId id = c->conv.id;
    if (AbortLocked(c, notices)) lost.push_back(id);
  }
  return lost;
}

// Makes the delegate calls collected under the lock. Any thread.
void ServingThread::Deliver(Notices& notices) {
  notices.DeliverTo(server_->delegate());
  if (notices.quit) server_->RequestStop(StopReason::kQuit, server_->options().quit_grace_ms);
  notices = Notices{};
}

// ---------------------------------------------------------------------------
// ServingThread: the loop

void ServingThread::Run() {
  read_buffer_.resize(kReadBufferSize);
  next_stall_check_ = NowMs() + kStolenCheckMs;
  PollEvent events[128];
  while (!server_->exiting()) {
    int n = poller_->Wait(events, 128, NextTimeout(NowMs()));
    for (int i = 0; i < n; i++) Dispatch(events[i]);
    AdoptHandedOver();
    int64_t now = NowMs();
    if (server_->stopping() && on_listener_) LeaveListener();
    RunTimers(now);
    if (index_ == 0) server_->Coordinate(now);
  }
  if (index_ == 0) server_->FinishStop();
}

int ServingThread::NextTimeout(int64_t now) const {
  int64_t wake = next_stall_check_;
  if (!deadlines_.empty()) wake = std::min(wake, deadlines_.top().first);
  if (accept_resume_at_ > 0) wake = std::min(wake, accept_resume_at_);
  if (!silent_peers_.empty()) wake = std::min(wake, silent_peers_.top().first);
  int timeout = wake <= now ? 0 : static_cast<int>(std::min<int64_t>(wake - now, 1 << 30));
  if (index_ == 0) timeout = std::min(timeout, server_->CoordinatorTimeout(now));
  return timeout;
}

void ServingThread::Dispatch(const PollEvent& event) {
  if (event.key == Poller::kWakeKey) return;
  if (event.key == kListenKey) {
    if (!server_->stopping()) {
      Accept(kAcceptsPerWakeUp);
    } else if (on_listener_) {
      LeaveListener();
    }
    return;
  }
  // Connections still sending their request belong to this thread alone
  // (docs/design.md#the-posix-server): it may use them without the lock.
  Conn* c;
  Phase phase;
  {
    std::lock_guard<std::mutex> lock(mu);
    c = Find(event.key);
    if (c == nullptr) return;  // closed since the event was fetched
    phase = c->conv.phase;
  }
  switch (phase) {
    case Phase::kAwaitFirstByte:
      AwaitFirstByte(c);
      break;
    case Phase::kReading:
      ReadRequest(c);
      break;
    case Phase::kPeerCheck:  // a hang-up while the application decides:
      break;                 // noticed when the request is read
    case Phase::kHandling:
      OnHandlingEvent(event.key, event.events);
      break;
    case Phase::kIdle:     // Windows phases: a POSIX connection
    case Phase::kClosing:  // is never in them
      break;
  }
}

// Stops accepting: on a stop, the listener is left (and, but for an idle
// stop, every connection that has not reached the application dropped).
void ServingThread::LeaveListener() {
  on_listener_ = false;
  if (server_->listen_fd() >= 0) {
    if (!server_->drop_unstarted_on_stop() && index_ == 0) Accept(kMaxAcceptsOnStop);  // serve the queued ones
    poller_->Remove(server_->listen_fd());
  }
  if (server_->drop_unstarted_on_stop()) DropUnstartedAll();
  server_->ThreadLeftListener();
}

void ServingThread::DropUnstartedAll() {
  Notices notices;
  std::lock_guard<std::mutex> lock(mu);
  std::vector<Conn*> unstarted;
  for (auto& kv : conns_) {
    if (kv.second->conv.phase != Phase::kHandling) unstarted.push_back(kv.second.get());
  }
  for (Conn* c : unstarted) CloseLocked(c, &notices);
}

// Accepts up to `max_accepts` connections; fewer when the backlog runs dry
// (EAGAIN) first.
void ServingThread::Accept(int max_accepts) {
  int listen_fd = server_->listen_fd();
  for (int i = 0; i < max_accepts; i++) {
    int err = 0;
    int fd = AcceptOne(listen_fd, &err);
    if (fd >= 0) {
      Adopt(fd);
      continue;
    }
    if (err == 0) continue;
    bool nothing_at_all = i == 0 && (err == EAGAIN || err == EWOULDBLOCK);
    if ((ListenerBroken(err) || (nothing_at_all && ListenerShutDown(listen_fd))) && !server_->stopping()) {
      // Closed or shut down under us: nobody can reach us through it any
      // more. Stop (the application sees why) rather than spin or refuse
      // in silence.
      poller_->Remove(listen_fd);
      server_->RequestStop(StopReason::kListenerFailed, server_->options().quit_grace_ms);
      return;
    }
    if (OutOfResources(err)) {
      // The rest waits in the backlog. Stop watching the listener for a
      // moment, or this thread would spin. Removed, not disarmed: epoll
      // refuses EPOLL_CTL_MOD on the shared listener's EPOLLEXCLUSIVE
      // registration (EINVAL).
      poller_->Remove(listen_fd);
      accept_resume_at_ = NowMs() + kAcceptPauseMs;
    }
    return;  // EAGAIN: drained
  }
}

// A new connection: count it, then read its request at once if it is
// already there (most clients send right after connecting, and system
// calls are what a small request costs).
void ServingThread::Adopt(int fd) {
  const ServerOptions& options = server_->options();
  // Credentials cost a system call: read now only for allowPeer, which
  // needs them at once (and its per-user count needs the uid).
  PeerInfo peer;
  if (options.check_peer) peer = server_->ReadPeer(fd);
  // With allowPeer, a user may hold only its share of the connections not
  // decided on yet (docs/security.md#refused-and-undecided-peers).
  if (options.check_peer && !server_->AdmitUndecided(peer.uid)) {
    close(fd);
    server_->dropped_too_many.fetch_add(1, std::memory_order_relaxed);
    server_->delegate()->OnClientError(UndecidedPeers::OverShareStatus(peer.uid, server_->undecided_cap()), peer);
    return;
  }
  if (!server_->TryOpen()) {
    if (!options.check_peer) peer = server_->ReadPeer(fd);  // reported below; a rare path
    close(fd);
    if (options.check_peer) server_->UndecidedDone(peer.uid);
    server_->dropped_too_many.fetch_add(1, std::memory_order_relaxed);
    server_->delegate()->OnClientError(
        Conversation::TooManyConnectionsStatus(options.max_connections), peer);
    return;
  }
  std::unique_ptr<Conn> owned(new Conn(options.max_request_bytes));
  Conn* conn = owned.get();
  conn->conv.id = server_->NewConnId(index_);
  conn->fd = fd;
  conn->conv.peer = peer;
  conn->conv.peer.deferred = !options.check_peer;
  conn->peer_known = options.check_peer;
  conn->conv.phase = options.check_peer ? Phase::kAwaitFirstByte : Phase::kReading;
  conn->undecided = options.check_peer;
  StartRequestClock(conn, NowMs());
  {
    std::lock_guard<std::mutex> lock(mu);
    conns_.emplace(conn->conv.id, std::move(owned));
    if (conn->conv.phase == Phase::kAwaitFirstByte) {
      // allowPeer is asked only once a byte is there: a liveness probe
      // (connect, then hang up) never reaches the application.
      conn->registered = true;
      poller_->Add(fd, kPollIn, conn->conv.id, true);
      silent_peers_.emplace(NowMs() + kSilentPeerCheckMs, conn->conv.id);
      return;
    }
  }
  ReadRequest(conn);
}

// kAwaitFirstByte: a byte (or a hang-up) arrived; nothing is consumed.
void ServingThread::AwaitFirstByte(Conn* conn) {
  uint8_t byte;
  ssize_t n;
  do {
    n = recv(conn->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && errno == EAGAIN) {
    poller_->Modify(conn->fd, kPollIn, conn->conv.id, true);
    return;
  }
  if (n <= 0) {
    DropUnstarted(conn, Status::Ok(), false);  // a probe: close silently
    return;
  }
  StartPeerCheck(conn);
}

// Serving thread; `conn` is in kAwaitFirstByte: the application decides.
void ServingThread::StartPeerCheck(Conn* conn) {
  ConnId id = conn->conv.id;
  PeerInfo peer = conn->conv.peer;
  {
    std::lock_guard<std::mutex> lock(mu);
    // The deadline pauses while the application decides. The one-shot
    // registration stays disarmed (or, for a silent peer, fires once more
    // and is ignored: Dispatch skips kPeerCheck) until AllowPeer re-arms it.
    conn->conv.BeginPeerCheck();
  }
  server_->delegate()->OnPeerCheck(id, peer);
}

// Peers silent for kSilentPeerCheckMs are asked about without a byte: a
// refused user cannot hold connections by saying nothing
// (docs/security.md#refused-and-undecided-peers).
void ServingThread::AskSilentPeers(int64_t now) {
  while (!silent_peers_.empty() && silent_peers_.top().first <= now) {
    ConnId id = silent_peers_.top().second;
    silent_peers_.pop();
    Conn* c;
    {
      std::lock_guard<std::mutex> lock(mu);
      c = Find(id);
      if (c == nullptr || c->conv.phase != Phase::kAwaitFirstByte) continue;
    }
    StartPeerCheck(c);
  }
}

// Serving thread (owns `conn`'s deadline heap entry). A new connection,
// or one the application just allowed: the request's time starts.
void ServingThread::StartRequestClock(Conn* conn, int64_t now) {
  uint32_t timeout_ms = server_->options().request_timeout_ms;
  if (conn->conv.StartRequestClock(now, timeout_ms)) deadlines_.emplace(conn->conv.deadline, conn->conv.id);
}

// Serving thread; `conn` is in kReading.
void ServingThread::ReadRequest(Conn* conn) {
  if (conn->conv.RequestClockStopped(server_->options().request_timeout_ms)) {
    std::lock_guard<std::mutex> lock(mu);
    StartRequestClock(conn, NowMs());
  }
  for (int i = 0; i < kMaxReadsPerEvent; i++) {
    ReadVerdict verdict;
    if (!server_->ReadOnce(conn, &read_buffer_, &verdict)) break;
    if (verdict.kind == ReadVerdict::Kind::kNeedMore) {
      // Only incomplete requests are charged: one that arrives whole in
      // its first read costs no lock.
      if (server_->ChargeRequest(&conn->buffered, conn->conv.request.size())) continue;
      server_->dropped_too_large.fetch_add(1, std::memory_order_relaxed);
      DropUnstarted(conn, RequestMemory::FullStatus(server_->options().max_buffered_request_bytes), true);
      return;
    }
    if (verdict.kind == ReadVerdict::Kind::kComplete) {
      RequestComplete(conn);
    } else {
      server_->CountDrop(verdict.counter);
      DropUnstarted(conn, verdict.why, verdict.report);
    }
    return;
  }
  // Not all there yet (or out of turns): come back on readiness.
  std::lock_guard<std::mutex> lock(mu);
  if (!conn->registered) {
    conn->registered = true;
    poller_->Add(conn->fd, kPollIn, conn->conv.id, false);
  }
}

void ServingThread::RequestComplete(Conn* conn) {
  ConnId id = conn->conv.id;
  PeerInfo peer = conn->conv.peer;
  ByteBuffer request;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (server_->refuses_new_requests()) {
      // The stop began after this thread last looked (or, in an idle stop,
      // its grace is over): this conversation never reaches the handler,
      // or it would escape the grace time that ends the stop.
      Notices unused;
      CloseLocked(conn, &unused);
      return;
    }
    request = conn->conv.TakeRequest();
    if (conn->buffered > 0) server_->ReleaseRequest(&conn->buffered);  // the application's memory now
    // Only a hang-up matters from now on, and only if the application
    // keeps the conversation past its first turn (Watch): a reply written
    // at once needs no registration at all. A connection registered for
    // reading switches to a one-shot hang-up watch.
    if (conn->registered) poller_->Modify(conn->fd, 0, id, true);
  }
  // `conn` may be gone as soon as the application answers.
  server_->delegate()->OnRequest(id, std::move(request), peer);
}

// Closes a connection that has not reached the application.
void ServingThread::DropUnstarted(Conn* conn, const Status& why, bool report) {
  Notices notices;
  PeerInfo peer;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (report) peer = KnownPeer(conn);  // errors are rare: their peer is read
    CloseLocked(conn, &notices);
  }
  if (report) server_->delegate()->OnClientError(why, peer);
}

// A one-shot event on a connection in the application's hands (or in
// kPeerCheck, whose hang-up is noticed when it is read after AllowPeer).
void ServingThread::OnHandlingEvent(ConnId id, uint32_t events) {
  Notices notices;
  notices.id = id;
  {
    std::unique_lock<std::mutex> lock(mu);
    Conn* c = FindHandling(id);
    // A busy writer sees the hang-up itself, as a failed send.
    if (c == nullptr || c->busy) return;
    if ((events & kPollOut) && c->conv.write_waiting) {
      WriteQueuedLocked(c, lock, &notices);
    } else if (events & (kPollHangup | kPollError)) {
      notices.Lose(AbortLocked(c, &notices), Conversation::ClientLeftStatus());
    }
  }
  Deliver(notices);
}

// Writes queued bytes until the socket is full, the queue is empty or this
// connection has had its turns. Called with `lock` held; drops it around
// each sendmsg().
void ServingThread::WriteQueuedLocked(Conn* c, std::unique_lock<std::mutex>& lock, Notices* notices) {
  pkt::Span spans[kMaxSendSpans];
  OutputQueue::HeaderScratch<kMaxSendSpans> headers;
  c->conv.write_waiting = false;
  for (int turn = 0; turn < kMaxWritesPerEvent; turn++) {
    size_t count = c->conv.out.Fill(spans, &headers);
    if (count == 0) {
      c->conv.out.Consume(0, &notices->written);  // only empty entries left
      break;
    }
    c->busy = true;
    int fd = c->fd;
    lock.unlock();
    ssize_t n = SendSpans(fd, spans, count, MSG_DONTWAIT);
    int err = n < 0 ? errno : 0;
    lock.lock();
    c->busy = false;
    if (c->conv.aborted) {
      CloseLocked(c, notices);
      return;
    }
    if (n < 0 && err == EAGAIN) {
      c->conv.WaitForPeer(NowMs());
      poller_->Modify(fd, kPollOut, c->conv.id, true);
      return;
    }
    if (n < 0) {
      notices->Lose(AbortLocked(c, notices), Status::FromErrno(err, "write", "client went away"));
      return;
    }
    server_->bytes_out.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
    c->conv.Wrote(static_cast<size_t>(n), &notices->written);
    if (c->conv.out.empty()) break;
  }
  if (!c->conv.out.empty()) {
    // Out of turns: the next Wait() comes back to it at once (level). The
    // stall clock keeps running from when the peer last fell behind.
    c->conv.write_waiting = true;
    poller_->Modify(c->fd, kPollOut, c->conv.id, true);
  } else if (c->conv.ended) {
    FinishLocked(c, notices);
  } else {
    // Idle until the application writes again: watch for a hang-up.
    poller_->Modify(c->fd, 0, c->conv.id, true);
  }
}

void ServingThread::RunTimers(int64_t now) {
  AskSilentPeers(now);
  if (accept_resume_at_ > 0 && now >= accept_resume_at_) {
    accept_resume_at_ = 0;
    if (on_listener_) server_->ResumeListener(poller_.get());
  }
  const ServerOptions& options = server_->options();
  while (!deadlines_.empty() && deadlines_.top().first <= now) {
    std::pair<int64_t, ConnId> due = deadlines_.top();
    deadlines_.pop();
    PeerInfo peer;
    Notices notices;
    {
      // Close under the lock that found it: a connection in kPeerCheck is
      // the application's to close too. A deadline that moved (AllowPeer
      // restarted it) or that no longer applies is stale.
      std::lock_guard<std::mutex> lock(mu);
      Conn* c = Find(due.second);
      if (c == nullptr || c->conv.deadline != due.first || !c->conv.RequestExpired(now)) continue;
      peer = KnownPeer(c);
      CloseLocked(c, &notices);
    }
    server_->dropped_timeout.fetch_add(1, std::memory_order_relaxed);
    server_->delegate()->OnClientError(Conversation::TimeoutStatus(options.request_timeout_ms), peer);
  }
  if (now >= next_stall_check_) {
    next_stall_check_ = now + kStolenCheckMs;
    DropStalledWriters(now);
  }
}

// Clients that stopped reading their response get as long as a request.
void ServingThread::DropStalledWriters(int64_t now) {
  uint32_t limit = server_->options().request_timeout_ms;
  if (limit == 0) return;
  std::vector<Notices> stalled;
  {
    std::lock_guard<std::mutex> lock(mu);
    std::vector<Conn*> candidates;
    for (auto& kv : conns_) {
      Conn* c = kv.second.get();
      if (!c->busy && c->conv.WriteStalled(now, limit)) candidates.push_back(c);
    }
    for (Conn* c : candidates) {
      Notices notices;
      notices.id = c->conv.id;
      notices.Lose(AbortLocked(c, &notices), Conversation::WriteStalledStatus());
      stalled.push_back(std::move(notices));
    }
  }
  for (Notices& notices : stalled) {
    server_->dropped_timeout.fetch_add(1, std::memory_order_relaxed);
    Deliver(notices);
  }
}

}  // namespace

Status StartServer(const ServerOptions& options, ServerDelegate* delegate, std::unique_ptr<Server>* out) {
  std::unique_ptr<PosixServer> server(new PosixServer(options, delegate));
  Status st = server->Listen();
  if (!st.ok()) return st;
  st = server->StartThreads();
  if (!st.ok()) return st;
  *out = std::move(server);
  return Status::Ok();
}

}  // namespace sipc
