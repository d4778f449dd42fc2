// The simple-ipc clients on Windows (docs/protocol.md#windows-client): the blocking
// client, the asynchronous client and getActiveState, over named pipes.
//
// Threads:
//  - The synchronous client (PipeExchange) runs one conversation on the
//    caller's thread: connect with Git's rules, send, read, with
//    overlapped I/O waited for within the exchange deadline (timeoutMs).
//  - The asynchronous client runs every exchange of its JS environment on
//    one thread of its own that waits on one I/O completion port: pipe
//    handles are opened with FILE_FLAG_OVERLAPPED and associated with the
//    port, and reads and writes complete there. A busy or missing pipe is
//    retried by a timer on that thread (Git's 50 ms), never by a blocking
//    WaitNamedPipeW, so a thousand exchanges at once take one thread, not a
//    thousand. The JS thread only queues commands and posts one packet to
//    wake the port. Flow control too: a paused stream posts no next
//    ReadFile (the pipe fills and the server waits) until Resume(), a
//    command like the others, posts it on that thread.
//  - Both follow Git's connect rules through ConnectPolicy (core, shared
//    with POSIX): what to do after a failed CreateFileW.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "../core/client.h"
#include "../core/clock.h"
#include "../core/connect_policy.h"
#include "../core/pkt_line.h"
#include "../core/stream_flow.h"
#include "pipe_name.h"
#include "win_util.h"

namespace sipc {

namespace {

constexpr size_t kFirstReadSize = 4096;      // most responses fit
constexpr size_t kLargeReadSize = 64 * 1024;  // once a response fills a small read
constexpr size_t kMaxWriteSize = 1u << 20;    // one WriteFile at most

// ---------------------------------------------------------------------------
// Connecting: one CreateFileW attempt, and the policy after a failure.

// Identification level: the server may learn who we are (ctx.peer.sid) but
// cannot act as us, even if someone else took the pipe name.
HANDLE OpenPipe(const std::wstring& name) {
  return CreateFileW(name.c_str(), GENERIC_READ | GENERIC_WRITE, 0, nullptr, OPEN_EXISTING,
                     FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION, nullptr);
}

// Git's connect rules (retry a missing or busy pipe every 50 ms within
// connectTimeoutMs, or give up) come from ConnectPolicy, shared with the
// POSIX client; these two functions are the Windows side of it.
ConnectFailure ClassifyConnectError(DWORD error) {
  switch (error) {
    case ERROR_FILE_NOT_FOUND:
      return ConnectFailure::kNotFound;
    case ERROR_PIPE_BUSY:  // every instance taken
      return ConnectFailure::kBusy;
    default:
      return ConnectFailure::kOther;
  }
}

// The error of a connect the policy gave up on: EBUSY when not waiting
// for a busy pipe, ETIMEDOUT after waiting for one, else the Win32 error.
Status GiveUpStatus(DWORD error, const std::string& path, const ClientOptions& options) {
  if (error == ERROR_PIPE_BUSY && options.wait_if_busy) {
    return Status::FromErrno(ETIMEDOUT, "connect",
                             path + ": pipe busy for " + std::to_string(options.connect_timeout_ms) + " ms");
  }
  return win::StatusFromWin32(error, "connect", path);
}

Status TimeoutStatus(const ClientOptions& options) {
  return Status::Lib(LibCode::kTimeout, "after " + std::to_string(options.timeout_ms) + " ms");
}

Status IncompleteResponse() {
  return Status::Lib(LibCode::kIncompleteResponse, "server closed the connection before the flush packet");
}

bool IsHangUp(DWORD error) {
  return error == ERROR_BROKEN_PIPE || error == ERROR_PIPE_NOT_CONNECTED || error == ERROR_NO_DATA;
}

// Frames the next piece of an unframed payload (read from the caller's
// memory, never framed as a whole) into `staging`, at most kMaxWriteSize
// bytes; `*offset` counts framed bytes already taken. False when all of it
// was taken.
bool StageFramed(const uint8_t* data, size_t len, size_t* offset, std::vector<uint8_t>* staging) {
  constexpr size_t kMaxSpans = 32;
  pkt::Span spans[kMaxSpans];
  char headers[kMaxSpans / 2 + 1][pkt::kHeaderSize];
  size_t count = pkt::FramedSpans(data, len, *offset, spans, kMaxSpans, headers);
  if (count == 0) return false;
  staging->clear();
  for (size_t i = 0; i < count && staging->size() < kMaxWriteSize; i++) {
    size_t take = spans[i].size;
    if (take > kMaxWriteSize - staging->size()) take = kMaxWriteSize - staging->size();
    staging->insert(staging->end(), spans[i].data, spans[i].data + take);
  }
  *offset += staging->size();
  return true;
}

// ---------------------------------------------------------------------------
// Synchronous client: one exchange on the caller's thread.

class PipeExchange {
 public:
  PipeExchange(std::string path, const ClientOptions& options)
      : path_(std::move(path)), options_(options), start_(NowMs()) {}

  // Each step returns false once the exchange failed; result() says why.
  bool Connect();
  bool SendMessage(const uint8_t* data, size_t len);
  bool Receive();

  const ClientResult& result() const { return result_; }
  ByteBuffer& response() { return response_; }
  // Streams the response to `sink` as it is read instead of keeping it.
  void set_sink(ResponseSink* sink) { sink_ = sink; }

 private:
  int64_t exchange_deadline() const { return options_.timeout_ms >= 0 ? start_ + options_.timeout_ms : -1; }
  // Sleeps until `until` (absolute ms).
  static void SleepUntil(int64_t until);
  bool Fail(const Status& status) {
    pipe_.reset();
    result_.status = status;
    result_.address = path_;
    return false;
  }
  bool FailConnect(ActiveState state, const Status& status) {
    result_.connect_state = state;
    return Fail(status);
  }
  // One overlapped read or write, waited for within the exchange
  // deadline. False when the deadline passed (the exchange failed);
  // otherwise `*error` is the operation's own result.
  bool Transfer(bool write, void* data, DWORD len, DWORD* done, DWORD* error);

  std::string path_;
  ClientOptions options_;
  int64_t start_;
  std::wstring name_;
  win::UniqueHandle pipe_;
  win::UniqueHandle io_event_;
  pkt::Reader reader_;
  ByteBuffer response_;
  ResponseSink* sink_ = nullptr;
  ClientResult result_;
};

void PipeExchange::SleepUntil(int64_t until) {
  for (int64_t now = NowMs(); now < until; now = NowMs()) Sleep(static_cast<DWORD>(until - now));
}

bool PipeExchange::Connect() {
  Status st = win::PipeNameForPath(path_, &name_);
  if (!st.ok()) {
    st.syscall = "connect";
    return FailConnect(ActiveState::kInvalidPath, st);
  }
  io_event_.reset(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  if (!io_event_.valid()) return FailConnect(ActiveState::kOtherError, win::StatusFromWin32(GetLastError(), "CreateEvent"));
  ConnectPolicy policy(options_, start_, ActiveState::kPathNotFound);
  for (;;) {
    HANDLE h = OpenPipe(name_);
    if (h != INVALID_HANDLE_VALUE) {
      pipe_.reset(h);
      break;
    }
    DWORD err = GetLastError();
    int64_t now = NowMs();
    ConnectDecision d = policy.OnFailure(ClassifyConnectError(err), now);
    if (d.action == ConnectDecision::Action::kTimeout) return Fail(TimeoutStatus(options_));
    if (d.action == ConnectDecision::Action::kGiveUp) return FailConnect(d.state, GiveUpStatus(err, path_, options_));
    if (err == ERROR_PIPE_BUSY) {
      // This thread may block: WaitNamedPipeW returns as soon as an
      // instance is free, or at the retry time. Whatever it answers, the
      // next CreateFileW tells what is there.
      int64_t wait = d.retry_at_ms - now;
      if (!WaitNamedPipeW(name_.c_str(), static_cast<DWORD>(wait > 1 ? wait : 1)) && GetLastError() != ERROR_SEM_TIMEOUT) {
        SleepUntil(d.retry_at_ms);  // it failed at once: wait out the interval anyway
      }
    } else {
      SleepUntil(d.retry_at_ms);
    }
  }
  DWORD mode = PIPE_READMODE_BYTE;
  if (!SetNamedPipeHandleState(pipe_.get(), &mode, nullptr, nullptr)) {
    return FailConnect(ActiveState::kOtherError, win::StatusFromWin32(GetLastError(), "SetNamedPipeHandleState", path_));
  }
  result_.connected = true;
  return true;
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
  int64_t expires = exchange_deadline();
  DWORD wait = INFINITE;
  if (expires >= 0) {
    int64_t now = NowMs();
    wait = expires > now ? static_cast<DWORD>(expires - now) : 0;
  }
  if (WaitForSingleObject(ov.hEvent, wait) != WAIT_OBJECT_0) {
    // The buffer and `ov` must outlive the operation: cancel and wait.
    CancelIoEx(pipe_.get(), &ov);
    GetOverlappedResult(pipe_.get(), &ov, done, TRUE);
    return Fail(TimeoutStatus(options_));
  }
  *error = GetOverlappedResult(pipe_.get(), &ov, done, FALSE) ? ERROR_SUCCESS : GetLastError();
  return true;
}

bool PipeExchange::SendMessage(const uint8_t* data, size_t len) {
  std::vector<uint8_t> staging;
  staging.reserve(kMaxWriteSize);
  size_t offset = 0;
  while (StageFramed(data, len, &offset, &staging)) {
    size_t sent = 0;
    while (sent < staging.size()) {
      DWORD done = 0;
      DWORD error = 0;
      if (!Transfer(true, staging.data() + sent, static_cast<DWORD>(staging.size() - sent), &done, &error)) return false;
      if (error != ERROR_SUCCESS) return Fail(win::StatusFromWin32(error, "write", path_));
      sent += done;
    }
  }
  return true;
}

bool PipeExchange::Receive() {
  thread_local std::vector<uint8_t> buffer(kLargeReadSize);
  for (;;) {
    DWORD n = 0;
    DWORD error = 0;
    if (!Transfer(false, buffer.data(), static_cast<DWORD>(buffer.size()), &n, &error)) return false;
    if (error == ERROR_MORE_DATA) error = ERROR_SUCCESS;  // message boundary; the bytes are valid
    if (error != ERROR_SUCCESS) return Fail(IsHangUp(error) ? IncompleteResponse() : win::StatusFromWin32(error, "read", path_));
    reader_.Feed(buffer.data(), n, &response_);
    if (sink_ != nullptr && !response_.empty()) {
      sink_->OnResponseBytes(response_.data(), response_.size());
      response_.Clear();
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
// Asynchronous client: every exchange on one completion-port thread.

// Completion keys: I/O of a pipe, or a wake-up posted by the JS thread.
constexpr ULONG_PTR kIoKey = 0;
constexpr ULONG_PTR kWakeKey = 1;
// Packets handled before timers and commands are looked at again.
constexpr int kMaxPacketsPerRound = 256;

struct Conversation;

struct IoOp {
  OVERLAPPED ov;  // first member: the completion packet carries &ov
  Conversation* conversation;
  bool write;
};

// One exchange. Loop thread only, from Start to its end.
struct Conversation {
  enum class Phase { kConnecting, kIdle, kWriting, kReading, kOver };

  uint64_t id = 0;
  std::string path;
  ClientOptions options;
  bool stream = false;
  bool connect_only = false;
  Phase phase = Phase::kConnecting;
  int64_t start = 0;
  int64_t retry_at = -1;  // next connect attempt (kConnecting)
  ConnectPolicy policy{ClientOptions(), 0};
  std::wstring name;
  HANDLE pipe = INVALID_HANDLE_VALUE;
  int pending = 0;  // operations started whose packet has not come yet
  IoOp write_op{};
  IoOp read_op{};
  // A ReadFile whose packet has not come yet. A paused stream (`flow`)
  // posts no next read; Resume() posts it unless one is still out.
  bool read_in_flight = false;
  StreamFlow flow;

  std::vector<uint8_t> framed;        // owned request, framed
  const uint8_t* borrowed = nullptr;  // or the caller's payload, unframed,
  size_t borrowed_len = 0;            // valid until OnComplete,
  size_t borrowed_offset = 0;         // framed into `staging` piece by piece
  std::vector<uint8_t> staging;       // (up to this offset so far)
  size_t sent = 0;                    // bytes of `framed` or `staging` written

  std::vector<uint8_t> read_buffer;
  pkt::Reader reader;
  ByteBuffer response;
  ClientResult result;

  Conversation() {
    write_op.conversation = read_op.conversation = this;
    write_op.write = true;
  }

  int64_t deadline() const {
    int64_t expires = options.timeout_ms >= 0 ? start + options.timeout_ms : -1;
    if (phase == Phase::kConnecting && retry_at >= 0 && (expires < 0 || retry_at < expires)) return retry_at;
    return expires;
  }
};

class WinAsyncClient : public AsyncClient {
 public:
  explicit WinAsyncClient(ClientDelegate* delegate) : delegate_(delegate) {}
  ~WinAsyncClient() override {
    Shutdown();
    if (port_ != nullptr) CloseHandle(port_);
  }

  // The port and the thread; false (and nothing running) when either
  // cannot be had.
  bool Init() {
    port_ = CreateIoCompletionPort(INVALID_HANDLE_VALUE, nullptr, 0, 1);
    if (port_ == nullptr) return false;
    try {
      thread_ = std::thread([this] { Run(); });
    } catch (const std::system_error&) {
      return false;
    }
    return true;
  }

  void Start(uint64_t id, const std::string& path, std::vector<uint8_t>&& request, const ClientOptions& options,
             bool stream) override {
    Command c(Command::kStart, id);
    c.path = path;
    c.data = std::move(request);
    c.options = options;
    c.stream = stream;
    Push(std::move(c));
  }

  void StartBorrowed(uint64_t id, const std::string& path, const uint8_t* request, size_t len,
                     const ClientOptions& options, bool stream) override {
    Command c(Command::kStart, id);
    c.path = path;
    c.borrowed = request;
    c.borrowed_len = len;
    c.options = options;
    c.stream = stream;
    Push(std::move(c));
  }

  void StartConnect(uint64_t id, const std::string& path, const ClientOptions& options) override {
    Command c(Command::kConnect, id);
    c.path = path;
    c.options = options;
    Push(std::move(c));
  }

  void Send(uint64_t id, std::vector<uint8_t>&& request, bool stream) override {
    Command c(Command::kSend, id);
    c.data = std::move(request);
    c.stream = stream;
    Push(std::move(c));
  }

  void Cancel(uint64_t id, const Status& why) override {
    Command c(Command::kCancel, id);
    c.why = why;
    Push(std::move(c));
  }

  // Flow control reaches the loop thread as commands, like the rest:
  // there, an id that is over (completed, cancelled, timed out) is gone
  // from `live_`, and the command is dropped.
  void Pause(uint64_t id) override { Push(Command(Command::kPause, id)); }
  void Resume(uint64_t id) override { Push(Command(Command::kResume, id)); }

  // Any thread but the loop's. Idempotent.
  void Shutdown() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    if (port_ != nullptr) PostQueuedCompletionStatus(port_, 0, kWakeKey, nullptr);
    if (thread_.joinable()) thread_.join();
  }

 private:
  struct Command {
    enum Kind { kStart, kConnect, kSend, kCancel, kPause, kResume } kind;
    uint64_t id;
    std::string path;
    std::vector<uint8_t> data;
    const uint8_t* borrowed = nullptr;
    size_t borrowed_len = 0;
    ClientOptions options;
    bool stream = false;
    Status why;
    Command(Kind k, uint64_t i) : kind(k), id(i) {}
  };

  // Any thread (in practice the JS thread): queue, and wake the loop with
  // one packet per batch (it takes every queued command per wake-up).
  void Push(Command&& c) {
    bool wake;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return;
      wake = commands_.empty();
      commands_.push_back(std::move(c));
    }
    if (wake) PostQueuedCompletionStatus(port_, 0, kWakeKey, nullptr);
  }

  // ---- loop thread ----
  void Run();
  DWORD NextWaitMs(int64_t now) const;
  void HandleCommands(std::vector<Command>* batch);
  void HandleCommand(Conversation* conversation, Command& c);
  void Begin(Command& c);
  // `busy`: pipe names known busy right now (skipped, and added to).
  void TryConnect(Conversation* c, std::unordered_set<std::wstring>* busy = nullptr);
  void RunTimers();
  void StartWrite(Conversation* c);
  void StartRead(Conversation* c);
  void OnIo(IoOp* op, DWORD bytes, DWORD error);
  void OnWritten(Conversation* c, DWORD bytes, DWORD error);
  void OnRead(Conversation* c, DWORD bytes, DWORD error);
  void Finish(Conversation* c, const Status& status);
  void Sweep();
  void Release(Conversation* c);
  void CloseAll();

  ClientDelegate* delegate_;
  HANDLE port_ = nullptr;
  std::thread thread_;

  std::mutex mutex_;
  std::vector<Command> commands_;  // (mutex_)
  bool stopping_ = false;          // (mutex_)

  // Loop thread only. `all_` owns every conversation until its last
  // operation completed; `live_` lists those not over yet, by id; `over_`
  // those over, until Sweep() frees them.
  std::unordered_map<Conversation*, std::unique_ptr<Conversation>> all_;
  std::unordered_map<uint64_t, Conversation*> live_;
  std::vector<Conversation*> over_;  // over, maybe with operations outstanding
};

void WinAsyncClient::Run() {
  std::vector<Command> batch;
  for (;;) {
    DWORD bytes = 0;
    ULONG_PTR key = 0;
    OVERLAPPED* ov = nullptr;
    DWORD wait = NextWaitMs(NowMs());
    for (int handled = 0; handled < kMaxPacketsPerRound; handled++) {
      BOOL ok = GetQueuedCompletionStatus(port_, &bytes, &key, &ov, wait);
      if (ov == nullptr) break;  // timed out, or a wake-up
      DWORD error = ok ? ERROR_SUCCESS : GetLastError();
      OnIo(reinterpret_cast<IoOp*>(ov), bytes, error);
      wait = 0;  // take what else is queued, then look at timers
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) break;
      batch.swap(commands_);
    }
    HandleCommands(&batch);
    RunTimers();
    Sweep();
  }
  CloseAll();
}

// Connect retries and exchange deadlines that are due. Retries go oldest
// first, and once a pipe answered busy in this pass, the others waiting
// for it count as busy too without asking again: a thousand waiters must
// not cost a thousand CreateFileW calls (and wineserver or kernel round
// trips) every 50 ms.
void WinAsyncClient::RunTimers() {
  int64_t now = NowMs();
  std::vector<Conversation*> due;
  for (auto& kv : live_) {
    int64_t at = kv.second->deadline();
    if (at >= 0 && at <= now) due.push_back(kv.second);
  }
  std::sort(due.begin(), due.end(), [](const Conversation* a, const Conversation* b) { return a->start < b->start; });
  std::unordered_set<std::wstring> busy;
  for (Conversation* c : due) {
    int64_t expires = c->options.timeout_ms >= 0 ? c->start + c->options.timeout_ms : -1;
    if (expires >= 0 && expires <= now) {
      Finish(c, TimeoutStatus(c->options));
    } else if (c->phase == Conversation::Phase::kConnecting) {
      TryConnect(c, &busy);
    }
  }
}

DWORD WinAsyncClient::NextWaitMs(int64_t now) const {
  int64_t next = -1;
  for (const auto& kv : live_) {
    int64_t at = kv.second->deadline();
    if (at >= 0 && (next < 0 || at < next)) next = at;
  }
  if (next < 0) return INFINITE;
  return next > now ? static_cast<DWORD>(next - now) : 0;
}

void WinAsyncClient::HandleCommands(std::vector<Command>* batch) {
  for (Command& c : *batch) {
    if (c.kind == Command::kStart || c.kind == Command::kConnect) {
      Begin(c);
      continue;
    }
    auto it = live_.find(c.id);
    if (it == live_.end()) continue;  // already over
    HandleCommand(it->second, c);
  }
  batch->clear();
}

// A command for a conversation that is not over yet.
void WinAsyncClient::HandleCommand(Conversation* conversation, Command& c) {
  switch (c.kind) {
    case Command::kStart:
    case Command::kConnect:
      return;  // Begin()
    case Command::kCancel:
      Finish(conversation, c.why);
      return;
    case Command::kSend:
      if (conversation->phase != Conversation::Phase::kIdle) return;
      conversation->framed = std::move(c.data);
      conversation->stream = c.stream;
      conversation->connect_only = false;
      StartWrite(conversation);
      return;
    case Command::kPause:
      conversation->flow.Pause();
      return;
    case Command::kResume:
      conversation->flow.Resume();
      // The read a pause held back; if one is still out, its completion
      // posts the next.
      if (conversation->phase == Conversation::Phase::kReading && !conversation->read_in_flight) StartRead(conversation);
      return;
  }
}

void WinAsyncClient::Begin(Command& command) {
  std::unique_ptr<Conversation> owned(new Conversation());
  Conversation* c = owned.get();
  c->id = command.id;
  c->path = std::move(command.path);
  c->options = command.options;
  c->stream = command.stream;
  c->connect_only = command.kind == Command::kConnect;
  c->framed = std::move(command.data);
  c->borrowed = command.borrowed;
  c->borrowed_len = command.borrowed_len;
  c->start = NowMs();
  c->policy = ConnectPolicy(c->options, c->start, ActiveState::kPathNotFound);
  all_.emplace(c, std::move(owned));
  live_[c->id] = c;
  Status st = win::PipeNameForPath(c->path, &c->name);
  if (!st.ok()) {
    st.syscall = "connect";
    c->result.connect_state = ActiveState::kInvalidPath;
    Finish(c, st);
    return;
  }
  TryConnect(c);
}

void WinAsyncClient::TryConnect(Conversation* c, std::unordered_set<std::wstring>* busy) {
  bool known_busy = busy != nullptr && busy->count(c->name) > 0;
  HANDLE h = known_busy ? INVALID_HANDLE_VALUE : OpenPipe(c->name);
  if (h == INVALID_HANDLE_VALUE) {
    DWORD err = known_busy ? ERROR_PIPE_BUSY : GetLastError();
    if (err == ERROR_PIPE_BUSY && busy != nullptr) busy->insert(c->name);
    ConnectDecision d = c->policy.OnFailure(ClassifyConnectError(err), NowMs());
    switch (d.action) {
      case ConnectDecision::Action::kRetry:
        c->retry_at = d.retry_at_ms;  // Run() calls again then
        return;
      case ConnectDecision::Action::kTimeout:
        Finish(c, TimeoutStatus(c->options));
        return;
      case ConnectDecision::Action::kGiveUp:
        c->result.connect_state = d.state;
        Finish(c, GiveUpStatus(err, c->path, c->options));
        return;
    }
    return;
  }
  c->pipe = h;
  DWORD mode = PIPE_READMODE_BYTE;
  if (CreateIoCompletionPort(h, port_, kIoKey, 0) == nullptr || !SetNamedPipeHandleState(h, &mode, nullptr, nullptr)) {
    c->result.connect_state = ActiveState::kOtherError;
    Finish(c, win::StatusFromWin32(GetLastError(), "connect", c->path));
    return;
  }
  c->result.connected = true;
  if (c->connect_only) {
    c->phase = Conversation::Phase::kIdle;
    delegate_->OnConnected(c->id);
    return;
  }
  StartWrite(c);
}

// Writes the request, one bounded piece at a time (an owned request from
// its own vector, a borrowed one through `staging`); then reads.
void WinAsyncClient::StartWrite(Conversation* c) {
  c->phase = Conversation::Phase::kWriting;
  const std::vector<uint8_t>* source = &c->framed;
  if (c->borrowed != nullptr) {
    source = &c->staging;
    if (c->sent == c->staging.size()) {
      c->sent = 0;
      if (!StageFramed(c->borrowed, c->borrowed_len, &c->borrowed_offset, &c->staging)) c->staging.clear();
    }
  }
  const uint8_t* data = source->data() + c->sent;
  size_t left = source->size() - c->sent;
  if (left == 0) {
    std::vector<uint8_t>().swap(c->framed);
    std::vector<uint8_t>().swap(c->staging);
    StartRead(c);
    return;
  }
  DWORD piece = static_cast<DWORD>(left < kMaxWriteSize ? left : kMaxWriteSize);
  ZeroMemory(&c->write_op.ov, sizeof(OVERLAPPED));
  c->pending++;
  if (!WriteFile(c->pipe, data, piece, nullptr, &c->write_op.ov) && GetLastError() != ERROR_IO_PENDING) {
    c->pending--;  // failed at once: no packet comes
    OnWritten(c, 0, GetLastError());
  }
}

void WinAsyncClient::OnWritten(Conversation* c, DWORD bytes, DWORD error) {
  if (c->phase != Conversation::Phase::kWriting) return;
  if (error != ERROR_SUCCESS) {
    Finish(c, win::StatusFromWin32(error, "write", c->path));
    return;
  }
  c->sent += bytes;
  StartWrite(c);
}

// Posts the next read of the response, unless the stream is paused: then
// the pipe fills up and the server waits, until Resume() calls again.
void WinAsyncClient::StartRead(Conversation* c) {
  c->phase = Conversation::Phase::kReading;
  if (!c->flow.MayRead(true)) return;
  if (c->read_buffer.empty()) c->read_buffer.resize(kFirstReadSize);
  ZeroMemory(&c->read_op.ov, sizeof(OVERLAPPED));
  c->pending++;
  c->read_in_flight = true;
  if (!ReadFile(c->pipe, c->read_buffer.data(), static_cast<DWORD>(c->read_buffer.size()), nullptr, &c->read_op.ov) &&
      GetLastError() != ERROR_IO_PENDING) {
    DWORD error = GetLastError();
    c->pending--;  // failed at once: no packet comes
    c->read_in_flight = false;
    OnRead(c, 0, error);
  }
}

void WinAsyncClient::OnRead(Conversation* c, DWORD bytes, DWORD error) {
  if (c->phase != Conversation::Phase::kReading) return;
  if (error == ERROR_MORE_DATA) error = ERROR_SUCCESS;  // message boundary; the bytes are valid
  if (error != ERROR_SUCCESS) {
    Finish(c, IsHangUp(error) ? IncompleteResponse() : win::StatusFromWin32(error, "read", c->path));
    return;
  }
  size_t size = c->read_buffer.size();
  size_t before = c->response.size();
  c->reader.Feed(c->read_buffer.data(), bytes, &c->response);
  if (c->stream && c->response.size() > before) {
    delegate_->OnChunk(c->id, std::vector<uint8_t>(c->response.data(), c->response.data() + c->response.size()));
    c->response.Clear();
  }
  switch (c->reader.state()) {
    case pkt::Reader::State::kNeedMore:
      // A response that fills small reads gets larger ones.
      if (bytes == size && size < kLargeReadSize) c->read_buffer.resize(kLargeReadSize);
      StartRead(c);
      return;
    case pkt::Reader::State::kDone:
      Finish(c, Status::Ok());
      return;
    case pkt::Reader::State::kProtocolError:
    case pkt::Reader::State::kTooLarge:
      Finish(c, Status::Lib(LibCode::kProtocol, std::string(c->reader.error_text()) + " in response"));
      return;
  }
}

void WinAsyncClient::OnIo(IoOp* op, DWORD bytes, DWORD error) {
  Conversation* c = op->conversation;
  c->pending--;
  if (op->write) {
    OnWritten(c, bytes, error);
  } else {
    c->read_in_flight = false;
    OnRead(c, bytes, error);
  }
}

// Ends the conversation and reports it. Its memory stays until the
// operations it has outstanding completed (closing the handle cancels
// them; each still delivers its packet): Sweep() frees it.
void WinAsyncClient::Finish(Conversation* c, const Status& status) {
  if (c->phase == Conversation::Phase::kOver) return;
  c->phase = Conversation::Phase::kOver;
  c->result.status = status;
  if (!status.ok()) c->result.address = c->path;
  Release(c);
  live_.erase(c->id);
  over_.push_back(c);
  ByteBuffer response;
  if (status.ok()) response.Swap(c->response);
  delegate_->OnComplete(c->id, c->result, std::move(response));
}

void WinAsyncClient::Sweep() {
  size_t kept = 0;
  for (Conversation* c : over_) {
    if (c->pending == 0) {
      all_.erase(c);
    } else {
      over_[kept++] = c;
    }
  }
  over_.resize(kept);
}

void WinAsyncClient::Release(Conversation* c) {
  if (c->pipe == INVALID_HANDLE_VALUE) return;
  if (c->pending > 0) CancelIoEx(c->pipe, nullptr);
  CloseHandle(c->pipe);
  c->pipe = INVALID_HANDLE_VALUE;
}

// Shutdown: no delegate call any more; every handle closed and every
// outstanding operation's packet taken before the memory goes.
void WinAsyncClient::CloseAll() {
  int pending = 0;
  for (auto& kv : all_) {
    Release(kv.second.get());
    pending += kv.second->pending;
  }
  while (pending > 0) {
    DWORD bytes = 0;
    ULONG_PTR key = 0;
    OVERLAPPED* ov = nullptr;
    GetQueuedCompletionStatus(port_, &bytes, &key, &ov, 1000);
    if (ov == nullptr) {
      if (key == kWakeKey) continue;
      break;  // a cancelled operation that never completes: should not happen
    }
    reinterpret_cast<IoOp*>(ov)->conversation->pending--;
    pending--;
  }
  live_.clear();
  over_.clear();
  all_.clear();
}

}  // namespace

ClientResult SendCommandSync(const std::string& path, const uint8_t* request, size_t request_len,
                             const ClientOptions& options, ByteBuffer* response) {
  PipeExchange exchange(path, options);
  if (exchange.Connect() && exchange.SendMessage(request, request_len)) exchange.Receive();
  *response = std::move(exchange.response());
  return exchange.result();
}

ClientResult SendCommandSyncStreaming(const std::string& path, const uint8_t* request, size_t request_len,
                                      const ClientOptions& options, ResponseSink* sink) {
  PipeExchange exchange(path, options);
  exchange.set_sink(sink);
  if (exchange.Connect() && exchange.SendMessage(request, request_len)) exchange.Receive();
  return exchange.result();
}

// docs/protocol.md#windows-active-state, as Git does it: WaitNamedPipeW
// with the server's default wait. It never
// connects, so the server sees nothing.
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
  std::unique_ptr<WinAsyncClient> client(new WinAsyncClient(delegate));
  if (!client->Init()) return nullptr;
  return std::unique_ptr<AsyncClient>(client.release());
}

}  // namespace sipc
