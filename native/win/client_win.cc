// The simple-ipc clients on Windows (SPEC 5): the blocking client, the
// asynchronous client and getActiveState, over named pipes.
//
// PipeExchange runs one conversation to completion on the calling thread
// (connect with Git's rules, send, read the response) with overlapped I/O,
// and every wait in it can be ended by a cancel event and by the exchange
// deadline (timeoutMs). The synchronous client runs one on the caller's
// thread; the asynchronous client runs each exchange on a thread of its
// own, so that exchanges neither block the JS thread nor queue behind
// libuv's pool, and Cancel() only has to set an event.
#include <atomic>
#include <cerrno>
#include <functional>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <unordered_map>

#include "../core/client.h"
#include "../core/clock.h"
#include "../core/pkt_line.h"
#include "pipe_name.h"
#include "win_util.h"

namespace sipc {

namespace {

constexpr size_t kReadSize = 64 * 1024;
constexpr size_t kMaxWriteSize = 1u << 20;
// WaitNamedPipeW cannot be interrupted: wait in slices so that a cancel or
// the exchange deadline is noticed within this time.
constexpr int64_t kBusyWaitSliceMs = 50;

// Cancellation of one exchange: an event to wake its waits, and the reason.
class CancelToken {
 public:
  CancelToken() : event_(CreateEventW(nullptr, TRUE, FALSE, nullptr)) {}
  bool valid() const { return event_.valid(); }
  HANDLE event() const { return event_.get(); }

  // Any thread. The first reason wins.
  void Cancel(const Status& why) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (cancelled_) return;
    cancelled_ = true;
    why_ = why;
    SetEvent(event_.get());
  }

  Status reason() {
    std::lock_guard<std::mutex> lock(mutex_);
    return why_;
  }

 private:
  win::UniqueHandle event_;
  std::mutex mutex_;
  bool cancelled_ = false;
  Status why_;
};

class PipeExchange {
 public:
  // `cancel` may be null (the synchronous client).
  PipeExchange(std::string path, const ClientOptions& options, CancelToken* cancel)
      : path_(std::move(path)), options_(options), cancel_(cancel), start_(NowMs()) {}

  // Each step returns false once the exchange failed; result() says why.
  bool Connect();
  // Connect-only exchanges: waits until `event` is set (a request is
  // there), within the exchange deadline.
  bool WaitForRequest(HANDLE event);
  // Sends bytes that are already framed.
  bool SendFramed(const uint8_t* framed, size_t len);
  // Sends `len` payload bytes as a message, framed on the way from the
  // caller's memory (no copy of the whole message).
  bool SendMessage(const uint8_t* data, size_t len);
  // With `on_chunk`, payload is handed over as it arrives; otherwise it
  // collects in response().
  bool Receive(const std::function<void(std::vector<uint8_t>&&)>& on_chunk);

  const ClientResult& result() const { return result_; }
  ByteBuffer& response() { return response_; }

 private:
  enum class WaitResult { kDone, kCancelled, kExpired };

  // Waits for `event` (may be null) or until `until` (absolute ms, -1 for
  // none), whichever comes first; kDone for either. The exchange deadline
  // and the cancel event end the wait early.
  WaitResult Wait(HANDLE event, int64_t until);
  int64_t exchange_deadline() const { return options_.timeout_ms >= 0 ? start_ + options_.timeout_ms : -1; }
  bool Interrupted(WaitResult w) { return w == WaitResult::kCancelled ? Fail(cancel_->reason()) : FailTimeout(); }
  bool Fail(const Status& status) {
    pipe_.reset();
    result_.status = status;
    return false;
  }
  bool FailTimeout() {
    return Fail(Status::Lib(LibCode::kTimeout, "after " + std::to_string(options_.timeout_ms) + " ms"));
  }
  bool FailConnect(ActiveState state, const Status& status) {
    result_.connect_state = state;
    return Fail(status);
  }
  // One overlapped read or write, waited for. False when interrupted (the
  // operation is cancelled and the exchange failed); otherwise `*error`
  // is the operation's own result.
  bool Transfer(bool write, void* data, DWORD len, DWORD* done, DWORD* error);

  std::string path_;
  ClientOptions options_;
  CancelToken* cancel_;
  int64_t start_;
  std::wstring name_;
  win::UniqueHandle pipe_;
  win::UniqueHandle io_event_;
  pkt::Reader reader_;
  ByteBuffer response_;
  ClientResult result_;
};

PipeExchange::WaitResult PipeExchange::Wait(HANDLE event, int64_t until) {
  int64_t expires = exchange_deadline();
  int64_t deadline = until;
  if (expires >= 0 && (deadline < 0 || expires < deadline)) deadline = expires;
  HANDLE handles[2];
  DWORD count = 0;
  if (event != nullptr) handles[count++] = event;
  if (cancel_ != nullptr) handles[count++] = cancel_->event();
  for (;;) {
    DWORD ms = INFINITE;
    int64_t now = NowMs();
    if (deadline >= 0) ms = deadline > now ? static_cast<DWORD>(deadline - now) : 0;
    DWORD r;
    if (count > 0) {
      r = WaitForMultipleObjects(count, handles, FALSE, ms);
    } else {
      Sleep(ms);
      r = WAIT_TIMEOUT;
    }
    if (r == WAIT_OBJECT_0 && event != nullptr) return WaitResult::kDone;
    if (r == WAIT_OBJECT_0 + count - 1 && cancel_ != nullptr) return WaitResult::kCancelled;
    if (r == WAIT_TIMEOUT) {
      if (expires >= 0 && NowMs() >= expires) return WaitResult::kExpired;
      if (until >= 0 && NowMs() >= until) return WaitResult::kDone;
      continue;  // woke a little early
    }
    // WAIT_FAILED: should not happen with valid handles.
    Sleep(1);
  }
}

bool PipeExchange::Connect() {
  Status st = win::PipeNameForPath(path_, &name_);
  if (!st.ok()) {
    st.syscall = "connect";
    return FailConnect(ActiveState::kInvalidPath, st);
  }
  io_event_.reset(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  if (!io_event_.valid()) return FailConnect(ActiveState::kOtherError, win::StatusFromWin32(GetLastError(), "CreateEvent"));
  int64_t connect_deadline = start_ + options_.connect_timeout_ms;
  for (;;) {
    if (cancel_ != nullptr && WaitForSingleObject(cancel_->event(), 0) == WAIT_OBJECT_0) return Fail(cancel_->reason());
    int64_t expires = exchange_deadline();
    if (expires >= 0 && NowMs() >= expires) return FailTimeout();

    // Identification level: the server may learn who we are (ctx.peer.sid)
    // but cannot act as us, even if someone else took the pipe name.
    HANDLE h = CreateFileW(name_.c_str(), GENERIC_READ | GENERIC_WRITE, 0, nullptr, OPEN_EXISTING,
                           FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION, nullptr);
    if (h != INVALID_HANDLE_VALUE) {
      pipe_.reset(h);
      break;
    }
    DWORD err = GetLastError();
    int64_t now = NowMs();
    if (err == ERROR_FILE_NOT_FOUND) {
      // Git: retry every 50 ms while allowed; "path-not-found" when not
      // allowed or out of time.
      if (!options_.wait_if_not_found || now + kConnectRetryMs > connect_deadline) {
        return FailConnect(ActiveState::kPathNotFound, win::StatusFromWin32(err, "connect", path_));
      }
      WaitResult w = Wait(nullptr, now + kConnectRetryMs);
      if (w != WaitResult::kDone) return Interrupted(w);
      continue;
    }
    if (err == ERROR_PIPE_BUSY) {
      // Every instance is taken: wait for one with WaitNamedPipeW, within
      // the connect timeout, then race for it again.
      if (!options_.wait_if_busy) {
        return FailConnect(ActiveState::kNotListening, win::StatusFromWin32(err, "connect", path_));
      }
      if (now >= connect_deadline) {
        return FailConnect(ActiveState::kNotListening,
                           Status::FromErrno(ETIMEDOUT, "connect",
                                             path_ + ": pipe busy for " +
                                                 std::to_string(options_.connect_timeout_ms) + " ms"));
      }
      int64_t slice = connect_deadline - now;
      if (slice > kBusyWaitSliceMs) slice = kBusyWaitSliceMs;
      if (expires >= 0 && expires - now < slice) slice = expires - now;
      if (slice < 1) slice = 1;
      if (!WaitNamedPipeW(name_.c_str(), static_cast<DWORD>(slice))) {
        DWORD wait_err = GetLastError();
        // ERROR_SEM_TIMEOUT: still busy; ERROR_FILE_NOT_FOUND: the server
        // went away, which the next CreateFileW reports. Git gives up on
        // any other error; but it comes from a pipe that changes under us
        // (a server stopping: Wine then fails with a meaningless code), so
        // look again shortly and let CreateFileW tell what is there.
        if (wait_err != ERROR_SEM_TIMEOUT && wait_err != ERROR_FILE_NOT_FOUND) {
          WaitResult w = Wait(nullptr, NowMs() + 10);
          if (w != WaitResult::kDone) return Interrupted(w);
        }
      }
      continue;
    }
    return FailConnect(ActiveState::kOtherError, win::StatusFromWin32(err, "connect", path_));
  }
  DWORD mode = PIPE_READMODE_BYTE;
  if (!SetNamedPipeHandleState(pipe_.get(), &mode, nullptr, nullptr)) {
    return FailConnect(ActiveState::kOtherError, win::StatusFromWin32(GetLastError(), "SetNamedPipeHandleState", path_));
  }
  result_.connected = true;
  return true;
}

bool PipeExchange::WaitForRequest(HANDLE event) {
  WaitResult w = Wait(event, -1);
  return w == WaitResult::kDone ? true : Interrupted(w);
}

bool PipeExchange::Transfer(bool write, void* data, DWORD len, DWORD* done, DWORD* error) {
  OVERLAPPED ov;
  ZeroMemory(&ov, sizeof(ov));
  ov.hEvent = io_event_.get();
  ResetEvent(ov.hEvent);
  BOOL ok = write ? WriteFile(pipe_.get(), data, len, nullptr, &ov) : ReadFile(pipe_.get(), data, len, nullptr, &ov);
  if (!ok) {
    DWORD err = GetLastError();
    if (err != ERROR_IO_PENDING) {
      *done = 0;
      *error = err;
      return true;
    }
  }
  WaitResult w = Wait(ov.hEvent, -1);
  if (w != WaitResult::kDone) {
    // The buffer and `ov` must outlive the operation: cancel and wait.
    CancelIoEx(pipe_.get(), &ov);
    GetOverlappedResult(pipe_.get(), &ov, done, TRUE);
    return Interrupted(w);
  }
  *error = GetOverlappedResult(pipe_.get(), &ov, done, FALSE) ? ERROR_SUCCESS : GetLastError();
  return true;
}

bool PipeExchange::SendFramed(const uint8_t* framed, size_t len) {
  size_t sent = 0;
  while (sent < len) {
    size_t left = len - sent;
    DWORD piece = static_cast<DWORD>(left < kMaxWriteSize ? left : kMaxWriteSize);
    DWORD done = 0;
    DWORD error = 0;
    if (!Transfer(true, const_cast<uint8_t*>(framed + sent), piece, &done, &error)) return false;
    if (error != ERROR_SUCCESS) return Fail(win::StatusFromWin32(error, "write", path_));
    sent += done;
  }
  return true;
}

bool PipeExchange::SendMessage(const uint8_t* data, size_t len) {
  // Headers and payload pieces are gathered into one bounded buffer per
  // WriteFile: one copy, never the whole framed message in memory.
  constexpr size_t kMaxSpans = 32;
  std::vector<uint8_t> staging;
  staging.reserve(kMaxWriteSize);
  pkt::Span spans[kMaxSpans];
  char headers[kMaxSpans / 2 + 1][pkt::kHeaderSize];
  size_t offset = 0;
  for (;;) {
    size_t count = pkt::FramedSpans(data, len, offset, spans, kMaxSpans, headers);
    if (count == 0) break;
    staging.clear();
    for (size_t i = 0; i < count && staging.size() < kMaxWriteSize; i++) {
      size_t take = spans[i].size;
      if (take > kMaxWriteSize - staging.size()) take = kMaxWriteSize - staging.size();
      staging.insert(staging.end(), spans[i].data, spans[i].data + take);
    }
    if (!SendFramed(staging.data(), staging.size())) return false;
    offset += staging.size();
  }
  return true;
}

bool PipeExchange::Receive(const std::function<void(std::vector<uint8_t>&&)>& on_chunk) {
  thread_local std::vector<uint8_t> buffer(kReadSize);
  std::vector<uint8_t> chunk;
  for (;;) {
    DWORD n = 0;
    DWORD error = 0;
    if (!Transfer(false, buffer.data(), static_cast<DWORD>(buffer.size()), &n, &error)) return false;
    if (error == ERROR_MORE_DATA) error = ERROR_SUCCESS;  // message boundary; the bytes are valid
    if (error != ERROR_SUCCESS) {
      if (error == ERROR_BROKEN_PIPE || error == ERROR_PIPE_NOT_CONNECTED || error == ERROR_NO_DATA) {
        return Fail(
            Status::Lib(LibCode::kIncompleteResponse, "server closed the connection before the flush packet"));
      }
      return Fail(win::StatusFromWin32(error, "read", path_));
    }
    if (on_chunk) {
      reader_.Feed(buffer.data(), n, &chunk);
      if (!chunk.empty()) on_chunk(std::move(chunk));
      chunk.clear();
    } else {
      reader_.Feed(buffer.data(), n, &response_);
    }
    switch (reader_.state()) {
      case pkt::Reader::State::kNeedMore:
        continue;
      case pkt::Reader::State::kDone:
        pipe_.reset();
        result_.status = Status::Ok();
        return true;
      case pkt::Reader::State::kProtocolError:
      case pkt::Reader::State::kTooLarge:
        return Fail(Status::Lib(LibCode::kProtocol, std::string(reader_.error_text()) + " in response"));
    }
  }
}

// ---------------------------------------------------------------------------
// Asynchronous client: one thread per exchange.

class WinAsyncClient : public AsyncClient {
 public:
  explicit WinAsyncClient(ClientDelegate* delegate) : delegate_(delegate) {}
  ~WinAsyncClient() override { Shutdown(); }

  void Start(uint64_t id, const std::string& path, std::vector<uint8_t>&& request, const ClientOptions& options,
             bool stream) override {
    Launch(id, path, options, true, std::move(request), nullptr, 0, stream);
  }

  void StartBorrowed(uint64_t id, const std::string& path, const uint8_t* request, size_t len,
                     const ClientOptions& options, bool stream) override {
    Launch(id, path, options, true, {}, request, len, stream);
  }

  void StartConnect(uint64_t id, const std::string& path, const ClientOptions& options) override {
    Launch(id, path, options, false, {}, nullptr, 0, false);
  }

  void Send(uint64_t id, std::vector<uint8_t>&& request, bool stream) override {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = jobs_.find(id);
    if (it == jobs_.end() || it->second->has_request) return;
    Job* job = it->second.get();
    job->request = std::move(request);
    job->stream = stream;
    job->has_request = true;
    SetEvent(job->send_event.get());
  }

  void Cancel(uint64_t id, const Status& why) override {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = jobs_.find(id);
    if (it != jobs_.end()) it->second->cancel.Cancel(why);
  }

  void Shutdown() override {
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      shutdown_ = true;
      for (auto& kv : jobs_) {
        kv.second->cancel.Cancel(Status::Lib(LibCode::kAborted, "client shut down"));
        if (kv.second->thread.joinable()) threads.push_back(std::move(kv.second->thread));
      }
      for (std::thread& t : finished_) threads.push_back(std::move(t));
      finished_.clear();
    }
    for (std::thread& t : threads) t.join();
    std::lock_guard<std::mutex> lock(mutex_);
    jobs_.clear();
  }

 private:
  struct Job {
    uint64_t id = 0;
    CancelToken cancel;
    win::UniqueHandle send_event{CreateEventW(nullptr, TRUE, FALSE, nullptr)};
    std::vector<uint8_t> request;  // (mutex_) framed
    const uint8_t* borrowed = nullptr;  // or the caller's payload, unframed,
    size_t borrowed_len = 0;            // valid until OnComplete
    bool has_request = false;      // (mutex_)
    bool stream = false;           // (mutex_)
    std::thread thread;            // (mutex_)
  };

  // Any thread (in practice the JS thread).
  void Launch(uint64_t id, const std::string& path, const ClientOptions& options, bool has_request,
              std::vector<uint8_t>&& request, const uint8_t* borrowed, size_t borrowed_len, bool stream) {
    auto job = std::make_shared<Job>();
    job->id = id;
    job->request = std::move(request);
    job->borrowed = borrowed;
    job->borrowed_len = borrowed_len;
    job->has_request = has_request;
    job->stream = stream;
    Status failed;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      // Threads that ended are joined here; they have returned or are
      // about to.
      for (std::thread& t : finished_) t.join();
      finished_.clear();
      if (shutdown_) return;
      if (!job->cancel.valid() || !job->send_event.valid()) {
        failed = win::StatusFromWin32(GetLastError(), "CreateEvent");
      } else {
        jobs_[id] = job;
        try {
          // Assigned under the lock, before the thread can look at it.
          job->thread = std::thread([this, job, path, options] { Run(job, path, options); });
        } catch (const std::system_error& e) {
          jobs_.erase(id);
          failed = Status::FromErrno(e.code().value() > 0 ? e.code().value() : EAGAIN, "CreateThread");
        }
      }
    }
    if (!failed.ok()) {
      ClientResult result;
      result.status = failed;
      result.connect_state = ActiveState::kOtherError;
      delegate_->OnComplete(id, result, ByteBuffer());
    }
  }

  // Exchange thread.
  void Run(std::shared_ptr<Job> job, const std::string& path, const ClientOptions& options) {
    PipeExchange exchange(path, options, &job->cancel);
    std::vector<uint8_t> request;
    bool stream = false;
    bool ok = exchange.Connect();
    if (ok) {
      bool connect_only;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        connect_only = !job->has_request;
      }
      if (connect_only) {
        if (!shutdown_) delegate_->OnConnected(job->id);
        ok = exchange.WaitForRequest(job->send_event.get());
      }
    }
    if (ok) {
      std::lock_guard<std::mutex> lock(mutex_);
      request.swap(job->request);
      stream = job->stream;
    }
    if (ok) {
      ok = job->borrowed != nullptr ? exchange.SendMessage(job->borrowed, job->borrowed_len)
                                    : exchange.SendFramed(request.data(), request.size());
    }
    if (ok) {
      std::vector<uint8_t>().swap(request);
      uint64_t id = job->id;
      std::function<void(std::vector<uint8_t>&&)> on_chunk;
      if (stream) {
        on_chunk = [this, id](std::vector<uint8_t>&& chunk) {
          if (!shutdown_) delegate_->OnChunk(id, std::move(chunk));
        };
      }
      exchange.Receive(on_chunk);
    }
    // Still listed in jobs_ while reporting, so that Shutdown() joins this
    // thread before it returns: no delegate call after Shutdown().
    if (!shutdown_) delegate_->OnComplete(job->id, exchange.result(), std::move(exchange.response()));
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = jobs_.find(job->id);
    if (it != jobs_.end() && it->second == job) {
      if (job->thread.joinable()) finished_.push_back(std::move(job->thread));
      jobs_.erase(it);
    }
  }

  ClientDelegate* delegate_;
  std::mutex mutex_;
  std::unordered_map<uint64_t, std::shared_ptr<Job>> jobs_;  // (mutex_)
  std::vector<std::thread> finished_;                        // (mutex_) to join
  std::atomic<bool> shutdown_{false};
};

}  // namespace

ClientResult SendCommandSync(const std::string& path, const uint8_t* request, size_t request_len,
                             const ClientOptions& options, ByteBuffer* response) {
  PipeExchange exchange(path, options, nullptr);
  if (exchange.Connect() && exchange.SendMessage(request, request_len)) exchange.Receive(nullptr);
  *response = std::move(exchange.response());
  return exchange.result();
}

// SPEC 5, as Git does it: WaitNamedPipeW with the server's default wait.
// It never connects, so the server sees nothing.
ActiveState GetActiveState(const std::string& path) {
  std::wstring name;
  if (!win::PipeNameForPath(path, &name).ok()) return ActiveState::kInvalidPath;
  if (WaitNamedPipeW(name.c_str(), NMPWAIT_USE_DEFAULT_WAIT)) return ActiveState::kListening;
  switch (GetLastError()) {
    case ERROR_SEM_TIMEOUT:
      return ActiveState::kNotListening;
    case ERROR_FILE_NOT_FOUND:
      return ActiveState::kPathNotFound;
    default:
      return ActiveState::kOtherError;
  }
}

std::unique_ptr<AsyncClient> CreateAsyncClient(ClientDelegate* delegate) {
  return std::unique_ptr<AsyncClient>(new WinAsyncClient(delegate));
}

}  // namespace sipc
