// AsyncClient on POSIX: one I/O thread runs every exchange of the process
// (per addon instance) with non-blocking sockets and a Poller.
//
// Threads: the public entry points (any thread, in practice the JS thread)
// only push commands under `mutex_` and wake the loop. Everything else,
// the exchanges and their poller registrations, belongs to the loop thread.
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "../core/clock.h"
#include "exchange.h"
#include "poller.h"

namespace sipc {

namespace {

class PosixAsyncClient : public AsyncClient {
 public:
  PosixAsyncClient(ClientDelegate* delegate, std::unique_ptr<Poller> poller)
      : delegate_(delegate), poller_(std::move(poller)) {
    thread_ = std::thread([this] { Run(); });
  }

  ~PosixAsyncClient() override { Shutdown(); }

  void Start(uint64_t id, const std::string& path, std::vector<uint8_t>&& request,
             const ClientOptions& options, bool stream) override {
    Command c;
    c.kind = Command::kStart;
    c.id = id;
    c.path = path;
    c.data = std::move(request);
    c.options = options;
    c.stream = stream;
    Push(std::move(c));
  }

  void StartBorrowed(uint64_t id, const std::string& path, const uint8_t* request, size_t len,
                     const ClientOptions& options, bool stream) override {
    Command c;
    c.kind = Command::kStart;
    c.id = id;
    c.path = path;
    c.borrowed = request;
    c.borrowed_len = len;
    c.options = options;
    c.stream = stream;
    Push(std::move(c));
  }

  void StartConnect(uint64_t id, const std::string& path, const ClientOptions& options) override {
    Command c;
    c.kind = Command::kConnect;
    c.id = id;
    c.path = path;
    c.options = options;
    Push(std::move(c));
  }

  void Send(uint64_t id, std::vector<uint8_t>&& request, bool stream) override {
    Command c;
    c.kind = Command::kSend;
    c.id = id;
    c.data = std::move(request);
    c.stream = stream;
    Push(std::move(c));
  }

  void Cancel(uint64_t id, const Status& why) override {
    Command c;
    c.kind = Command::kCancel;
    c.id = id;
    c.why = why;
    Push(std::move(c));
  }

  void Shutdown() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    poller_->Wake();
    if (thread_.joinable()) thread_.join();
  }

 private:
  struct Command {
    enum Kind { kStart, kConnect, kSend, kCancel } kind = kStart;
    uint64_t id = 0;
    std::string path;
    std::vector<uint8_t> data;
    const uint8_t* borrowed = nullptr;  // kStart without a copy
    size_t borrowed_len = 0;
    ClientOptions options;
    bool stream = false;
    Status why;
  };

  struct Entry {
    std::unique_ptr<Exchange> exchange;
    bool connect_only = false;
    bool reported_connected = false;
    int registered_fd = -1;
    uint32_t registered_generation = 0;
    uint32_t registered_events = 0;
  };

  void Push(Command&& c) {
    bool wake;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      wake = commands_.empty();
      commands_.push_back(std::move(c));
    }
    // The loop drains the whole queue after every wake-up, so only the
    // first command of a batch needs to wake it.
    if (wake) poller_->Wake();
  }

  // Loop thread only.
  void Run() {
    std::vector<Command> batch;
    PollEvent events[128];
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (stopping_) break;
        batch.swap(commands_);
      }
      int64_t now = NowMs();
      for (Command& c : batch) HandleCommand(c, now);
      batch.clear();

      int timeout = -1;
      now = NowMs();
      for (auto& kv : entries_) {
        int64_t deadline = kv.second.exchange->next_deadline();
        if (deadline < 0) continue;
        int left = deadline <= now ? 0 : static_cast<int>(deadline - now);
        if (timeout < 0 || left < timeout) timeout = left;
      }
      int n = poller_->Wait(events, 128, timeout);
      now = NowMs();
      for (int i = 0; i < n; i++) {
        if (events[i].key == Poller::kWakeKey) continue;
        auto it = entries_.find(events[i].key);
        if (it == entries_.end()) continue;
        uint32_t e = events[i].events;
        int revents = ((e & kPollIn) ? POLLIN : 0) | ((e & kPollOut) ? POLLOUT : 0) |
                      ((e & (kPollHangup | kPollError)) ? (POLLHUP | POLLIN) : 0);
        Drive(it, revents, now);
      }
      // Deadlines (connect retries, timeouts).
      for (auto it = entries_.begin(); it != entries_.end();) {
        auto next = std::next(it);
        int64_t deadline = it->second.exchange->next_deadline();
        if (deadline >= 0 && deadline <= now) Drive(it, 0, now);
        it = next;
      }
    }
    entries_.clear();  // closes every socket; no delegate calls after Shutdown
  }

  void HandleCommand(Command& c, int64_t now) {
    switch (c.kind) {
      case Command::kStart:
      case Command::kConnect: {
        Entry entry;
        entry.exchange.reset(new Exchange(std::move(c.path), c.options, c.stream));
        entry.connect_only = c.kind == Command::kConnect;
        if (c.borrowed != nullptr) {
          entry.exchange->SetBorrowedRequest(c.borrowed, c.borrowed_len);
        } else if (!entry.connect_only) {
          entry.exchange->SetFramedRequest(std::move(c.data));
        }
        auto it = entries_.emplace(c.id, std::move(entry)).first;
        Drive(it, 0, now);
        break;
      }
      case Command::kSend: {
        auto it = entries_.find(c.id);
        if (it == entries_.end()) return;
        Exchange* ex = it->second.exchange.get();
        if (ex->phase() != Exchange::Phase::kIdle) return;
        ex->SetFramedRequest(std::move(c.data));
        it->second.connect_only = false;
        (void)c.stream;
        Drive(it, 0, now);
        break;
      }
      case Command::kCancel: {
        auto it = entries_.find(c.id);
        if (it == entries_.end()) return;
        it->second.exchange->Fail(c.why);
        Drive(it, 0, now);
        break;
      }
    }
  }

  // Steps one exchange, keeps its poller registration in step, reports.
  void Drive(std::unordered_map<uint64_t, Entry>::iterator it, int revents, int64_t now) {
    uint64_t id = it->first;
    Entry& entry = it->second;
    Exchange* ex = entry.exchange.get();
    ex->Step(revents, now);

    if (ex->stream() && !ex->response().empty()) {
      const ByteBuffer& bytes = ex->response();
      delegate_->OnChunk(id, std::vector<uint8_t>(bytes.data(), bytes.data() + bytes.size()));
      ex->response().Clear();
    }
    if (ex->done()) {
      // The exchange closed its socket, which also ended its registration
      // (with epoll; the poll() backend is told).
      if (entry.registered_fd >= 0) poller_->Forget(entry.registered_fd);
      ByteBuffer response(std::move(ex->response()));
      ClientResult result = ex->result();
      entries_.erase(it);
      delegate_->OnComplete(id, result, std::move(response));
      return;
    }
    if (entry.connect_only && !entry.reported_connected && ex->phase() == Exchange::Phase::kIdle) {
      entry.reported_connected = true;
      delegate_->OnConnected(id);
    }
    UpdateRegistration(id, &entry);
  }

  void UpdateRegistration(uint64_t id, Entry* entry) {
    Exchange* ex = entry->exchange.get();
    int fd = ex->fd();
    uint32_t want = 0;
    short events = ex->wanted_events();
    if (events & POLLIN) want |= kPollIn;
    if (events & POLLOUT) want |= kPollOut;
    bool same_socket = fd >= 0 && fd == entry->registered_fd &&
                       ex->fd_generation() == entry->registered_generation;
    if (!same_socket && entry->registered_fd >= 0) {
      // The old socket is closed: epoll dropped its registration by itself.
      poller_->Forget(entry->registered_fd);
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
  std::unordered_map<uint64_t, Entry> entries_;  // loop thread only
};

}  // namespace

std::unique_ptr<AsyncClient> CreateAsyncClient(ClientDelegate* delegate) {
  std::unique_ptr<Poller> poller = Poller::Create();
  if (!poller) return nullptr;
  return std::unique_ptr<AsyncClient>(new PosixAsyncClient(delegate, std::move(poller)));
}

}  // namespace sipc
