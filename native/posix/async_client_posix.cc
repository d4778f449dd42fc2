// AsyncClient on POSIX: exchanges start on the calling thread and finish
// there or on one I/O thread per addon instance.
//
// Design (docs/design.md#threads, #client): bytes are written by the
// thread that has them when the kernel takes them at once. Start()
// connects (non-blocking) and sends the request on the calling thread
// (the JS thread). A small exchange then waits on the calling thread's
// side: its socket goes into `caller_poller_`, an epoll set whose own
// descriptor the caller's event loop watches (the addon: one uv_poll_t),
// and CompleteOnCaller() reads the response there and reports it, with no
// thread hop at all. Everything that must go on while the calling thread
// is busy belongs to the I/O thread, which takes a waiting exchange over
// (core/caller_side.h says when): connect retries, the rest of a request
// the kernel did not take, large or streamed responses, deadlines.
// Without UseCallerSide() (or without epoll) every exchange goes to the
// I/O thread, its socket registered in the I/O thread's poller by the
// calling thread itself, so that the loop is not woken just to learn it.
//
// Threads and ownership (one owner per exchange at any time):
//  - Public entry points: any one thread at a time (in practice the JS
//    thread), the "calling thread". An exchange being started or stepped
//    there belongs to that thread until it is listed in `waiting_` or
//    pushed onto `commands_`.
//  - `waiting_` (with `hand_overs_`): exchanges waiting on the calling
//    thread's side, owned by nobody while listed. Whoever takes one out
//    under `mutex_` owns it: the calling thread to step it when its
//    socket is ready, the loop thread to take it over for good. A
//    descriptor leaves `caller_poller_` before its exchange goes to the
//    loop thread (epoll_ctl is thread-safe; only the calling thread
//    waits on that set).
//  - `commands_`, `stopping_`, `wake_pending_`, `loop_looks_by_`,
//    `last_waiting_at_`: guarded by `mutex_`. A caller registers an
//    adopted socket in the poller while holding `mutex_`, so a loop that
//    sees an event for an id it does not know yet finds the exchange by
//    taking the commands.
//  - `entries_`, `timers_`, poller registrations after adoption: loop
//    thread only.
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <functional>
#include <mutex>
#include <limits>
#include <queue>
#include <set>
#include <thread>
#include <unordered_map>

#include "../core/caller_side.h"
#include "../core/clock.h"
#include "socket_exchange.h"
#include "poller.h"

namespace sipc {

namespace {

uint32_t ToPollerEvents(short events) {
  return ((events & POLLIN) ? kPollIn : 0) | ((events & POLLOUT) ? kPollOut : 0);
}

class PosixAsyncClient : public QueuedAsyncClient {
 public:
  // `caller_poller`: the calling thread's set (null: none).
  PosixAsyncClient(ClientDelegate* delegate, std::unique_ptr<Poller> poller, std::unique_ptr<Poller> caller_poller)
      : delegate_(delegate), poller_(std::move(poller)), caller_poller_(std::move(caller_poller)) {
    thread_ = std::thread([this] { Run(); });
  }

  ~PosixAsyncClient() override { Shutdown(); }

  // Calling thread: connects and sends right here, then hands the
  // exchange to the loop. Usually the kernel takes the whole request at
  // once; a transient request is copied only when it did not (a connect
  // still in progress or retried, a full socket).
  void Start(uint64_t id, const std::string& path, const ClientRequest& request, const ClientOptions& options,
             bool stream) override {
    std::unique_ptr<SocketExchange> exchange(new SocketExchange(path, options, stream));
    exchange->SetRequest(request);
    int64_t now = NowMs();
    exchange->Step(0, now);
    if (request.kind == ClientRequest::Kind::kTransient) exchange->OwnRequest();
    StartHere(id, std::move(exchange), now);
  }

  int caller_fd() const override { return caller_poller_ ? caller_poller_->fd() : -1; }

  void UseCallerSide() override { use_caller_side_ = caller_poller_ != nullptr; }

  // Calling thread. Bounded: one epoll_wait (no timeout), then one Step()
  // (bounded non-blocking reads) per ready exchange.
  void CompleteOnCaller(std::vector<Completion>* done) override {
    if (!caller_poller_) return;
    PollEvent events[kMaxCallerEvents];
    int n = caller_poller_->Wait(events, kMaxCallerEvents, 0);
    if (n <= 0) return;
    int64_t now = NowMs();
    for (int i = 0; i < n; i++) {
      uint64_t id = events[i].key;
      if (id == Poller::kWakeKey) continue;
      std::unique_ptr<SocketExchange> exchange;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        exchange = TakeWaitingLocked(id);
      }
      if (!exchange) continue;  // the loop took it over since
      exchange->Step(ToRevents(events[i].events), now);
      if (!CallerSide::HandOverAfterStep(*exchange)) {
        // Over: Step() closed its socket, which left the set with it.
        done->push_back(Completion{id, exchange->result(), std::move(exchange->response())});
        continue;
      }
      if (exchange->fd() >= 0) caller_poller_->Remove(exchange->fd());
      HandToLoop(id, std::move(exchange));
    }
  }

  void Shutdown() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
      stop_requested_.store(true, std::memory_order_release);
    }
    poller_->Wake();
    if (thread_.joinable()) thread_.join();
  }

 private:
  using Command = ExchangeCommand;

  struct Entry {
    std::unique_ptr<SocketExchange> exchange;
    int registered_fd = -1;
    uint32_t registered_generation = 0;
    uint32_t registered_events = 0;
    int64_t timer_at = -1;  // the deadline this entry has in timers_, -1: none
  };
  using EntryIt = std::unordered_map<uint64_t, Entry>::iterator;

  struct Timer {
    int64_t at;
    uint64_t id;
    bool operator>(const Timer& other) const { return at > other.at; }
  };

  struct Waiting {
    std::unique_ptr<SocketExchange> exchange;
    int64_t hand_over_at;  // when the loop takes it over (CallerSide::HandOverAt)
  };
  static constexpr int kMaxCallerEvents = 64;
  static constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

  // Calling thread: reports what the first step brought, then lets the
  // exchange wait on the calling thread's side or hands it to the loop.
  // An exchange that ends here (nothing at the path, say) reports at
  // once; the delegate queues the report, so the caller is never
  // re-entered.
  void StartHere(uint64_t id, std::unique_ptr<SocketExchange> exchange, int64_t now) {
    if (exchange->TakeConnectedNotice()) delegate_->OnConnected(id);
    if (exchange->done()) {
      delegate_->OnComplete(id, exchange->result(), std::move(exchange->response()));
      return;
    }
    if (use_caller_side_ && CallerSide::WaitsOnCaller(*exchange) && WaitOnCaller(id, exchange, now)) return;
    HandToLoop(id, std::move(exchange));
  }

  // Calling thread: lists the exchange on the calling thread's side. The
  // loop is woken only when it would otherwise look too late (it was
  // asleep with nothing to take over, or the exchange's deadline comes
  // before its next look). False (the exchange still the caller's) if its
  // socket could not be registered.
  bool WaitOnCaller(uint64_t id, std::unique_ptr<SocketExchange>& exchange, int64_t now) {
    // Registered before it is listed: only this thread waits on the set,
    // and the loop takes over only what is listed.
    int fd = exchange->fd();
    if (!caller_poller_->Add(fd, kPollIn, id, false)) return false;
    int64_t at = CallerSide::HandOverAt(*exchange, now);
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) {
      exchange.reset();  // closes the socket; no report after Shutdown
      return true;
    }
    waiting_.emplace(id, Waiting{std::move(exchange), at});
    hand_overs_.emplace(at, id);
    last_waiting_at_ = now;
    if (at < loop_looks_by_) {
      loop_looks_by_ = at;
      poller_->Wake();
    }
    return true;
  }

  // With mutex_ held: takes exchange `id` off the calling thread's side
  // (null if it is not there). Its socket stays in caller_poller_: the
  // new owner removes it unless it closes it.
  std::unique_ptr<SocketExchange> TakeWaitingLocked(uint64_t id) {
    auto it = waiting_.find(id);
    if (it == waiting_.end()) return nullptr;
    std::unique_ptr<SocketExchange> exchange = std::move(it->second.exchange);
    hand_overs_.erase(std::make_pair(it->second.hand_over_at, id));
    waiting_.erase(it);
    return exchange;
  }

  // With mutex_ held: takes exchange `id` off the calling thread's side
  // for the loop (null if it is not there), its socket out of
  // caller_poller_ (epoll_ctl is safe from any thread).
  std::unique_ptr<SocketExchange> TakeForLoopLocked(uint64_t id) {
    std::unique_ptr<SocketExchange> exchange = TakeWaitingLocked(id);
    if (exchange && exchange->fd() >= 0) caller_poller_->Remove(exchange->fd());
    return exchange;
  }

  // Calling thread: the exchange is the loop's from here on.
  void HandToLoop(uint64_t id, std::unique_ptr<SocketExchange> exchange) {
    int fd = exchange->fd();
    uint32_t want = ToPollerEvents(exchange->wanted_events());
    // The loop must wake to learn a deadline; an exchange that only waits
    // for its socket is found through the socket's first event.
    bool needs_wake = fd < 0 || want == 0 || exchange->next_deadline() >= 0;
    SocketExchange* started = exchange.get();
    Command c(Command::Kind::kAdopt, id);
    c.exchange = std::move(exchange);
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;  // the exchange closes its socket; no report after Shutdown
    // Queued (and flagged) before the socket is registered: a loop that
    // sees the socket's first event finds the command. The loop cannot
    // take it while we hold the lock, so it is still ours to fill in.
    commands_.push_back(std::move(c));
    have_commands_.store(true, std::memory_order_release);
    if (fd >= 0 && want != 0 && poller_->Add(fd, want, id, false)) {
      started->registered_by_caller = want;
    } else {
      needs_wake = true;  // the loop registers it
    }
    WakeLocked(needs_wake);
  }

  void Push(Command&& c) override {
    std::lock_guard<std::mutex> lock(mutex_);
    // A command (a cancel) for an exchange waiting on the calling thread's
    // side: the loop takes it over first, then applies the command.
    if (std::unique_ptr<SocketExchange> waiting = TakeForLoopLocked(c.id)) {
      Command adopt(Command::Kind::kAdopt, c.id);
      adopt.exchange = std::move(waiting);
      commands_.push_back(std::move(adopt));
    }
    commands_.push_back(std::move(c));
    have_commands_.store(true, std::memory_order_release);
    WakeLocked(true);
  }

  // With mutex_ held. One wake per drain of the queue is enough: the loop
  // takes every command after each wake-up.
  void WakeLocked(bool needed) {
    if (!needed || wake_pending_) return;
    wake_pending_ = true;
    poller_->Wake();
  }

  // ---- loop thread ----------------------------------------------------------

  void Run() {
    PollEvent events[128];
    for (;;) {
      if (!TakeCommands()) break;
      int n = poller_->Wait(events, 128, NextTimeout(NowMs(), LookAtCallerSideBy(NowMs())));
      int64_t now = NowMs();
      bool took = false;
      for (int i = 0; i < n; i++) {
        if (events[i].key == Poller::kWakeKey) continue;
        auto it = entries_.find(events[i].key);
        if (it == entries_.end() && !took) {
          // Registered by a caller whose command we have not taken yet.
          took = true;
          if (!TakeCommands()) break;
          it = entries_.find(events[i].key);
        }
        if (it == entries_.end()) continue;
        Drive(it, ToRevents(events[i].events), now);
      }
      TakeOverDue(NowMs());
      RunDueTimers(NowMs());
    }
    entries_.clear();  // closes every socket; no delegate calls after Shutdown
    std::lock_guard<std::mutex> lock(mutex_);
    commands_.clear();
    hand_overs_.clear();
    waiting_.clear();
  }

  // Loop thread, before it sleeps: when it must next look at the calling
  // thread's side (kNever: not until woken). While exchanges wait there,
  // at the first one's hand-over time; for a while after the side was
  // last busy, every CallerSide::kWaitMs, so that a run of exchanges does
  // not wake the loop for each (WaitOnCaller() wakes it only for an
  // exchange due before this).
  int64_t LookAtCallerSideBy(int64_t now) {
    if (!caller_poller_) return kNever;
    std::lock_guard<std::mutex> lock(mutex_);
    if (!hand_overs_.empty()) {
      loop_looks_by_ = hand_overs_.begin()->first;
    } else if (now - last_waiting_at_ < CallerSide::kWatchAfterEmptyMs) {
      loop_looks_by_ = now + CallerSide::kWaitMs;
    } else {
      loop_looks_by_ = kNever;
    }
    return loop_looks_by_;
  }

  // Loop thread: takes over the exchanges whose time on the calling
  // thread's side is up (core/caller_side.h): from now on they are read,
  // and their deadlines kept, whatever the calling thread is doing.
  void TakeOverDue(int64_t now) {
    if (!caller_poller_) return;
    std::vector<std::pair<uint64_t, std::unique_ptr<SocketExchange>>> due;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      while (!hand_overs_.empty() && hand_overs_.begin()->first <= now) {
        uint64_t id = hand_overs_.begin()->second;
        due.emplace_back(id, TakeForLoopLocked(id));
      }
    }
    for (auto& d : due) Own(d.first, std::move(d.second), 0);
  }

  static int ToRevents(uint32_t e) {
    return ((e & kPollIn) ? POLLIN : 0) | ((e & kPollOut) ? POLLOUT : 0) |
           ((e & (kPollHangup | kPollError)) ? (POLLHUP | POLLIN) : 0);
  }

  // False once stopping. Skips the lock when nothing was pushed since the
  // last take (the JS thread takes that lock for every exchange it starts:
  // the less the loop holds it, the less they contend). Shutdown() always
  // wakes the loop, so a stop is never missed: Wait() returns the wake key
  // and the next turn finds have_commands_ or stopping_ below.
  bool TakeCommands() {
    std::vector<Command> batch;
    {
      if (!have_commands_.load(std::memory_order_acquire) && !stop_requested_.load(std::memory_order_acquire)) {
        return true;
      }
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return false;
      batch.swap(commands_);
      have_commands_.store(false, std::memory_order_relaxed);
      wake_pending_ = false;
    }
    int64_t now = NowMs();
    for (Command& c : batch) HandleCommand(c, now);
    return true;
  }

  void HandleCommand(Command& c, int64_t now) {
    if (c.kind == Command::Kind::kAdopt) {
      Adopt(c);
      return;
    }
    auto it = entries_.find(c.id);
    if (it == entries_.end()) return;  // over already
    c.ApplyTo(it->second.exchange.get());
    Drive(it, 0, now);
  }

  // Takes over an exchange started on the calling thread, with the
  // registration that thread made.
  void Adopt(Command& c) {
    std::unique_ptr<SocketExchange> exchange(static_cast<SocketExchange*>(c.exchange.release()));
    uint32_t registered = exchange->registered_by_caller;
    Own(c.id, std::move(exchange), registered);
  }

  // `registered`: the events the calling thread registered the socket for
  // in poller_ (0: none).
  void Own(uint64_t id, std::unique_ptr<SocketExchange> exchange, uint32_t registered) {
    Entry entry;
    entry.exchange = std::move(exchange);
    SocketExchange* ex = entry.exchange.get();
    if (registered != 0) {
      entry.registered_fd = ex->fd();
      entry.registered_generation = ex->fd_generation();
      entry.registered_events = registered;
    }
    auto it = entries_.emplace(id, std::move(entry)).first;
    UpdateRegistration(id, &it->second);
    ScheduleTimer(id, &it->second);
  }

  // `look_by`: when the calling thread's side needs a look (kNever: not).
  int NextTimeout(int64_t now, int64_t look_by) const {
    int64_t at = timers_.empty() ? kNever : timers_.top().at;
    if (look_by < at) at = look_by;
    if (at == kNever) return -1;
    int64_t left = at - now;
    return left <= 0 ? 0 : static_cast<int>(left);
  }

  // Timers are checked lazily: an entry keeps at most one live timer (its
  // earliest known deadline); one that fires early is pushed again.
  void ScheduleTimer(uint64_t id, Entry* entry) {
    int64_t deadline = entry->exchange->next_deadline();
    if (deadline < 0) return;
    if (entry->timer_at >= 0 && entry->timer_at <= deadline) return;
    entry->timer_at = deadline;
    timers_.push(Timer{deadline, id});
  }

  void RunDueTimers(int64_t now) {
    while (!timers_.empty() && timers_.top().at <= now) {
      Timer timer = timers_.top();
      timers_.pop();
      auto it = entries_.find(timer.id);
      if (it == entries_.end() || it->second.timer_at != timer.at) continue;  // ended, or rescheduled
      it->second.timer_at = -1;
      int64_t deadline = it->second.exchange->next_deadline();
      if (deadline >= 0 && deadline <= now) {
        Drive(it, 0, now);
      } else {
        ScheduleTimer(timer.id, &it->second);
      }
    }
  }

  // Steps one exchange, reports what it produced, keeps its poller
  // registration and timer in step.
  void Drive(EntryIt it, int revents, int64_t now) {
    uint64_t id = it->first;
    Entry& entry = it->second;
    SocketExchange* ex = entry.exchange.get();
    ex->Step(revents, now);

    if (ex->has_chunk()) delegate_->OnChunk(id, ex->TakeChunk(), ex->ledger());
    if (ex->done()) {
      // The exchange closed its socket, which also ended its registration
      // (with epoll; the poll() backend is told). Told after the close: a
      // caller may have registered a new socket with the same number in
      // between, which Forget() with our id leaves registered.
      if (entry.registered_fd >= 0) poller_->Forget(entry.registered_fd, id);
      ByteBuffer response(std::move(ex->response()));
      ClientResult result = ex->result();
      entries_.erase(it);
      delegate_->OnComplete(id, result, std::move(response));
      return;
    }
    if (ex->TakeConnectedNotice()) delegate_->OnConnected(id);
    UpdateRegistration(id, &entry);
    ScheduleTimer(id, &entry);
  }

  void UpdateRegistration(uint64_t id, Entry* entry) {
    SocketExchange* ex = entry->exchange.get();
    int fd = ex->fd();
    // None for a paused stream: it reads nothing, its socket fills up and
    // the server sees ordinary backpressure.
    uint32_t want = ToPollerEvents(ex->wanted_events());
    bool same_socket = fd >= 0 && fd == entry->registered_fd &&
                       ex->fd_generation() == entry->registered_generation;
    if (!same_socket && entry->registered_fd >= 0) {
      // The old socket is closed: epoll dropped its registration by itself.
      // Its number may already be a caller's new socket (see Drive()).
      poller_->Forget(entry->registered_fd, id);
      entry->registered_fd = -1;
    }
    if (fd < 0 || want == 0) {
      if (entry->registered_fd >= 0) poller_->Remove(entry->registered_fd);
      entry->registered_fd = -1;
      return;
    }
    if (entry->registered_fd >= 0) {
      if (entry->registered_events != want) poller_->Modify(fd, want, id, false);
    } else {
      poller_->Add(fd, want, id, false);
    }
    entry->registered_fd = fd;
    entry->registered_generation = ex->fd_generation();
    entry->registered_events = want;
  }

  ClientDelegate* delegate_;
  std::unique_ptr<Poller> poller_;
  // The calling thread's side: registrations from either thread, Wait()
  // by the calling thread only. Null when the backend has no descriptor
  // to nest (poll()).
  std::unique_ptr<Poller> caller_poller_;
  bool use_caller_side_ = false;  // calling thread only: UseCallerSide() was called
  std::thread thread_;
  std::mutex mutex_;
  std::vector<Command> commands_;  // guarded by mutex_
  bool stopping_ = false;          // guarded by mutex_
  bool wake_pending_ = false;      // guarded by mutex_: a Wake() the loop has not answered
  // Guarded by mutex_: exchanges waiting on the calling thread's side, and
  // their hand-over times in order.
  std::unordered_map<uint64_t, Waiting> waiting_;
  std::set<std::pair<int64_t, uint64_t>> hand_overs_;
  int64_t loop_looks_by_ = kNever;                              // guarded by mutex_: the loop's next look at them
  int64_t last_waiting_at_ = std::numeric_limits<int64_t>::min() / 2;  // guarded by mutex_
  // Written under mutex_, read without it by the loop: "commands_ may be
  // non-empty" / "stopping_ is set".
  std::atomic<bool> have_commands_{false};
  std::atomic<bool> stop_requested_{false};
  std::unordered_map<uint64_t, Entry> entries_;                              // loop thread only
  std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> timers_;  // loop thread only
};

}  // namespace

std::unique_ptr<AsyncClient> CreateAsyncClient(ClientDelegate* delegate) {
  std::unique_ptr<Poller> poller = Poller::Create();
  if (!poller) return nullptr;
  // The calling thread's side needs a descriptor to nest in its event
  // loop (epoll); without one, every exchange finishes on the I/O thread.
  std::unique_ptr<Poller> caller_poller = Poller::Create();
  if (caller_poller && caller_poller->fd() < 0) caller_poller.reset();
  return std::unique_ptr<AsyncClient>(new PosixAsyncClient(delegate, std::move(poller), std::move(caller_poller)));
}

}  // namespace sipc
