// ClientExchange: one client exchange as every client transport sees it,
// and its rules (docs/design.md#the-client-core).
//
// A transport (posix/socket_exchange.cc for the POSIX blocking and asynchronous
// clients, win/client_win.cc for the Windows ones) derives one object per
// exchange from ClientExchange and does only the I/O: it tries to connect,
// writes what SendSpans() gives, reads into a buffer of its own, and
// reports what each system call brought. What a failed connect means
// (ConnectPolicy, Git's loop), when the deadline has passed, what the
// request's framed bytes are, what the response bytes mean, when a stream
// may read, what a cancel does and the one outcome (ClientResult) are
// decided here, once.
//
// Pure C++: no OS calls, no clock (callers pass `now`), no locking. An
// exchange is used by one thread at a time; its transport says which.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "byte_buffer.h"
#include "client.h"
#include "connect_policy.h"
#include "pkt_line.h"
#include "status.h"
#include "stream_flow.h"

namespace sipc {

class ClientExchange {
 public:
  enum class Phase {
    kConnect,    // about to try, or trying, to connect
    kRetryWait,  // a connect failed; the next attempt is due at next_deadline()
    kIdle,       // connected, no request yet (a connect-only exchange)
    kSend,       // writing the request
    kReceive,    // reading the response
    kDone,       // over: result() is the outcome
  };

  // `not_found_out_of_time`: see ConnectPolicy (Git's POSIX client says
  // not-listening when waiting for a missing path runs out, its Windows
  // client path-not-found).
  ClientExchange(std::string path, const ClientOptions& options, bool stream,
                 ActiveState not_found_out_of_time = ActiveState::kNotListening);
  virtual ~ClientExchange() = default;
  ClientExchange(const ClientExchange&) = delete;
  ClientExchange& operator=(const ClientExchange&) = delete;

  // ---- the request ---------------------------------------------------------
  // A borrowed request is sent from the caller's bytes, framed on the fly;
  // a transient one too, until OwnRequest(). kNone: connect only (kIdle
  // once connected, until SetFramedRequest()).
  void SetRequest(const ClientRequest& request);
  // An already framed request (AsyncClient::Send on a connect-only exchange).
  void SetFramedRequest(std::vector<uint8_t>&& framed);
  // Copies what is not sent yet of a transient request into the
  // exchange's own memory, so that the caller's bytes may go.
  void OwnRequest();
  bool has_request() const { return have_request_; }

  // ---- time ----------------------------------------------------------------
  // The first call starts the exchange: the connect window and the
  // deadline (timeoutMs) count from `now`. Later calls do nothing.
  void Begin(int64_t now);
  // Ends the exchange with ERR_IPC_TIMEOUT if its deadline has passed.
  // True when the exchange is over (by this call or before).
  bool Expire(int64_t now);
  // When the transport must look again without I/O: the next connect
  // attempt or the deadline, whichever is first; -1 for never.
  int64_t next_deadline() const;
  // The exchange's own deadline (Begin + timeoutMs); -1 for none.
  int64_t deadline() const { return policy_.exchange_deadline_ms(); }
  // kRetryWait whose time has come: back to kConnect. True if so.
  bool RetryDue(int64_t now);
  // kRetryWait ended early: the transport learned that the server may
  // take a connection now (Windows: WaitNamedPipeW said an instance is
  // free). Back to kConnect.
  void RetryNow();

  // ---- connecting ----------------------------------------------------------
  // A connect attempt failed: `failure` for the policy; `give_up` is the
  // error the exchange ends with if the policy gives up.
  void OnConnectFailed(ConnectFailure failure, Status give_up, int64_t now);
  // Connecting cannot even be tried (a bad path, no socket): over now.
  void OnConnectImpossible(ActiveState state, Status why);
  // The transport connected. `identity`: its check of the server's
  // identity (options.server_identity), Ok when none was asked for.
  // Then kSend, or kIdle without a request.
  void OnConnected(const Status& identity = Status::Ok());
  // True once, when a connect-only exchange reached kIdle: the transport
  // reports OnConnected to its delegate.
  bool TakeConnectedNotice();

  // ---- sending -------------------------------------------------------------
  // The framed request bytes not yet sent, as spans (header and payload
  // pieces; `headers` needs room for max_spans / 2 + 1). 0 when all is sent.
  size_t SendSpans(pkt::Span* spans, size_t max_spans, char (*headers)[pkt::kHeaderSize]) const;
  // Whether SendSpans() points into memory that lives until the exchange
  // ends (an owned or borrowed request) beyond the headers.
  bool request_borrowed() const { return borrowed_mode_; }
  // `n` more framed bytes were taken by the kernel. Once all are, kReceive
  // (the transport reads when the socket or pipe says so).
  void OnSent(size_t n);

  // ---- receiving -----------------------------------------------------------
  // What a read brought (n > 0). May end the exchange: the flush packet
  // (Ok), a malformed response, or one over options.max_response_bytes.
  void OnReceived(const uint8_t* data, size_t n);
  // The server hung up before the flush packet (end of file / broken pipe).
  void OnServerClosed();
  // The server reset the connection before the flush packet.
  void OnServerReset();
  // Streaming: the payload read since the last call (empty when none),
  // to hand to the consumer with ledger(). Counted there as handed over
  // and not yet taken; at the bound (stream_flow.h) reading stops until
  // ChunksTaken().
  ByteBuffer TakeChunk();
  bool has_chunk() const { return stream_ && !response_.empty(); }
  // Streaming: shared with the consumer, which counts what it takes
  // (null for other exchanges).
  const std::shared_ptr<StreamLedger>& ledger() const { return ledger_; }

  // ---- flow control and cancel ---------------------------------------------
  void Pause() { flow_.Pause(); }
  void Resume() { flow_.Resume(); }
  // The consumer took enough of what was handed over (StreamLedger::Taken).
  void ChunksTaken() { flow_.Release(); }
  // Whether the transport may read now: in kReceive, unless paused or
  // held at the hand-over bound.
  bool MayRead() const { return phase_ == Phase::kReceive && flow_.MayRead(true); }
  // Ends the exchange with `why` (a cancel, an I/O error) unless it is over.
  void Fail(const Status& why);

  // ---- the outcome ---------------------------------------------------------
  Phase phase() const { return phase_; }
  bool done() const { return phase_ == Phase::kDone; }
  bool stream() const { return stream_; }
  const std::string& path() const { return path_; }
  const ClientOptions& options() const { return options_; }
  const ClientResult& result() const { return result_; }
  // The whole response (non-streaming), valid once done() with an Ok result.
  ByteBuffer& response() { return response_; }

  static Status TimeoutStatus(int64_t timeout_ms);

 private:
  void Finish(const Status& status);
  void EnterConnected();

  std::string path_;
  ClientOptions options_;
  bool stream_;
  ActiveState not_found_out_of_time_;
  Phase phase_ = Phase::kConnect;
  bool begun_ = false;
  ConnectPolicy policy_;  // re-made by Begin(), with its time
  int64_t retry_at_ = -1;
  bool connected_notice_ = false;

  bool have_request_ = false;
  std::vector<uint8_t> request_;       // owned, framed
  bool borrowed_mode_ = false;         // the request is the caller's payload,
  const uint8_t* borrowed_ = nullptr;  // unframed (may be null when empty)
  size_t borrowed_len_ = 0;
  size_t sent_ = 0;  // framed bytes taken so far

  pkt::Reader reader_;
  uint64_t received_ = 0;  // response payload bytes, streamed ones too
  ByteBuffer response_;
  StreamFlow flow_;
  std::shared_ptr<StreamLedger> ledger_;  // streams only
  ClientResult result_;
};

// serverUid, checked by the transport on the connected socket or pipe
// before the request is sent: Ok, or ERR_IPC_SERVER_IDENTITY naming the
// path, whom the option requires and whom the server runs as.
// POSIX: `server_uid` from the peer credentials (-1: unknown), `own_uid`
// the client's effective uid.
Status CheckServerUid(const ClientOptions& options, const std::string& path, int64_t server_uid, int64_t own_uid);
// Windows ('self' only): the user SIDs (string form) of the pipe server's
// process token and of the client's; empty when unknown.
Status CheckServerUser(const ClientOptions& options, const std::string& path, const std::string& server_sid,
                       const std::string& own_sid);

// Both asynchronous clients queue what the calling thread asks for and
// apply it on their I/O thread: one command, one meaning.
struct ExchangeCommand {
  enum class Kind { kAdopt, kSend, kCancel, kPause, kResume, kChunksTaken };
  ExchangeCommand(Kind k, uint64_t i) : kind(k), id(i) {}
  Kind kind;
  uint64_t id;
  std::unique_ptr<ClientExchange> exchange;  // kAdopt: started by the calling thread
  std::vector<uint8_t> request;              // kSend: framed
  Status why;                                // kCancel

  // Applies kSend, kCancel, kPause, kResume or kChunksTaken to the exchange `id` names;
  // the transport then drives it as after any I/O.
  void ApplyTo(ClientExchange* exchange);
};

// AsyncClient's Send, Cancel, Pause and Resume as queued commands, for
// both transports: Push() (any thread but the I/O thread's) queues one
// and wakes the I/O thread.
class QueuedAsyncClient : public AsyncClient {
 public:
  void Send(uint64_t id, const uint8_t* request, size_t len) override;
  void Cancel(uint64_t id, const Status& why) override;
  void Pause(uint64_t id) override;
  void Resume(uint64_t id) override;
  void ChunksTaken(uint64_t id) override;

 protected:
  virtual void Push(ExchangeCommand&& command) = 0;
};

}  // namespace sipc
