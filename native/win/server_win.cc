// The simple-ipc server on Windows: named pipes (docs/protocol.md#windows,
// with the limits of docs/protocol.md#limits; threads:
// docs/design.md#windows-server), behind the same Server interface as the
// POSIX one.
//
// The rules of the conversation (what a read means, the request deadline
// and the peer check, stalled writes, what a Reply queues, the stop
// grace) are native/core/conversation.h's
// (docs/design.md#the-conversation-core); this file does the overlapped
// I/O and asks it.
//
// Instances. Git keeps one pipe instance per worker thread and parks each
// worker on its instance: in ConnectNamedPipe, then in blocking reads of
// the request. A handful of silent clients then hold every instance and
// every worker. Here every instance is overlapped and the instance set is
// elastic:
//  - `listening_target_` instances wait in an overlapped ConnectNamedPipe:
//    one per worker (docs/protocol.md#windows-pipe-instances), and never fewer than
//    kMinListeningInstances whatever `threads` says. A client that
//    connects takes its instance with it, and the replacement is created
//    only once a worker has seen the connect: with one instance, clients
//    arriving together in that gap found none (ERROR_PIPE_BUSY; Git's
//    probe waits only 50 ms for one). The first one is created with
//    FILE_FLAG_FIRST_PIPE_INSTANCE and carries the security descriptor.
//  - When a client connects, its instance becomes that client's
//    connection and a new instance is created to listen in its place, so
//    clients that are slow to send (or never send) do not take the name
//    away from others. Open connections are capped by max_connections
//    (beyond it, a connection is closed at once and reported, as on POSIX).
//  - When a conversation ends, its instance is flushed, disconnected and
//    reused to listen again (docs/protocol.md#windows-pipe-instances), unless 2 x `listening_target_` instances
//    already listen, in which case it is closed.
//
// Threads:
//  - `threads` worker threads wait on one I/O completion port, which
//    every instance is associated with. Each completion (connect, request
//    read, write, hang-up watch, flush) is one short step of that
//    instance's state machine; no worker ever waits on a client.
//  - FlushFileBuffers blocks until the client has read everything, so it
//    runs on the Windows thread pool (one work item per finished
//    conversation), which posts its completion to the port. A client that
//    stops reading its last bytes delays only the reuse of its own
//    instance; the flush is cancelled after request_timeout_ms or when the
//    stop grace runs out.
//  - The control thread (the server's own thread, joined by Join()) runs
//    the timers (request timeout, stalled writes and flushes, retrying
//    listener creation, the idle stop: core IdleRule) and the shutdown
//    sequence, and calls OnStopped.
//  - Any thread (in practice the JS thread) calls Write/End/Abort/
//    AllowPeer, which queue bytes and start overlapped operations; they
//    never wait.
//
// Locking: one mutex, `mutex_`, guards the instance table, every Pipe's
// state and the stop state. Overlapped calls that start or cancel I/O
// (ConnectNamedPipe, ReadFile, WriteFile, CancelIoEx, DisconnectNamedPipe)
// and CreateNamedPipeW are made under it; they do not block. Delegate
// calls and the blocking flush are made without it. A Pipe is freed only
// when none of its operations is outstanding (`pending` == 0): every
// started operation delivers exactly one completion packet.
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "../core/admission.h"
#include "../core/clock.h"
#include "../core/conversation.h"
#include "../core/output_queue.h"
#include "../core/pkt_line.h"
#include "../core/server.h"
#include "pipe_name.h"
#include "security_win.h"
#include "win_util.h"

namespace sipc {

namespace {

constexpr DWORD kPipeBufferSize = 1024;       // docs/protocol.md#windows-pipe-instances
constexpr size_t kSmallReadSize = 4096;       // first read of a request
constexpr size_t kLargeReadSize = 64 * 1024;  // once a request fills a small read
constexpr size_t kMaxCoalesce = 64 * 1024;    // small queued chunks are written together
// One WriteFile at most: a write completes only once the client has read
// all but the pipe buffer, so this is also the progress unit of the
// stalled-write check.
constexpr size_t kMaxWriteSize = 64 * 1024;
constexpr int64_t kTickMs = 1000;             // stalled writes, listener retries
constexpr int64_t kStoppingTickMs = 50;
constexpr ULONG_PTR kExitKey = 1;
// Instances kept listening at least, independent of `threads` (libuv's
// pipe servers keep 4 as well).
constexpr int kMinListeningInstances = 4;

enum class OpKind { kConnect, kRead, kWatch, kWrite, kFlush };

struct Pipe;

struct Op {
  OVERLAPPED ov;  // first member: the completion packet carries &ov
  OpKind kind;
  Pipe* pipe;
  DWORD posted_error;  // for packets we post ourselves (the call failed at once)
};

using Phase = ConversationPhase;  // kIdle: ConnectNamedPipe outstanding

struct Pipe {
  HANDLE handle = INVALID_HANDLE_VALUE;
  HANDLE port = nullptr;  // for the flush work item
  int pending = 0;         // operations whose completion has not been handled
  bool connected = false;  // needs DisconnectNamedPipe before reuse
  Op connect_op, read_op, watch_op, write_op, flush_op;

  // The conversation (docs/design.md#the-conversation-core); conv.phase is
  // the instance's too: kIdle while it listens, kClosing once it is over.
  Conversation conv;
  std::vector<uint8_t> read_buffer;
  size_t buffered = 0;  // request bytes charged to WinServer::request_memory_
  bool watching = false;
  uint8_t watch_byte = 0;
  OutputQueue::HeaderScratch<64> headers;  // pkt headers of borrowed entries, for Fill
  std::vector<uint8_t> scratch;            // coalesced bytes of the write in flight
  bool writing = false;                    // a WriteFile is in flight
  bool flushing = false;
  int64_t flush_started = 0;
  bool close_after = false;  // close the instance instead of reusing it
  bool client_left = false;  // the watch saw the hang-up while a write was in flight

  Pipe() : conv(SIZE_MAX) {
    InitOp(&connect_op, OpKind::kConnect);
    InitOp(&read_op, OpKind::kRead);
    InitOp(&watch_op, OpKind::kWatch);
    InitOp(&write_op, OpKind::kWrite);
    InitOp(&flush_op, OpKind::kFlush);
  }

  void InitOp(Op* op, OpKind kind) {
    ZeroMemory(&op->ov, sizeof(op->ov));
    op->kind = kind;
    op->pipe = this;
    op->posted_error = 0;
  }

  // Keeps conv.phase (the caller sets the next one).
  void ResetConnection(size_t max_request) {
    Phase phase = conv.phase;
    conv.Reset(max_request);
    conv.phase = phase;
    std::vector<uint8_t>().swap(read_buffer);
    watching = writing = flushing = client_left = false;
    std::vector<uint8_t>().swap(scratch);
  }
};

struct ClientErrorReport {
  Status why;
  PeerInfo peer;
};

struct LostReport {
  ConnId id;
  Status why;
};

// Delegate calls the control thread collected under the lock.
struct ControlReports {
  std::vector<ClientErrorReport> client_errors;
  std::vector<LostReport> lost;
};

class WinServer : public Server {
 public:
  WinServer(const ServerOptions& options, ServerDelegate* delegate) : options_(options), delegate_(delegate) {
    if (options_.threads < 1) options_.threads = 1;
    listening_target_ = options_.threads > kMinListeningInstances ? options_.threads : kMinListeningInstances;
    idle_.timeout_ms = options_.idle_timeout_ms;
  }

  ~WinServer() override {
    // Only reached after the threads ended (or never started).
    for (auto& kv : pipes_) {
      if (kv.second->handle != INVALID_HANDLE_VALUE) CloseHandle(kv.second->handle);
    }
    if (port_ != nullptr) CloseHandle(port_);
    if (wake_ != nullptr) CloseHandle(wake_);
  }

  Status Listen();
  void StartThreads();

  // Replies always go through the pipe's queue: KickWrite starts the
  // overlapped WriteFile on the calling thread when none is in flight, so
  // the bytes are written by the thread that has them; the completion
  // port reports when they are done. Borrowed bytes are copied into the
  // pipe's bounded write buffer (one WriteFile takes one buffer) and never
  // framed as a whole; their tokens come back through OnWritten, or
  // OnReleased from Recycle(), which runs only when no write is in flight.
  ReplyOutcome Reply(ConnId id, const ReplyChunk& chunk) override {
    std::vector<uint8_t> framed = Conversation::FrameCopy(chunk);  // before the lock
    std::lock_guard<std::mutex> lock(mutex_);
    Pipe* pipe = FindConnected(id);
    if (pipe == nullptr || !pipe->conv.TakesReplies()) return ReplyOutcome::kGone;
    ReplyOutcome outcome = pipe->conv.Queue(chunk, std::move(framed), 0);
    KickWrite(pipe);
    return outcome;
  }

  void Abort(ConnId id) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      Pipe* pipe = FindConnected(id);
      if (pipe == nullptr || !pipe->conv.TakesReplies()) return;
      EndWithoutFlush(pipe);
    }
    ReportReleased();
  }

  void AllowPeer(ConnId id, bool allowed) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      Pipe* pipe = FindConnected(id);
      if (pipe == nullptr || pipe->conv.phase != Phase::kPeerCheck) return;
      if (!allowed || RefusesNewRequestsLocked()) {
        Retire(pipe);
      } else {
        // The request deadline starts now (docs/protocol.md#limits): the
        // time the application took to decide is not the client's.
        pipe->conv.AllowRead();
        StartRequestClock(pipe);
        StartRead(pipe);
      }
    }
    ReportReleased();
  }

  ServerStats Stats() override {
    std::lock_guard<std::mutex> lock(mutex_);
    ServerStats stats = counters_;
    for (auto& kv : conns_) CountConnection(kv.second->conv.phase, &stats);
    return stats;
  }

  void Stop(uint32_t grace_ms) override { RequestStop(StopReason::kClosed, grace_ms); }

  void Join() override {
    if (control_thread_.joinable()) control_thread_.join();
  }

 private:
  // ---- (mu) helpers ----
  Pipe* FindConnected(ConnId id) {
    auto it = conns_.find(id);
    return it == conns_.end() ? nullptr : it->second;
  }
  Pipe* FindHandling(ConnId id) {
    Pipe* pipe = FindConnected(id);
    return pipe != nullptr && pipe->conv.phase == Phase::kHandling ? pipe : nullptr;
  }
  // Ends the conversation without the flush; true if the application
  // still expected to finish it (then it is lost).
  bool EndWithoutFlush(Pipe* pipe) {
    bool lost = !pipe->conv.ended;
    pipe->conv.Abort();
    Retire(pipe);
    return lost;
  }
  // Once a stop has begun: whether a new client, or a request completing
  // now, is dropped rather than served (only an idle stop, within its
  // grace, still serves them: docs/protocol.md#idle-stop).
  bool RefusesNewRequestsLocked() const {
    return stopping_ && StopRefusesRequests(StopDrainsLocked(), NowMs() >= stop_.grace_deadline);
  }
  // Whether the stop serves the clients that reached us (an idle stop). A
  // pipe name cannot lead elsewhere while we hold it: no other stop does.
  bool StopDrainsLocked() const { return StopDrains(stop_.reason, false); }
  // A client connected to an instance: it counts as activity (the idle
  // stop) from now until its instance is recycled.
  void ConnectionOpenedLocked() { open_connections_++; }
  void ConnectionClosedLocked() {
    if (--open_connections_ > 0) return;
    idle_since_ = NowMs();
    if (idle_.DueAt(0, idle_since_) < control_wakes_at_) SetEvent(wake_);
  }
  void CountDropLocked(ReadVerdict::Counter counter) {
    if (counter == ReadVerdict::Counter::kProtocol) counters_.dropped_protocol++;
    if (counter == ReadVerdict::Counter::kTooLarge) counters_.dropped_too_large++;
  }
  // The request deadline runs from now; wakes the control thread if it
  // would look too late.
  void StartRequestClock(Pipe* pipe) {
    if (pipe->conv.StartRequestClock(NowMs(), options_.request_timeout_ms) && pipe->conv.deadline < control_wakes_at_) {
      SetEvent(wake_);
    }
  }

  HANDLE CreateInstance(bool first, DWORD* error);
  Pipe* AddInstance(HANDLE handle);
  void Listen(Pipe* pipe);
  void ReplenishListeners(int64_t now);
  void StartRead(Pipe* pipe);
  void StartWatch(Pipe* pipe);
  void KickWrite(Pipe* pipe);
  void StartFlush(Pipe* pipe);
  void Retire(Pipe* pipe);
  void MaybeRecycle(Pipe* pipe);
  void Recycle(Pipe* pipe, bool allow_reuse = true);
  void PostOwn(Op* op, DWORD error);
  std::vector<Pipe*> AllPipes();
  // Reports the tokens of borrowed writes that Recycle() dropped. Any
  // thread, without the lock.
  void ReportReleased();

  void RequestStopLocked(StopReason reason, uint32_t grace_ms) {
    stop_.Request(reason, NowMs(), grace_ms);
    SetEvent(wake_);
  }

  void RequestStop(StopReason reason, uint32_t grace_ms) {
    std::lock_guard<std::mutex> lock(mutex_);
    RequestStopLocked(reason, grace_ms);
  }

  // ---- worker threads ----
  void WorkerLoop();
  void OnConnected(Pipe* pipe, DWORD error);
  bool TakeConnectedLocked(Pipe* pipe, DWORD error);
  void Admit(Pipe* pipe, const PeerInfo& peer);
  ReadVerdict JudgeReadLocked(Pipe* pipe, DWORD bytes, DWORD error);
  void OnRead(Pipe* pipe, DWORD bytes, DWORD error);
  void OnWatch(Pipe* pipe, DWORD bytes, DWORD error);
  void OnWritten(Pipe* pipe, DWORD bytes, DWORD error);
  void OnFlushed(Pipe* pipe);
  static VOID CALLBACK FlushWork(PTP_CALLBACK_INSTANCE instance, PVOID context);

  // ---- control thread ----
  void ControlLoop();
  void BeginStopLocked();
  void OccupyListenersLocked();
  void EnforceLimitsLocked(int64_t now, int64_t* next, ControlReports* reports);
  bool RunGraceLocked(int64_t now, int64_t* next, ControlReports* reports);
  void FinishStop();

  ServerOptions options_;
  int listening_target_ = kMinListeningInstances;  // instances kept listening (set once)
  ServerDelegate* delegate_;
  std::wstring pipe_name_;
  win::PipeSecurity security_;
  HANDLE port_ = nullptr;
  HANDLE wake_ = nullptr;  // auto-reset: wakes the control thread
  std::thread control_thread_;
  std::vector<std::thread> workers_;

  std::mutex mutex_;
  std::unordered_map<Pipe*, std::unique_ptr<Pipe>> pipes_;  // (mu) every instance
  std::unordered_map<ConnId, Pipe*> conns_;                 // (mu) connected instances
  int listeners_ = 0;                                       // (mu) instances in kIdle (listening)
  ConnId next_id_ = 1;                                      // (mu)
  int64_t next_replenish_ = 0;                              // (mu) retry time after a failed create
  int64_t control_wakes_at_ = 0;                            // (mu) when the control thread looks next
  StopRequest stop_;                                        // (mu)
  bool stopping_ = false;                                   // (mu) stop sequence begun
  std::vector<ConversationNotices> released_;  // (mu) borrowed tokens to report
  std::atomic<bool> has_released_{false};
  // The idle stop (docs/protocol.md#idle-stop): clients connected now, and
  // since when none has been.
  IdleRule idle_;                  // (set once)
  // maxBufferedRequestBytes: the bytes of every request still being read.
  RequestMemory request_memory_{options_.max_buffered_request_bytes};  // (mu)
  uint64_t open_connections_ = 0;  // (mu)
  int64_t idle_since_ = 0;         // (mu)
  // Stats(): every counter but the connection snapshot, which Stats()
  // takes from `conns_`.
  ServerStats counters_;  // (mu)
};

// ---------------------------------------------------------------------------
// Start-up

HANDLE WinServer::CreateInstance(bool first, DWORD* error) {
  DWORD open_mode = PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED | (first ? FILE_FLAG_FIRST_PIPE_INSTANCE : 0);
  DWORD pipe_mode = PIPE_TYPE_MESSAGE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS;
  HANDLE h = CreateNamedPipeW(pipe_name_.c_str(), open_mode, pipe_mode, PIPE_UNLIMITED_INSTANCES, kPipeBufferSize,
                              kPipeBufferSize, 0, security_.attributes());
  if (h == INVALID_HANDLE_VALUE) {
    *error = GetLastError();
    return h;
  }
  if (CreateIoCompletionPort(h, port_, 0, 0) == nullptr) {
    *error = GetLastError();
    CloseHandle(h);
    return INVALID_HANDLE_VALUE;
  }
  *error = ERROR_SUCCESS;
  return h;
}

Status WinServer::Listen() {
  Status st = win::PipeNameForPath(options_.path, &pipe_name_);
  if (!st.ok()) {
    st.syscall = "listen";
    return st;
  }
  st = security_.Init(options_.pipe_access, options_.sddl);
  if (!st.ok()) return st;
  port_ = CreateIoCompletionPort(INVALID_HANDLE_VALUE, nullptr, 0, static_cast<DWORD>(options_.threads));
  if (port_ == nullptr) return win::StatusFromWin32(GetLastError(), "CreateIoCompletionPort");
  wake_ = CreateEventW(nullptr, FALSE, FALSE, nullptr);
  if (wake_ == nullptr) return win::StatusFromWin32(GetLastError(), "CreateEvent");

  std::string name = win::WideToUtf8(pipe_name_);
  DWORD error;
  HANDLE first = CreateInstance(true, &error);
  if (first == INVALID_HANDLE_VALUE) {
    // Another server owns the name (Windows answers ERROR_ACCESS_DENIED
    // to FILE_FLAG_FIRST_PIPE_INSTANCE, or ERROR_PIPE_BUSY when the
    // owner allows no more instances): Git's "address in use".
    if (error == ERROR_ACCESS_DENIED || error == ERROR_PIPE_BUSY) {
      return Status::FromErrno(EADDRINUSE, "listen", name + " (Win32 error " + std::to_string(error) + ")");
    }
    return win::StatusFromWin32(error, "CreateNamedPipe", name);
  }
  std::lock_guard<std::mutex> lock(mutex_);
  AddInstance(first);
  for (int i = 1; i < listening_target_; i++) {
    HANDLE h = CreateInstance(false, &error);
    if (h == INVALID_HANDLE_VALUE) {
      // Typically a pipeAccess SDDL that does not grant this account
      // FILE_CREATE_PIPE_INSTANCE (GENERIC_WRITE), which every instance
      // after the first needs.
      return win::StatusFromWin32(error, "CreateNamedPipe",
                                  name + ": cannot create more pipe instances (does the pipe's DACL grant this "
                                         "account write access?)");
    }
    AddInstance(h);
  }
  return Status::Ok();
}

// (mu) A new instance, not yet listening.
Pipe* WinServer::AddInstance(HANDLE handle) {
  std::unique_ptr<Pipe> owned(new Pipe());
  owned->handle = handle;
  owned->port = port_;
  owned->conv.phase = Phase::kClosing;  // Listen() sets kIdle
  owned->conv.reader = pkt::Reader(options_.max_request_bytes);
  Pipe* pipe = owned.get();
  pipes_.emplace(pipe, std::move(owned));
  return pipe;
}

void WinServer::StartThreads() {
  for (int i = 0; i < options_.threads; i++) workers_.emplace_back([this] { WorkerLoop(); });
  {
    std::lock_guard<std::mutex> lock(mutex_);
    idle_since_ = NowMs();
    for (auto& kv : pipes_) Listen(kv.second.get());
  }
  control_thread_ = std::thread([this] { ControlLoop(); });
}

// ---------------------------------------------------------------------------
// Starting and ending operations (mu)

// Completes `op` through the port, for a call that failed at once (no
// packet of its own will come) or succeeded without one.
void WinServer::PostOwn(Op* op, DWORD error) {
  op->posted_error = error;
  if (!PostQueuedCompletionStatus(port_, 0, 0, &op->ov)) {
    // The port is gone only after every worker ended; should not happen.
    std::abort();
  }
}

void WinServer::Listen(Pipe* pipe) {
  pipe->conv.phase = Phase::kIdle;
  listeners_++;
  pipe->pending++;
  ZeroMemory(&pipe->connect_op.ov, sizeof(OVERLAPPED));
  // TRUE (done at once) still queues a completion packet.
  if (ConnectNamedPipe(pipe->handle, &pipe->connect_op.ov)) return;
  DWORD err = GetLastError();
  if (err == ERROR_IO_PENDING) return;
  // ERROR_PIPE_CONNECTED: a client came between create and connect.
  // ERROR_NO_DATA: it came and already left; the read will tell.
  if (err == ERROR_PIPE_CONNECTED || err == ERROR_NO_DATA) err = ERROR_SUCCESS;
  PostOwn(&pipe->connect_op, err);
}

// Keeps `listening_target_` instances listening. A failed create is
// retried by the control thread.
void WinServer::ReplenishListeners(int64_t now) {
  while (!stopping_ && listeners_ < listening_target_ && now >= next_replenish_) {
    DWORD error;
    HANDLE h = CreateInstance(false, &error);
    if (h == INVALID_HANDLE_VALUE) {
      next_replenish_ = now + kTickMs;
      return;
    }
    Listen(AddInstance(h));
  }
}

void WinServer::StartRead(Pipe* pipe) {
  if (pipe->read_buffer.empty()) pipe->read_buffer.resize(kSmallReadSize);
  pipe->pending++;
  ZeroMemory(&pipe->read_op.ov, sizeof(OVERLAPPED));
  if (!ReadFile(pipe->handle, pipe->read_buffer.data(), static_cast<DWORD>(pipe->read_buffer.size()), nullptr,
                &pipe->read_op.ov)) {
    DWORD err = GetLastError();
    if (err != ERROR_IO_PENDING) PostOwn(&pipe->read_op, err);
  }
}

// While the application handles a request, a one-byte read notices the
// client hanging up (it completes with ERROR_BROKEN_PIPE).
void WinServer::StartWatch(Pipe* pipe) {
  pipe->watching = true;
  pipe->pending++;
  ZeroMemory(&pipe->watch_op.ov, sizeof(OVERLAPPED));
  if (!ReadFile(pipe->handle, &pipe->watch_byte, 1, nullptr, &pipe->watch_op.ov)) {
    DWORD err = GetLastError();
    if (err != ERROR_IO_PENDING) PostOwn(&pipe->watch_op, err);
  }
}

// Starts the next write if none is in flight. One WriteFile at a time per
// connection; small queued chunks go out together.
void WinServer::KickWrite(Pipe* pipe) {
  if (pipe->writing || pipe->conv.phase != Phase::kHandling || pipe->conv.out.empty()) return;
  pkt::Span spans[64];
  size_t count = pipe->conv.out.Fill(spans, &pipe->headers);
  if (count == 0) {
    // Only token-carrying empty entries: they are "written" now.
    pipe->writing = true;
    pipe->conv.WaitForPeer(NowMs());
    pipe->pending++;
    PostOwn(&pipe->write_op, ERROR_SUCCESS);
    return;
  }
  const uint8_t* data = spans[0].data;
  size_t len = spans[0].size < kMaxWriteSize ? spans[0].size : kMaxWriteSize;
  if (count > 1 && len < kMaxCoalesce) {
    pipe->scratch.clear();
    for (size_t i = 0; i < count && pipe->scratch.size() + spans[i].size <= kMaxCoalesce; i++) {
      pipe->scratch.insert(pipe->scratch.end(), spans[i].data, spans[i].data + spans[i].size);
    }
    if (pipe->scratch.size() > len) {
      data = pipe->scratch.data();
      len = pipe->scratch.size();
    }
  }
  // A write completes only once the client has read all but the pipe
  // buffer: until then the write-stall clock runs.
  pipe->writing = true;
  pipe->conv.WaitForPeer(NowMs());
  pipe->pending++;
  ZeroMemory(&pipe->write_op.ov, sizeof(OVERLAPPED));
  if (!WriteFile(pipe->handle, data, static_cast<DWORD>(len), nullptr, &pipe->write_op.ov)) {
    DWORD err = GetLastError();
    if (err != ERROR_IO_PENDING) PostOwn(&pipe->write_op, err);
  }
}

// The response is written: make sure the client got it before the
// instance is disconnected (DisconnectNamedPipe discards unread data).
void WinServer::StartFlush(Pipe* pipe) {
  pipe->conv.phase = Phase::kClosing;
  if (pipe->watching) CancelIoEx(pipe->handle, &pipe->watch_op.ov);
  pipe->flushing = true;
  pipe->flush_started = NowMs();
  pipe->pending++;
  if (!TrySubmitThreadpoolCallback(&WinServer::FlushWork, pipe, nullptr)) {
    // No thread pool: skip the flush, close rather than disconnect so the
    // client can still read what is buffered.
    pipe->close_after = true;
    PostOwn(&pipe->flush_op, ERROR_SUCCESS);
  }
}

// Thread pool. Touches only the pipe's handle and port, which stay valid
// until the posted completion has been handled.
VOID CALLBACK WinServer::FlushWork(PTP_CALLBACK_INSTANCE instance, PVOID context) {
  CallbackMayRunLong(instance);
  Pipe* pipe = static_cast<Pipe*>(context);
  FlushFileBuffers(pipe->handle);  // fails when cancelled or the client left; either way done
  pipe->flush_op.posted_error = ERROR_SUCCESS;
  if (!PostQueuedCompletionStatus(pipe->port, 0, 0, &pipe->flush_op.ov)) std::abort();
}

// The conversation (or attempt) is over without a flush: cancel what is
// outstanding and recycle the instance once it all completed.
void WinServer::Retire(Pipe* pipe) {
  pipe->conv.phase = Phase::kClosing;
  if (pipe->pending > 0) CancelIoEx(pipe->handle, nullptr);
  MaybeRecycle(pipe);
}

void WinServer::MaybeRecycle(Pipe* pipe) {
  if (pipe->conv.phase == Phase::kClosing && pipe->pending == 0) Recycle(pipe);
}

// No operation is outstanding: disconnect, then listen again or close.
void WinServer::Recycle(Pipe* pipe, bool allow_reuse) {
  if (pipe->conv.id != 0) conns_.erase(pipe->conv.id);
  ConversationNotices released;
  released.id = pipe->conv.id;
  pipe->conv.DropQueued(&released.released);
  if (!released.released.empty()) {
    released_.push_back(std::move(released));
    has_released_ = true;
  }
  // A quit conversation that ended early (the client left) still quits.
  if (pipe->conv.quit) RequestStopLocked(StopReason::kQuit, options_.quit_grace_ms);
  request_memory_.Release(&pipe->buffered);
  pipe->ResetConnection(options_.max_request_bytes);
  bool reuse = allow_reuse && !pipe->close_after && !stopping_ && listeners_ < 2 * listening_target_;
  pipe->close_after = false;
  if (pipe->connected && reuse && !DisconnectNamedPipe(pipe->handle)) reuse = false;
  if (pipe->connected) ConnectionClosedLocked();
  pipe->connected = false;
  if (reuse) {
    Listen(pipe);
    return;
  }
  // Closing (rather than disconnecting) leaves what the client has not
  // read yet readable.
  CloseHandle(pipe->handle);
  pipe->handle = INVALID_HANDLE_VALUE;
  pipes_.erase(pipe);
  if (stopping_ && pipes_.empty()) SetEvent(wake_);
}

// ---------------------------------------------------------------------------
// Worker threads

void WinServer::WorkerLoop() {
  for (;;) {
    DWORD bytes = 0;
    ULONG_PTR key = 0;
    OVERLAPPED* ov = nullptr;
    BOOL ok = GetQueuedCompletionStatus(port_, &bytes, &key, &ov, INFINITE);
    if (ov == nullptr) {
      if (key == kExitKey || !ok) return;
      continue;  // not ours
    }
    Op* op = reinterpret_cast<Op*>(ov);
    DWORD error = ok ? ERROR_SUCCESS : GetLastError();
    if (op->posted_error != 0) {
      error = op->posted_error;
      op->posted_error = 0;
    }
    switch (op->kind) {
      case OpKind::kConnect:
        OnConnected(op->pipe, error);
        break;
      case OpKind::kRead:
        OnRead(op->pipe, bytes, error);
        break;
      case OpKind::kWatch:
        OnWatch(op->pipe, bytes, error);
        break;
      case OpKind::kWrite:
        OnWritten(op->pipe, bytes, error);
        break;
      case OpKind::kFlush:
        OnFlushed(op->pipe);
        break;
    }
    ReportReleased();
  }
}

void WinServer::ReportReleased() {
  if (!has_released_) return;
  std::vector<ConversationNotices> batch;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    batch.swap(released_);
    has_released_ = false;
  }
  for (const ConversationNotices& r : batch) r.DeliverTo(delegate_);
}


void WinServer::OnConnected(Pipe* pipe, DWORD error) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!TakeConnectedLocked(pipe, error)) return;
  }
  // No id, no operation outstanding and phase kClosing: nothing else
  // touches this pipe, so the peer lookup runs without the lock.
  PeerInfo peer = win::GetPipePeer(pipe->handle);
  Admit(pipe, peer);
}

// What is on an instance whose listen completed or was cancelled during a
// stop. Cancelling the listen does not stop clients from connecting to it
// until its handle is closed, and a client may connect and leave before
// we look. PeekNamedPipe never blocks: it succeeds on an instance with a
// client (bytes or not, or bytes a client left behind), and fails with
// ERROR_BROKEN_PIPE once its client left without a byte to read.
ListenerOccupation::Arrival LookForClient(HANDLE handle) {
  DWORD available = 0;
  if (PeekNamedPipe(handle, nullptr, 0, nullptr, &available, nullptr)) return ListenerOccupation::Arrival::kClient;
  if (GetLastError() == ERROR_BROKEN_PIPE) return ListenerOccupation::Arrival::kGoneWithoutBytes;
  return ListenerOccupation::Arrival::kNone;
}

// (mu) A connect completed on a listening instance. Returns true when it
// brought a client to admit; otherwise the instance is recycled.
bool WinServer::TakeConnectedLocked(Pipe* pipe, DWORD error) {
  pipe->pending--;
  listeners_--;
  pipe->conv.phase = Phase::kClosing;
  if (stopping_ && !RefusesNewRequestsLocked()) {
    // An idle stop serves every client that reached us, and only those
    // (ListenerOccupation::Serves): the server's own occupying
    // connections are closed unseen.
    bool connected = error == ERROR_SUCCESS;
    if (!ListenerOccupation::Serves(LookForClient(pipe->handle), connected)) {
      Recycle(pipe);  // never counted as connected: closes
      return false;
    }
    error = ERROR_SUCCESS;
  }
  if (error == ERROR_OPERATION_ABORTED) {
    Recycle(pipe);  // cancelled by the stop: closes
    return false;
  }
  if (error != ERROR_SUCCESS) {
    // A broken instance: close it; the control thread creates another.
    Recycle(pipe, false);
    next_replenish_ = NowMs() + kTickMs;
    return false;
  }
  pipe->connected = true;
  ConnectionOpenedLocked();
  if (RefusesNewRequestsLocked()) {
    Recycle(pipe);  // came as we stopped: dropped (docs/protocol.md#stopping)
    return false;
  }
  // This instance now belongs to its client; another one listens.
  ReplenishListeners(NowMs());
  return true;
}

// A new client: count it against max_connections, then the peer check or
// the request.
void WinServer::Admit(Pipe* pipe, const PeerInfo& peer) {
  ConnId id = 0;
  bool too_many = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (RefusesNewRequestsLocked()) {
      Recycle(pipe);
      return;
    }
    too_many = conns_.size() >= options_.max_connections;
    if (too_many) {
      counters_.dropped_too_many++;
      Recycle(pipe);
    } else {
      id = next_id_++;
      pipe->conv.id = id;
      pipe->conv.peer = peer;
      conns_.emplace(id, pipe);
      pipe->conv.phase = Phase::kReading;
      if (options_.check_peer) {
        pipe->conv.BeginPeerCheck();  // the request deadline waits for the answer
      } else {
        StartRequestClock(pipe);
        StartRead(pipe);
      }
    }
  }
  if (too_many) {
    delegate_->OnClientError(
        Conversation::TooManyConnectionsStatus(options_.max_connections), peer);
  } else if (options_.check_peer) {
    delegate_->OnPeerCheck(id, peer);
  }
}

// (mu) What a completed request read means. kNeedMore: the next read is
// started.
ReadVerdict WinServer::JudgeReadLocked(Pipe* pipe, DWORD bytes, DWORD error) {
  if (error == ERROR_MORE_DATA) error = ERROR_SUCCESS;  // a message boundary; the bytes are valid
  if (error == ERROR_SUCCESS) {
    counters_.bytes_in += bytes;
    size_t size = pipe->read_buffer.size();
    ReadVerdict verdict = pipe->conv.Feed(pipe->read_buffer.data(), bytes, options_.max_request_bytes);
    if (verdict.kind == ReadVerdict::Kind::kNeedMore &&
        !request_memory_.Grow(&pipe->buffered, pipe->conv.request.size())) {
      // maxBufferedRequestBytes: the newest bytes drop their connection;
      // the others keep theirs (counted as too large, as on POSIX).
      counters_.dropped_too_large++;
      return ReadVerdict::Drop(true, ReadVerdict::Counter::kNone,
                               RequestMemory::FullStatus(options_.max_buffered_request_bytes));
    }
    if (verdict.kind == ReadVerdict::Kind::kNeedMore) {
      // A request that fills small reads gets larger ones.
      if (bytes == size && size < kLargeReadSize) pipe->read_buffer.resize(kLargeReadSize);
      StartRead(pipe);
    }
    return verdict;
  }
  if (error == ERROR_BROKEN_PIPE || error == ERROR_PIPE_NOT_CONNECTED || error == ERROR_NO_DATA) {
    return pipe->conv.EndOfInput();
  }
  ReadVerdict verdict = pipe->conv.ReadFailed(win::StatusFromWin32(error, "read"));
  if (error == ERROR_OPERATION_ABORTED) verdict.report = false;  // cancelled by us: whoever did reported it
  return verdict;
}

void WinServer::OnRead(Pipe* pipe, DWORD bytes, DWORD error) {
  ReadVerdict verdict;
  PeerInfo peer;
  ConnId id = 0;
  ByteBuffer request;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    pipe->pending--;
    if (pipe->conv.phase != Phase::kReading) {
      // Timed out, or stopped, while the read was outstanding; whoever
      // ended it reported it.
      MaybeRecycle(pipe);
      return;
    }
    verdict = JudgeReadLocked(pipe, bytes, error);
    if (verdict.kind == ReadVerdict::Kind::kNeedMore) return;
    peer = pipe->conv.peer;
    if (verdict.kind == ReadVerdict::Kind::kComplete && RefusesNewRequestsLocked()) {
      // Complete only after an idle stop's grace ran out: it would escape
      // the grace that ends the stop.
      Retire(pipe);
      return;
    }
    if (verdict.kind == ReadVerdict::Kind::kDrop) {
      CountDropLocked(verdict.counter);
      Retire(pipe);
    } else {
      id = pipe->conv.id;
      request = pipe->conv.TakeRequest();
      request_memory_.Release(&pipe->buffered);  // the application's memory now
      std::vector<uint8_t>().swap(pipe->read_buffer);
    }
  }
  if (id == 0) {
    if (verdict.report) delegate_->OnClientError(verdict.why, peer);
    return;
  }
  // `pipe` may be gone as soon as the application answers: look it up by
  // id from here on.
  delegate_->OnRequest(id, std::move(request), peer);
  std::lock_guard<std::mutex> lock(mutex_);
  Pipe* handling = FindHandling(id);
  if (handling != nullptr && !handling->conv.ended && !handling->watching) StartWatch(handling);
}

void WinServer::OnWatch(Pipe* pipe, DWORD bytes, DWORD error) {
  (void)bytes;
  ConnId id = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    pipe->pending--;
    pipe->watching = false;
    if (pipe->conv.phase != Phase::kHandling) {
      MaybeRecycle(pipe);
      return;
    }
    // Bytes after the request are ignored (and no longer watched for);
    // a write failure will tell if the client leaves.
    if (error == ERROR_SUCCESS || error == ERROR_MORE_DATA || error == ERROR_OPERATION_ABORTED) return;
    // The client went away. With a write in flight, its completion (on
    // its way) ends the conversation: the client may have read the whole
    // response before it left, and then the response counts as
    // completed. Two workers take the two completions in either order.
    if (pipe->writing) {
      pipe->client_left = true;
      return;
    }
    // The client went away: the conversation is over.
    id = pipe->conv.id;
    if (!EndWithoutFlush(pipe)) id = 0;
  }
  if (id != 0) delegate_->OnConversationLost(id, Conversation::ClientLeftStatus());
}

void WinServer::OnWritten(Pipe* pipe, DWORD bytes, DWORD error) {
  ConversationNotices notices;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    pipe->pending--;
    pipe->writing = false;
    pipe->conv.write_waiting = false;
    if (pipe->conv.phase != Phase::kHandling) {
      MaybeRecycle(pipe);
      return;
    }
    notices.id = pipe->conv.id;
    if (error != ERROR_SUCCESS) {
      notices.Lose(EndWithoutFlush(pipe), win::StatusFromWin32(error, "write", "client went away"));
    } else {
      counters_.bytes_out += bytes;
      pipe->conv.Wrote(bytes, &notices.written);
      bool complete = pipe->conv.out.empty() && pipe->conv.ended;
      if (!complete && pipe->client_left) {
        // The watch saw the client leave during this write (OnWatch).
        notices.Lose(EndWithoutFlush(pipe), Conversation::ClientLeftStatus());
      } else if (!pipe->conv.out.empty()) {
        KickWrite(pipe);
      } else if (pipe->conv.ended) {
        counters_.requests++;  // the flush packet is out: a response completed
        // The flush packet is written (docs/protocol.md#quit: the server
        // stops only after that).
        if (pipe->conv.quit) {
          pipe->conv.quit = false;
          RequestStopLocked(StopReason::kQuit, options_.quit_grace_ms);
        }
        StartFlush(pipe);
      }
    }
  }
  notices.DeliverTo(delegate_);
}

void WinServer::OnFlushed(Pipe* pipe) {
  std::lock_guard<std::mutex> lock(mutex_);
  pipe->pending--;
  pipe->flushing = false;
  MaybeRecycle(pipe);
}

// ---------------------------------------------------------------------------
// Control thread

std::vector<Pipe*> WinServer::AllPipes() {
  std::vector<Pipe*> all;
  all.reserve(pipes_.size());
  for (auto& kv : pipes_) all.push_back(kv.second.get());
  return all;
}

void WinServer::ControlLoop() {
  for (;;) {
    ControlReports reports;
    bool exit = false;
    DWORD wait_ms = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      int64_t now = NowMs();
      // Checked under the same lock that begins the stop: no client can
      // connect in between unseen (a client connecting later is served,
      // as the idle stop does).
      if (!stopping_ && idle_.Due(now, open_connections_, idle_since_)) {
        stop_.Request(StopReason::kIdle, now, options_.quit_grace_ms);
      }
      if (stop_.requested && !stopping_) BeginStopLocked();
      int64_t next = now + (stopping_ ? kStoppingTickMs : kTickMs);
      EnforceLimitsLocked(now, &next, &reports);
      if (stopping_) {
        exit = RunGraceLocked(now, &next, &reports);
      } else {
        ReplenishListeners(now);
        if (listeners_ < listening_target_ && next_replenish_ < next) next = next_replenish_;
        int64_t idle_at = idle_.DueAt(open_connections_, idle_since_);
        if (idle_at < next) next = idle_at;
      }
      control_wakes_at_ = next;
      wait_ms = next > now ? static_cast<DWORD>(next - now) : 0;
    }
    for (ClientErrorReport& r : reports.client_errors) delegate_->OnClientError(r.why, r.peer);
    for (LostReport& r : reports.lost) delegate_->OnConversationLost(r.id, r.why);
    ReportReleased();
    if (exit) break;
    WaitForSingleObject(wake_, wait_ms);
  }
  FinishStop();
}

// (mu) Stop accepting: the listening instances close, and once no
// instance is left the name is gone. Drop everything that has not reached
// the application (docs/protocol.md#stopping), except in an idle stop,
// which serves it (docs/protocol.md#idle-stop); conversations in progress
// may finish.
void WinServer::BeginStopLocked() {
  stopping_ = true;
  bool drop_unstarted = !StopDrainsLocked();
  // A stop that serves the clients that reached us first makes sure that
  // nobody else can: the cancels below do not (see LookForClient).
  if (!drop_unstarted) OccupyListenersLocked();
  for (Pipe* pipe : AllPipes()) {
    if (pipe->conv.phase == Phase::kIdle) {
      CancelIoEx(pipe->handle, &pipe->connect_op.ov);
    } else if (drop_unstarted && (pipe->conv.phase == Phase::kPeerCheck || pipe->conv.phase == Phase::kReading)) {
      Retire(pipe);
    }
  }
}

// (mu) Takes every listening instance by connecting to our own name
// until none listens (core ListenerOccupation), closing each connection
// at once; no instance is created or reused once stopping_ is set. Never
// blocks: opening a pipe fails at once when no instance listens. The
// completions of the instances taken wait for the lock, so each finds its
// client gone without a byte (TakeConnectedLocked). Identification level
// only: should the name hold an instance that is not ours, its owner
// cannot act as us.
void WinServer::OccupyListenersLocked() {
  ListenerOccupation occupation(static_cast<uint64_t>(listeners_));
  ListenerOccupation::Attempt attempt;
  do {
    HANDLE h = CreateFileW(pipe_name_.c_str(), GENERIC_READ, 0, nullptr, OPEN_EXISTING,
                           SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION, nullptr);
    if (h != INVALID_HANDLE_VALUE) {
      CloseHandle(h);
      attempt = ListenerOccupation::Attempt::kTookOne;
    } else {
      DWORD error = GetLastError();
      attempt = error == ERROR_PIPE_BUSY || error == ERROR_FILE_NOT_FOUND ? ListenerOccupation::Attempt::kNoneListening
                                                                           : ListenerOccupation::Attempt::kFailed;
    }
  } while (occupation.Record(attempt));
  // Incomplete (!occupation.complete()): the instances still listening are
  // looked at right before they close (TakeConnectedLocked), which a client
  // connecting in between loses (docs/windows.md#options-that-differ).
}

// (mu) Request deadlines, stalled writes and stalled flushes; lowers
// `next` to the earliest running request deadline. Retire() frees only
// the pipe it is given, so the others in the list stay valid.
void WinServer::EnforceLimitsLocked(int64_t now, int64_t* next, ControlReports* reports) {
  uint32_t timeout_ms = options_.request_timeout_ms;
  for (Pipe* pipe : AllPipes()) {
    Conversation& conv = pipe->conv;
    if (conv.RequestExpired(now)) {
      counters_.dropped_timeout++;
      reports->client_errors.push_back(ClientErrorReport{Conversation::TimeoutStatus(timeout_ms), conv.peer});
      Retire(pipe);
      continue;
    }
    if (conv.phase == Phase::kReading && conv.deadline != 0 && conv.deadline < *next) *next = conv.deadline;
    if (conv.phase == Phase::kHandling && conv.WriteStalled(now, timeout_ms)) {
      counters_.dropped_timeout++;
      ConnId id = conv.id;
      if (EndWithoutFlush(pipe)) reports->lost.push_back(LostReport{id, Conversation::WriteStalledStatus()});
      continue;
    }
    if (timeout_ms > 0 && pipe->flushing && now - pipe->flush_started > static_cast<int64_t>(timeout_ms)) {
      CancelIoEx(pipe->handle, nullptr);
    }
  }
}

// (mu) The stop grace: once it has run out, drop the conversations still
// running and cancel what is outstanding (again on every tick: a flush
// work item may have started after the previous cancel). Returns true
// when every instance is gone.
bool WinServer::RunGraceLocked(int64_t now, int64_t* next, ControlReports* reports) {
  if (now < stop_.grace_deadline) {
    if (stop_.grace_deadline < *next) *next = stop_.grace_deadline;
    return pipes_.empty();
  }
  for (Pipe* pipe : AllPipes()) {
    if (pipe->conv.phase == Phase::kHandling) {
      ConnId id = pipe->conv.id;
      if (EndWithoutFlush(pipe)) {
        reports->lost.push_back(LostReport{id, Conversation::GraceOverStatus()});
      }
    } else if (pipe->conv.phase == Phase::kPeerCheck || pipe->conv.phase == Phase::kReading) {
      Retire(pipe);  // an idle stop kept them: now they go too (a peer check has nothing to cancel)
    } else if (pipe->pending > 0) {
      CancelIoEx(pipe->handle, nullptr);
    }
  }
  return pipes_.empty();
}

void WinServer::FinishStop() {
  // Every instance is closed and every completion handled: the workers
  // only wait for their exit packets now.
  for (size_t i = 0; i < workers_.size(); i++) PostQueuedCompletionStatus(port_, 0, kExitKey, nullptr);
  for (std::thread& t : workers_) t.join();
  workers_.clear();
  StopReason reason;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    reason = stop_.reason;
  }
  delegate_->OnStopped(reason);
}

}  // namespace

Status StartServer(const ServerOptions& options, ServerDelegate* delegate, std::unique_ptr<Server>* out) {
  std::unique_ptr<WinServer> server(new WinServer(options, delegate));
  Status st = server->Listen();
  if (!st.ok()) return st;
  server->StartThreads();
  *out = std::move(server);
  return Status::Ok();
}

}  // namespace sipc
