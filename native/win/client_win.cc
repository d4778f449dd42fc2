// The simple-ipc clients on Windows (docs/protocol.md#windows-client): the blocking
// client, the asynchronous client and getActiveState, over named pipes.
//
// Both drive PipeExchange objects: a ClientExchange (native/core/exchange.h,
// the rules of an exchange, shared with POSIX) plus a pipe handle. They
// only do the I/O.
//
// Threads:
//  - The synchronous client (BlockingPipeClient) runs one exchange on the
//    caller's thread: connect, send, read, with overlapped I/O waited for
//    within the exchange deadline (timeoutMs).
//  - The asynchronous client runs every exchange of its JS environment on
//    one thread of its own that waits on one I/O completion port: pipe
//    handles are opened with FILE_FLAG_OVERLAPPED and associated with the
//    port, and reads and writes complete there. Connecting is not done on
//    that thread: making the pipe name touches the file system and opening
//    the pipe asks the pipe file system, so one slow connect would hold
//    every other exchange. Connect attempts run as jobs on a pool of two
//    threads of the client's own (ConnectJob) and come back to the port as
//    one packet per job. A busy or missing pipe is retried by a timer on the port thread
//    (Git's 50 ms), never by a blocking WaitNamedPipeW, so a thousand
//    exchanges at once take one thread (and one job per retry round), not
//    a thousand. The JS thread only queues commands and posts one packet to
//    wake the port. Flow control too: a paused stream, or one held at the
//    hand-over bound (core/stream_flow.h), posts no next ReadFile (the
//    pipe fills and the server waits) until Resume() or ChunksTaken(),
//    commands like the others, post it on that thread.
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
#include "../core/exchange.h"
#include "pipe_name.h"
#include "security_win.h"
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
// connectTimeoutMs, or give up) are ClientExchange's; these two functions
// are the Windows side of them.
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

bool IsHangUp(DWORD error) {
  return error == ERROR_BROKEN_PIPE || error == ERROR_PIPE_NOT_CONNECTED || error == ERROR_NO_DATA;
}

// ---------------------------------------------------------------------------
// One exchange over a pipe, and the I/O results both clients report to it.

struct PipeExchange : ClientExchange {
  PipeExchange(std::string path, const ClientOptions& options, bool stream)
      : ClientExchange(std::move(path), options, stream, ActiveState::kPathNotFound) {}

  // The pipe name for the path; false (and over) when there is none.
  bool ResolveName() {
    Status st = win::PipeNameForPath(path(), &name);
    if (!st.ok()) NoName(st);
    return st.ok();
  }

  // The path names no pipe (win::PipeNameForPath said why).
  void NoName(Status why) {
    why.syscall = "connect";
    OnConnectImpossible(ActiveState::kInvalidPath, why);
  }

  // serverUid: the user of the pipe server's process against ours
  // (CheckServerUser in the core). Any thread: no state touched.
  static Status CheckServer(const ClientOptions& options, const std::string& path, HANDLE pipe) {
    if (options.server_identity == ServerIdentity::kAny) return Status::Ok();
    std::string own;
    win::CurrentUserSid(&own);
    return CheckServerUser(options, path, win::PipeServerUserSid(pipe), own);
  }

  // A CreateFileW that failed with `error`.
  void ConnectError(DWORD error, int64_t now) {
    OnConnectFailed(ClassifyConnectError(error), GiveUpStatus(error, path(), options()), now);
  }

  // The next piece of the framed request to write: straight from an owned
  // request, else (a borrowed payload, framed on the fly) through
  // `staging`, at most kMaxWriteSize bytes. Empty once all is sent.
  pkt::Span NextWrite() {
    constexpr size_t kMaxSpans = 32;
    pkt::Span spans[kMaxSpans];
    char headers[kMaxSpans / 2 + 1][pkt::kHeaderSize];
    size_t count = SendSpans(spans, kMaxSpans, headers);
    if (count == 0) return pkt::Span{nullptr, 0};
    if (!request_borrowed()) {
      size_t piece = spans[0].size < kMaxWriteSize ? spans[0].size : kMaxWriteSize;
      return pkt::Span{spans[0].data, piece};
    }
    staging.clear();
    for (size_t i = 0; i < count && staging.size() < kMaxWriteSize; i++) {
      size_t take = spans[i].size;
      if (take > kMaxWriteSize - staging.size()) take = kMaxWriteSize - staging.size();
      staging.insert(staging.end(), spans[i].data, spans[i].data + take);
    }
    return pkt::Span{staging.data(), staging.size()};
  }

  void Written(DWORD bytes, DWORD error) {
    if (error != ERROR_SUCCESS) {
      Fail(win::StatusFromWin32(error, "write", path()));
      return;
    }
    OnSent(bytes);
  }

  void Read(const uint8_t* data, DWORD bytes, DWORD error) {
    if (error == ERROR_MORE_DATA) error = ERROR_SUCCESS;  // message boundary; the bytes are valid
    if (error == ERROR_SUCCESS) {
      OnReceived(data, bytes);
    } else if (IsHangUp(error)) {
      OnServerClosed();
    } else {
      Fail(win::StatusFromWin32(error, "read", path()));
    }
  }

  std::wstring name;
  std::vector<uint8_t> staging;  // a piece of a borrowed request, framed
};

// ---------------------------------------------------------------------------
// Synchronous client: one exchange on the caller's thread.

class BlockingPipeClient {
 public:
  // `sink` (streaming exchanges only) takes the payload of each read
  // instead of the exchange keeping it.
  explicit BlockingPipeClient(PipeExchange* exchange, ResponseSink* sink = nullptr) : ex_(exchange), sink_(sink) {}

  void Run() {
    ex_->Begin(NowMs());
    if (!Connect()) return;
    while (ex_->phase() == ClientExchange::Phase::kSend) {
      pkt::Span piece = ex_->NextWrite();
      DWORD done = 0;
      DWORD error = 0;
      if (!Transfer(true, const_cast<uint8_t*>(piece.data), static_cast<DWORD>(piece.size), &done, &error)) return;
      ex_->Written(done, error);
    }
    thread_local std::vector<uint8_t> buffer(kLargeReadSize);
    while (ex_->phase() == ClientExchange::Phase::kReceive) {
      DWORD n = 0;
      DWORD error = 0;
      if (!Transfer(false, buffer.data(), static_cast<DWORD>(buffer.size()), &n, &error)) return;
      ex_->Read(buffer.data(), n, error);
      ByteBuffer& got = ex_->response();
      if (sink_ != nullptr && !got.empty()) {
        sink_->OnResponseBytes(got.data(), got.size());
        got.Clear();
      }
    }
    pipe_.reset();
  }

 private:
  bool Connect();
  // Sleeps until `until` (absolute ms).
  static void SleepUntil(int64_t until) {
    for (int64_t now = NowMs(); now < until; now = NowMs()) Sleep(static_cast<DWORD>(until - now));
  }
  // One overlapped read or write, waited for within the exchange
  // deadline. False when the deadline passed (the exchange failed);
  // otherwise `*error` is the operation's own result.
  bool Transfer(bool write, void* data, DWORD len, DWORD* done, DWORD* error);

  PipeExchange* ex_;
  ResponseSink* sink_;
  win::UniqueHandle pipe_;
  win::UniqueHandle io_event_;
};

bool BlockingPipeClient::Connect() {
  if (!ex_->ResolveName()) return false;
  io_event_.reset(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  if (!io_event_.valid()) {
    ex_->OnConnectImpossible(ActiveState::kOtherError, win::StatusFromWin32(GetLastError(), "CreateEvent"));
    return false;
  }
  for (;;) {
    HANDLE h = OpenPipe(ex_->name);
    if (h != INVALID_HANDLE_VALUE) {
      pipe_.reset(h);
      break;
    }
    DWORD err = GetLastError();
    ex_->ConnectError(err, NowMs());
    if (ex_->phase() != ClientExchange::Phase::kRetryWait) return false;
    int64_t retry_at = ex_->next_deadline();
    if (err == ERROR_PIPE_BUSY) {
      // This thread may block: WaitNamedPipeW returns as soon as an
      // instance is free, or at the retry time. Whatever it answers, the
      // next CreateFileW tells what is there.
      int64_t wait = retry_at - NowMs();
      if (!WaitNamedPipeW(ex_->name.c_str(), static_cast<DWORD>(wait > 1 ? wait : 1)) &&
          GetLastError() != ERROR_SEM_TIMEOUT) {
        SleepUntil(retry_at);  // it failed at once: wait out the interval anyway
      }
    } else {
      SleepUntil(retry_at);
    }
    ex_->RetryNow();
  }
  DWORD mode = PIPE_READMODE_BYTE;
  if (!SetNamedPipeHandleState(pipe_.get(), &mode, nullptr, nullptr)) {
    ex_->OnConnectImpossible(ActiveState::kOtherError,
                             win::StatusFromWin32(GetLastError(), "SetNamedPipeHandleState", ex_->path()));
    return false;
  }
  ex_->OnConnected(PipeExchange::CheckServer(ex_->options(), ex_->path(), pipe_.get()));
  return ex_->phase() == ClientExchange::Phase::kSend;
}

bool BlockingPipeClient::Transfer(bool write, void* data, DWORD len, DWORD* done, DWORD* error) {
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
  int64_t expires = ex_->deadline();
  DWORD wait = INFINITE;
  if (expires >= 0) {
    int64_t now = NowMs();
    wait = expires > now ? static_cast<DWORD>(expires - now) : 0;
  }
  if (WaitForSingleObject(ov.hEvent, wait) != WAIT_OBJECT_0) {
    // The buffer and `ov` must outlive the operation: cancel and wait.
    CancelIoEx(pipe_.get(), &ov);
    GetOverlappedResult(pipe_.get(), &ov, done, TRUE);
    pipe_.reset();
    ex_->Fail(ClientExchange::TimeoutStatus(ex_->options().timeout_ms));
    return false;
  }
  *error = GetOverlappedResult(pipe_.get(), &ov, done, FALSE) ? ERROR_SUCCESS : GetLastError();
  return true;
}

// ---------------------------------------------------------------------------
// Asynchronous client: every exchange on one completion-port thread.

// Completion keys: I/O of a pipe, a wake-up posted by the JS thread, or
// the results of a ConnectJob.
constexpr ULONG_PTR kIoKey = 0;
constexpr ULONG_PTR kWakeKey = 1;
constexpr ULONG_PTR kConnectKey = 2;
// Threads of the client's own pool for connect jobs: one slow connect
// leaves the other free, and a thousand new exchanges at once do not make
// a thousand threads (the process's default pool would).
constexpr DWORD kConnectThreads = 2;
// Packets handled before timers and commands are looked at again.
constexpr int kMaxPacketsPerRound = 256;

struct Conversation;

struct IoOp {
  OVERLAPPED ov;  // first member: the completion packet carries &ov
  Conversation* conversation;
  bool write;
};

// One exchange of the asynchronous client. Made by the calling thread,
// then the loop thread's alone from its kAdopt command to its end.
struct Conversation : PipeExchange {
  Conversation(uint64_t exchange_id, std::string path, const ClientOptions& options, bool stream)
      : PipeExchange(std::move(path), options, stream), id(exchange_id) {
    write_op.conversation = read_op.conversation = this;
    write_op.write = true;
  }

  uint64_t id;
  int64_t begun = 0;  // when the loop took it: retries go oldest first
  HANDLE pipe = INVALID_HANDLE_VALUE;
  int pending = 0;  // operations started whose packet has not come yet
  IoOp write_op{};
  IoOp read_op{};
  bool write_in_flight = false;
  // A ReadFile whose packet has not come yet. A paused stream posts no
  // next read; Resume() posts it unless one is still out.
  bool read_in_flight = false;
  bool connecting = false;  // a ConnectJob has it: kept until it is back
  std::vector<uint8_t> read_buffer;
};

// The port as the connect jobs see it: they post their results there
// while the client is open, and close what they opened once it is not.
struct PortLink {
  std::mutex mutex;
  HANDLE port = nullptr;  // (mutex)
  bool open = true;       // (mutex)
};

// Connect attempts made on a thread-pool thread, in order. A job carries
// copies of what it needs, never a conversation, so the loop may end and
// free conversations while it runs; `key` is read back on the loop only.
struct ConnectAttempt {
  Conversation* key = nullptr;
  std::string path;
  std::wstring name;  // empty: make it first (win::PipeNameForPath)
  Status name_status;
  HANDLE pipe = INVALID_HANDLE_VALUE;
  DWORD error = ERROR_SUCCESS;
  ClientOptions options;  // serverUid, checked here once the pipe is open
  Status identity;
};

struct ConnectJob {
  std::shared_ptr<PortLink> link;
  std::vector<ConnectAttempt> attempts;

  // Thread-pool thread. Once a pipe answered busy in this job, the other
  // attempts for it count as busy too without asking again: a thousand
  // waiters must not cost a thousand CreateFileW calls (and wineserver or
  // kernel round trips) every 50 ms.
  static void CALLBACK Run(PTP_CALLBACK_INSTANCE, void* arg) {
    std::unique_ptr<ConnectJob> job(static_cast<ConnectJob*>(arg));
    std::unordered_set<std::wstring> busy;
    for (ConnectAttempt& a : job->attempts) {
      if (a.name.empty()) {
        a.name_status = win::PipeNameForPath(a.path, &a.name);
        if (!a.name_status.ok()) continue;
      }
      if (busy.count(a.name) > 0) {
        a.error = ERROR_PIPE_BUSY;
        continue;
      }
      a.pipe = OpenPipe(a.name);
      a.error = a.pipe == INVALID_HANDLE_VALUE ? GetLastError() : ERROR_SUCCESS;
      if (a.error == ERROR_PIPE_BUSY) busy.insert(a.name);
      if (a.pipe != INVALID_HANDLE_VALUE) a.identity = PipeExchange::CheckServer(a.options, a.path, a.pipe);
    }
    std::lock_guard<std::mutex> lock(job->link->mutex);
    if (job->link->open &&
        PostQueuedCompletionStatus(job->link->port, 0, kConnectKey, reinterpret_cast<OVERLAPPED*>(job.get()))) {
      job.release();  // the loop's now
      return;
    }
    job->CloseUnused();  // the client is gone
  }

  void CloseUnused() {
    for (ConnectAttempt& a : attempts) {
      if (a.pipe != INVALID_HANDLE_VALUE) CloseHandle(a.pipe);
      a.pipe = INVALID_HANDLE_VALUE;
    }
  }
};

class WinAsyncClient : public QueuedAsyncClient {
 public:
  explicit WinAsyncClient(ClientDelegate* delegate) : delegate_(delegate) {}
  ~WinAsyncClient() override {
    Shutdown();
    if (pool_ != nullptr) {
      // Jobs still queued or running finish on their own (the link is
      // closed: they close what they opened); the pool goes after them.
      DestroyThreadpoolEnvironment(&pool_env_);
      CloseThreadpool(pool_);
    }
    if (port_ != nullptr) CloseHandle(port_);
  }

  // The port and the thread; false (and nothing running) when either
  // cannot be had.
  bool Init() {
    port_ = CreateIoCompletionPort(INVALID_HANDLE_VALUE, nullptr, 0, 1);
    if (port_ == nullptr) return false;
    link_->port = port_;
    pool_ = CreateThreadpool(nullptr);
    if (pool_ == nullptr) return false;
    SetThreadpoolThreadMaximum(pool_, kConnectThreads);
    InitializeThreadpoolEnvironment(&pool_env_);
    SetThreadpoolCallbackPool(&pool_env_, pool_);
    try {
      thread_ = std::thread([this] { Run(); });
    } catch (const std::system_error&) {
      return false;
    }
    return true;
  }

  // Calling thread: the exchange is made here (a transient request
  // copied) and handed to the loop thread, which does all of its I/O.
  void Start(uint64_t id, const std::string& path, const ClientRequest& request, const ClientOptions& options,
             bool stream) override {
    std::unique_ptr<Conversation> c(new Conversation(id, path, options, stream));
    c->SetRequest(request);
    if (request.kind == ClientRequest::Kind::kTransient) c->OwnRequest();
    ExchangeCommand command(ExchangeCommand::Kind::kAdopt, id);
    command.exchange = std::move(c);
    Push(std::move(command));
  }

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
  // Any thread (in practice the JS thread): queue, and wake the loop with
  // one packet per batch (it takes every queued command per wake-up).
  // Flow control and cancels are commands like the rest: on the loop
  // thread, an id that is over is gone from `live_`, and its command is
  // dropped.
  void Push(ExchangeCommand&& c) override {
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
  void HandleCommands(std::vector<ExchangeCommand>* batch);
  void Adopt(ExchangeCommand& command);
  // Hands connect attempts to the thread pool, oldest first.
  void SubmitConnects(const std::vector<Conversation*>& conversations);
  void OnConnectJob(std::unique_ptr<ConnectJob> job);
  void Connected(Conversation* c, HANDLE pipe, const Status& identity);
  void RunTimers();
  // Starts what the exchange's phase asks for and reports what it brought.
  void Advance(Conversation* c);
  bool StartWrite(Conversation* c);
  bool StartRead(Conversation* c);
  void OnIo(IoOp* op, DWORD bytes, DWORD error);
  void Report(Conversation* c);
  void Sweep();
  void Release(Conversation* c);
  void CloseAll();

  ClientDelegate* delegate_;
  HANDLE port_ = nullptr;
  std::shared_ptr<PortLink> link_ = std::make_shared<PortLink>();
  PTP_POOL pool_ = nullptr;  // connect jobs (kConnectThreads)
  TP_CALLBACK_ENVIRON pool_env_;
  std::thread thread_;

  std::mutex mutex_;
  std::vector<ExchangeCommand> commands_;  // (mutex_)
  bool stopping_ = false;                  // (mutex_)

  // Loop thread only. `all_` owns every conversation until its last
  // operation completed; `live_` lists those not over yet, by id; `over_`
  // those over, until Sweep() frees them.
  std::unordered_map<Conversation*, std::unique_ptr<Conversation>> all_;
  std::unordered_map<uint64_t, Conversation*> live_;
  std::vector<Conversation*> over_;  // over, maybe with operations outstanding
};

void WinAsyncClient::Run() {
  std::vector<ExchangeCommand> batch;
  for (;;) {
    DWORD bytes = 0;
    ULONG_PTR key = 0;
    OVERLAPPED* ov = nullptr;
    DWORD wait = NextWaitMs(NowMs());
    for (int handled = 0; handled < kMaxPacketsPerRound; handled++) {
      BOOL ok = GetQueuedCompletionStatus(port_, &bytes, &key, &ov, wait);
      if (ov == nullptr) break;  // timed out, or a wake-up
      DWORD error = ok ? ERROR_SUCCESS : GetLastError();
      if (key == kConnectKey) {
        OnConnectJob(std::unique_ptr<ConnectJob>(reinterpret_cast<ConnectJob*>(ov)));
      } else {
        OnIo(reinterpret_cast<IoOp*>(ov), bytes, error);
      }
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

// Connect retries and exchange deadlines that are due. The retries of one
// pass go to the thread pool as one job, oldest first.
void WinAsyncClient::RunTimers() {
  int64_t now = NowMs();
  std::vector<Conversation*> due;
  for (auto& kv : live_) {
    int64_t at = kv.second->next_deadline();
    if (at >= 0 && at <= now) due.push_back(kv.second);
  }
  std::sort(due.begin(), due.end(), [](const Conversation* a, const Conversation* b) { return a->begun < b->begun; });
  std::vector<Conversation*> retries;
  for (Conversation* c : due) {
    if (c->Expire(now)) {
      Advance(c);
    } else if (c->RetryDue(now)) {
      retries.push_back(c);
    }
  }
  SubmitConnects(retries);
}

DWORD WinAsyncClient::NextWaitMs(int64_t now) const {
  int64_t next = -1;
  for (const auto& kv : live_) {
    int64_t at = kv.second->next_deadline();
    if (at >= 0 && (next < 0 || at < next)) next = at;
  }
  if (next < 0) return INFINITE;
  return next > now ? static_cast<DWORD>(next - now) : 0;
}

void WinAsyncClient::HandleCommands(std::vector<ExchangeCommand>* batch) {
  for (ExchangeCommand& c : *batch) {
    if (c.kind == ExchangeCommand::Kind::kAdopt) {
      Adopt(c);
      continue;
    }
    auto it = live_.find(c.id);
    if (it == live_.end()) continue;  // already over
    c.ApplyTo(it->second);
    Advance(it->second);
  }
  batch->clear();
}

void WinAsyncClient::Adopt(ExchangeCommand& command) {
  std::unique_ptr<Conversation> owned(static_cast<Conversation*>(command.exchange.release()));
  Conversation* c = owned.get();
  c->begun = NowMs();
  c->Begin(c->begun);
  all_.emplace(c, std::move(owned));
  live_[c->id] = c;
  // A job of its own: a slow file system on its path holds no one else.
  SubmitConnects({c});
}

void WinAsyncClient::SubmitConnects(const std::vector<Conversation*>& conversations) {
  if (conversations.empty()) return;
  std::unique_ptr<ConnectJob> job(new ConnectJob());
  job->link = link_;
  for (Conversation* c : conversations) {
    ConnectAttempt a;
    a.key = c;
    a.path = c->path();
    a.options = c->options();
    a.name = c->name;
    job->attempts.push_back(std::move(a));
  }
  if (!TrySubmitThreadpoolCallback(&ConnectJob::Run, job.get(), &pool_env_)) {
    Status why = win::StatusFromWin32(GetLastError(), "connect");
    for (Conversation* c : conversations) {
      c->OnConnectImpossible(ActiveState::kOtherError, why);
      Advance(c);
    }
    return;
  }
  for (Conversation* c : conversations) c->connecting = true;
  job.release();  // ConnectJob::Run's now
}

// The results of a job, in its order. A conversation that ended meanwhile
// (cancelled, timed out) closes the pipe it was given.
void WinAsyncClient::OnConnectJob(std::unique_ptr<ConnectJob> job) {
  for (ConnectAttempt& a : job->attempts) {
    Conversation* c = a.key;
    c->connecting = false;
    if (c->done()) continue;
    if (!a.name_status.ok()) {
      c->NoName(a.name_status);
    } else if (a.pipe == INVALID_HANDLE_VALUE) {
      c->name = a.name;
      c->ConnectError(a.error, NowMs());  // a retry: RunTimers() submits it then
    } else {
      c->name = a.name;
      Connected(c, a.pipe, a.identity);
      a.pipe = INVALID_HANDLE_VALUE;
    }
    Advance(c);
  }
  job->CloseUnused();
}

void WinAsyncClient::Connected(Conversation* c, HANDLE h, const Status& identity) {
  c->pipe = h;
  DWORD mode = PIPE_READMODE_BYTE;
  if (CreateIoCompletionPort(h, port_, kIoKey, 0) == nullptr || !SetNamedPipeHandleState(h, &mode, nullptr, nullptr)) {
    c->OnConnectImpossible(ActiveState::kOtherError, win::StatusFromWin32(GetLastError(), "connect", c->path()));
  } else {
    c->OnConnected(identity);
  }
}

void WinAsyncClient::Advance(Conversation* c) {
  for (;;) {
    if (c->TakeConnectedNotice()) delegate_->OnConnected(c->id);
    if (c->has_chunk()) delegate_->OnChunk(c->id, c->TakeChunk(), c->ledger());
    if (c->done()) {
      Report(c);
      return;
    }
    // A write or read that failed at once was reported to the exchange:
    // look again. Otherwise its packet brings us back (OnIo).
    if (c->phase() == ClientExchange::Phase::kSend && !c->write_in_flight) {
      if (!StartWrite(c)) continue;
    } else if (c->MayRead() && !c->read_in_flight) {
      if (!StartRead(c)) continue;
    }
    return;
  }
}

// One bounded piece of the request. False when it failed at once.
bool WinAsyncClient::StartWrite(Conversation* c) {
  pkt::Span piece = c->NextWrite();
  ZeroMemory(&c->write_op.ov, sizeof(OVERLAPPED));
  c->pending++;
  c->write_in_flight = true;
  if (!WriteFile(c->pipe, piece.data, static_cast<DWORD>(piece.size), nullptr, &c->write_op.ov) &&
      GetLastError() != ERROR_IO_PENDING) {
    DWORD error = GetLastError();
    c->pending--;  // failed at once: no packet comes
    c->write_in_flight = false;
    c->Written(0, error);
    return false;
  }
  return true;
}

// The next read of the response. Not called for a paused stream: then the
// pipe fills up and the server waits, until Resume() reads again. False
// when it failed at once.
bool WinAsyncClient::StartRead(Conversation* c) {
  if (c->read_buffer.empty()) c->read_buffer.resize(kFirstReadSize);
  ZeroMemory(&c->read_op.ov, sizeof(OVERLAPPED));
  c->pending++;
  c->read_in_flight = true;
  if (!ReadFile(c->pipe, c->read_buffer.data(), static_cast<DWORD>(c->read_buffer.size()), nullptr, &c->read_op.ov) &&
      GetLastError() != ERROR_IO_PENDING) {
    DWORD error = GetLastError();
    c->pending--;  // failed at once: no packet comes
    c->read_in_flight = false;
    c->Read(c->read_buffer.data(), 0, error);
    return false;
  }
  return true;
}

void WinAsyncClient::OnIo(IoOp* op, DWORD bytes, DWORD error) {
  Conversation* c = op->conversation;
  c->pending--;
  if (op->write) {
    c->write_in_flight = false;
    if (c->done()) return;  // over: Sweep() frees it
    c->Written(bytes, error);
  } else {
    c->read_in_flight = false;
    if (c->done()) return;
    size_t size = c->read_buffer.size();
    c->Read(c->read_buffer.data(), bytes, error);
    // A response that fills small reads gets larger ones.
    if (bytes == size && size < kLargeReadSize) c->read_buffer.resize(kLargeReadSize);
  }
  Advance(c);
}

// Reports the end of the conversation. Its memory stays until the
// operations it has outstanding completed (closing the handle cancels
// them; each still delivers its packet): Sweep() frees it.
void WinAsyncClient::Report(Conversation* c) {
  Release(c);
  live_.erase(c->id);
  over_.push_back(c);
  ByteBuffer response;
  if (c->result().status.ok()) response.Swap(c->response());
  delegate_->OnComplete(c->id, c->result(), std::move(response));
}

void WinAsyncClient::Sweep() {
  size_t kept = 0;
  for (Conversation* c : over_) {
    if (c->pending == 0 && !c->connecting) {
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
  {
    // Jobs still running close what they open themselves from now on.
    std::lock_guard<std::mutex> lock(link_->mutex);
    link_->open = false;
  }
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
    if (key == kConnectKey) {
      reinterpret_cast<ConnectJob*>(ov)->CloseUnused();
      delete reinterpret_cast<ConnectJob*>(ov);
      continue;
    }
    reinterpret_cast<IoOp*>(ov)->conversation->pending--;
    pending--;
  }
  // Jobs posted before the link closed.
  for (;;) {
    DWORD bytes = 0;
    ULONG_PTR key = 0;
    OVERLAPPED* ov = nullptr;
    GetQueuedCompletionStatus(port_, &bytes, &key, &ov, 0);
    if (ov == nullptr && key != kWakeKey) break;
    if (ov != nullptr && key == kConnectKey) {
      reinterpret_cast<ConnectJob*>(ov)->CloseUnused();
      delete reinterpret_cast<ConnectJob*>(ov);
    }
  }
  live_.clear();
  over_.clear();
  all_.clear();
}

}  // namespace

ClientResult SendCommandSync(const std::string& path, const uint8_t* request, size_t request_len,
                             const ClientOptions& options, ByteBuffer* response) {
  PipeExchange exchange(path, options, false);
  // The caller's bytes outlive this call: sent from where they are.
  exchange.SetRequest(ClientRequest::Borrowed(request, request_len));
  BlockingPipeClient(&exchange).Run();
  *response = std::move(exchange.response());
  return exchange.result();
}

ClientResult SendCommandSyncStreaming(const std::string& path, const uint8_t* request, size_t request_len,
                                      const ClientOptions& options, ResponseSink* sink) {
  PipeExchange exchange(path, options, true);
  exchange.SetRequest(ClientRequest::Borrowed(request, request_len));  // alive for the whole call
  BlockingPipeClient(&exchange, sink).Run();
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
