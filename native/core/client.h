// The simple-ipc client (docs/protocol.md#client): the blocking client used by the
// synchronous API, and the asynchronous client that runs exchanges on a
// thread of its own and reports through ClientDelegate.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "byte_buffer.h"
#include "stream_flow.h"
#include "status.h"

namespace sipc {

enum class ActiveState { kListening, kNotListening, kInvalidPath, kPathNotFound, kOtherError };

// "listening", "not-listening", "invalid-path", "path-not-found", "other-error".
const char* ActiveStateName(ActiveState state);

// serverUid: whom the client requires the server to run as.
enum class ServerIdentity {
  kAny,   // no check
  kSelf,  // the client's own user (POSIX: effective uid; Windows: token user SID)
  kUid,   // POSIX: ClientOptions::server_uid
};

struct ClientOptions {
  bool wait_if_busy = true;
  bool wait_if_not_found = false;
  uint32_t connect_timeout_ms = 1000;  // Git: retry every 50 ms for 1000 ms
  int64_t timeout_ms = -1;             // whole exchange; -1: no limit
  uint64_t max_response_bytes = 0;     // response payload limit; 0: none
  ServerIdentity server_identity = ServerIdentity::kAny;
  uint32_t server_uid = 0;  // with kUid
};

// Interval between connect attempts (docs/protocol.md#client).
constexpr uint32_t kConnectRetryMs = 50;

// docs/protocol.md#client, "The active state of a path". Blocking.
ActiveState GetActiveState(const std::string& path);

// Connect failures carry the state the connect loop ended in, so that the
// caller can tell "no server" from "something else went wrong".
struct ClientResult {
  Status status;
  ActiveState connect_state = ActiveState::kListening;  // meaningful when connect failed
  bool connected = false;
  std::string address;  // the path, set on failure: the JS error's `address`
};

// Connects, sends `request` (raw bytes; framed here), reads the whole
// response. Blocking, on the calling thread.
ClientResult SendCommandSync(const std::string& path, const uint8_t* request, size_t request_len,
                             const ClientOptions& options, ByteBuffer* response);

// Takes a response's payload as it arrives (SendCommandSyncStreaming).
class ResponseSink {
 public:
  virtual ~ResponseSink() = default;
  virtual void OnResponseBytes(const uint8_t* data, size_t len) = 0;
};

// SendCommandSync, but the response goes to `sink` piece by piece as it is
// read instead of being kept whole, so memory stays bounded whatever the
// response's size (the native command-line client, docs/cli.md). Blocking;
// `sink` is called on the calling thread.
ClientResult SendCommandSyncStreaming(const std::string& path, const uint8_t* request, size_t request_len,
                                      const ClientOptions& options, ResponseSink* sink);

class ClientDelegate {
 public:
  virtual ~ClientDelegate() = default;
  // Streaming exchanges: response payload as it arrives, handed over
  // without a copy. Once the consumer has taken the chunk, it calls
  // `ledger->Taken(size)` (any thread), and AsyncClient::ChunksTaken(id)
  // when that says so: at kMaxUntakenStreamBytes not taken, the exchange
  // stops reading until then (core/stream_flow.h).
  virtual void OnChunk(uint64_t id, ByteBuffer&& chunk, const std::shared_ptr<StreamLedger>& ledger) = 0;
  // Connect-only exchanges: the connection is up and waits for Send().
  virtual void OnConnected(uint64_t id) = 0;
  // The end of an exchange (also of a connect-only one that failed or was
  // cancelled). `response` is the whole reply for non-streaming exchanges.
  virtual void OnComplete(uint64_t id, const ClientResult& result, ByteBuffer&& response) = 0;
};

// The request an exchange starts with (raw bytes; framed by the client).
struct ClientRequest {
  enum class Kind {
    kNone,       // connect only: OnConnected, then Send() (or Cancel)
    kBorrowed,   // the caller keeps the bytes alive and unchanged until OnComplete
    kTransient,  // the bytes are the caller's again when Start() returns
  };
  Kind kind = Kind::kNone;
  const uint8_t* data = nullptr;
  size_t size = 0;

  static ClientRequest None() { return ClientRequest{}; }
  static ClientRequest Borrowed(const uint8_t* data, size_t size) { return ClientRequest{Kind::kBorrowed, data, size}; }
  static ClientRequest Transient(const uint8_t* data, size_t size) {
    return ClientRequest{Kind::kTransient, data, size};
  }
};

// Runs any number of exchanges at once on one I/O thread of its own (and,
// where the caller watches caller_fd(), finishes small ones on the calling
// thread), so that they neither block the JS thread nor queue behind
// libuv's pool.
// The rules of each exchange are ClientExchange's (exchange.h); the
// transports only do I/O.
class AsyncClient {
 public:
  virtual ~AsyncClient() = default;
  // Connect, send `request`, read the response. `stream`: report payload
  // through OnChunk as it arrives.
  virtual void Start(uint64_t id, const std::string& path, const ClientRequest& request, const ClientOptions& options,
                     bool stream) = 0;
  // The request of a connect-only exchange (raw; framed and copied here).
  virtual void Send(uint64_t id, const uint8_t* request, size_t len) = 0;
  // Ends an exchange early with `why` (kAborted, kTimeout, ...). No-op if
  // it already completed.
  virtual void Cancel(uint64_t id, const Status& why) = 0;
  // Cancels everything and joins the thread. No delegate call after it.
  virtual void Shutdown() = 0;
  // Streaming exchanges: stop reading the response until Resume(), so that
  // a slow consumer holds the server back instead of piling chunks up in
  // memory (the server sees ordinary socket or pipe backpressure). Both
  // may be called in any phase; no-ops for unknown ids.
  virtual void Pause(uint64_t id) = 0;
  virtual void Resume(uint64_t id) = 0;
  // Streaming exchanges: the consumer took enough of the chunks handed
  // over (StreamLedger::Taken() said so): the exchange reads on. Like
  // Pause(): from the consumer's thread; a no-op for unknown ids.
  virtual void ChunksTaken(uint64_t id) = 0;

  // ---- the calling thread's side (POSIX with epoll; core/caller_side.h) ----
  // A descriptor that becomes readable when an exchange waiting on the
  // calling thread's side has news; the caller's event loop watches it and
  // then calls CompleteOnCaller(). -1: there is no such side (every
  // exchange finishes on the I/O thread).
  virtual int caller_fd() const { return -1; }
  // Calling thread: from now on, exchanges that qualify wait on the
  // calling thread's side (the caller watches caller_fd()). Off until then.
  virtual void UseCallerSide() {}
  struct Completion {
    uint64_t id;
    ClientResult result;
    ByteBuffer response;
  };
  // Calling thread, when caller_fd() is readable: finishes the waiting
  // exchanges whose responses are in, with bounded non-blocking calls, and
  // appends their outcomes to `done` (reported there, not through the
  // delegate); hands the rest that had news to the I/O thread.
  virtual void CompleteOnCaller(std::vector<Completion>* done) { (void)done; }
};

std::unique_ptr<AsyncClient> CreateAsyncClient(ClientDelegate* delegate);

}  // namespace sipc
