// AsyncClient on POSIX: exchanges start on the calling thread and finish
// on one I/O thread per addon instance.
//
// Design (docs/design.md#threads): bytes are written by the thread
// that has them when the kernel takes them at once. Start() connects
// (non-blocking) and sends the request on the calling thread (the JS
// thread), then hands the exchange to the I/O thread and registers its
// socket in the I/O thread's poller itself, so that a small exchange costs
// one thread hop (I/O thread -> JS, batched) instead of two: the loop is
// not woken just to connect and send. Everything that can wait stays on
// the I/O thread: connect retries, the rest of a request the kernel did
// not take, reading the response, deadlines.
//
// Threads and ownership:
//  - Public entry points: any one thread at a time (in practice the JS
//    thread). An exchange being started belongs to that thread until it
//    is pushed onto `commands_`; from then on to the loop thread.
//  - `commands_`, `stopping_`, `wake_pending_`: guarded by `mutex_`. A
//    caller registers an adopted socket in the poller while holding
//    `mutex_`, so a loop that sees an event for an id it does not know
//    yet finds the exchange by taking the commands.
//  - `entries_`, `timers_`, poller registrations after adoption: loop
//    thread only.
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <functional>
#include <mutex>
#include <queue>
#include <thread>
#include <unordered_map>

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
  PosixAsyncClient(ClientDelegate* delegate, std::unique_ptr<Poller> poller)
      : delegate_(delegate), poller_(std::move(poller)) {
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
    exchange->Step(0, NowMs());
    if (request.kind == ClientRequest::Kind::kTransient) exchange->OwnRequest();
    StartHere(id, std::move(exchange));
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

  // Calling thread: reports what the first step brought, then hands the
  // exchange to the loop. An exchange that ends here (nothing at the
  // path, say) reports at once; the delegate queues the report, so the
  // caller is never re-entered.
  void StartHere(uint64_t id, std::unique_ptr<SocketExchange> exchange) {
    if (exchange->TakeConnectedNotice()) delegate_->OnConnected(id);
    if (exchange->done()) {
      delegate_->OnComplete(id, exchange->result(), std::move(exchange->response()));
      return;
    }
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
      int n = poller_->Wait(events, 128, NextTimeout(NowMs()));
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
      RunDueTimers(NowMs());
    }
    entries_.clear();  // closes every socket; no delegate calls after Shutdown
    std::lock_guard<std::mutex> lock(mutex_);
    commands_.clear();
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
    Entry entry;
    entry.exchange.reset(static_cast<SocketExchange*>(c.exchange.release()));
    SocketExchange* ex = entry.exchange.get();
    if (ex->registered_by_caller != 0) {
      entry.registered_fd = ex->fd();
      entry.registered_generation = ex->fd_generation();
      entry.registered_events = ex->registered_by_caller;
    }
    auto it = entries_.emplace(c.id, std::move(entry)).first;
    UpdateRegistration(c.id, &it->second);
    ScheduleTimer(c.id, &it->second);
  }

  int NextTimeout(int64_t now) const {
    if (timers_.empty()) return -1;
    int64_t left = timers_.top().at - now;
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

    if (ex->has_chunk()) delegate_->OnChunk(id, ex->TakeChunk());
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
  std::thread thread_;
  std::mutex mutex_;
  std::vector<Command> commands_;  // guarded by mutex_
  bool stopping_ = false;          // guarded by mutex_
  bool wake_pending_ = false;      // guarded by mutex_: a Wake() the loop has not answered
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
  return std::unique_ptr<AsyncClient>(new PosixAsyncClient(delegate, std::move(poller)));
}

}  // namespace sipc
