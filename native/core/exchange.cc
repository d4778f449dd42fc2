#include "exchange.h"

#include <utility>

namespace sipc {

ClientExchange::ClientExchange(std::string path, const ClientOptions& options, bool stream,
                               ActiveState not_found_out_of_time)
    : path_(std::move(path)),
      options_(options),
      stream_(stream),
      not_found_out_of_time_(not_found_out_of_time),
      policy_(options, 0, not_found_out_of_time),
      ledger_(stream ? std::make_shared<StreamLedger>() : nullptr) {}

// ---- the request -------------------------------------------------------------

void ClientExchange::SetRequest(const ClientRequest& request) {
  if (request.kind == ClientRequest::Kind::kNone) return;
  borrowed_mode_ = true;
  borrowed_ = request.data;
  borrowed_len_ = request.size;
  have_request_ = true;
}

void ClientExchange::SetFramedRequest(std::vector<uint8_t>&& framed) {
  request_ = std::move(framed);
  borrowed_mode_ = false;
  borrowed_ = nullptr;
  have_request_ = true;
}

void ClientExchange::OwnRequest() {
  bool unsent = phase_ == Phase::kConnect || phase_ == Phase::kRetryWait || phase_ == Phase::kSend;
  if (!borrowed_mode_ || !unsent) return;
  // Framed as the borrowed bytes are framed on the fly, so `sent_` (an
  // offset into the framed request) stays right.
  pkt::AppendMessage(borrowed_, borrowed_len_, &request_);
  borrowed_mode_ = false;
  borrowed_ = nullptr;
  borrowed_len_ = 0;
}

// ---- time --------------------------------------------------------------------

void ClientExchange::Begin(int64_t now) {
  if (begun_) return;
  begun_ = true;
  policy_ = ConnectPolicy(options_, now, not_found_out_of_time_);
}

bool ClientExchange::Expire(int64_t now) {
  if (phase_ == Phase::kDone) return true;
  int64_t expires = deadline();
  if (!begun_ || expires < 0 || now < expires) return false;
  Finish(TimeoutStatus(options_.timeout_ms));
  return true;
}

int64_t ClientExchange::next_deadline() const {
  if (phase_ == Phase::kDone) return -1;
  int64_t at = begun_ ? deadline() : -1;
  if (phase_ == Phase::kRetryWait && (at < 0 || retry_at_ < at)) at = retry_at_;
  return at;
}

bool ClientExchange::RetryDue(int64_t now) {
  if (phase_ != Phase::kRetryWait || now < retry_at_) return false;
  phase_ = Phase::kConnect;
  return true;
}

void ClientExchange::RetryNow() {
  if (phase_ == Phase::kRetryWait) phase_ = Phase::kConnect;
}

Status ClientExchange::TimeoutStatus(int64_t timeout_ms) {
  return Status::Lib(LibCode::kTimeout, "after " + std::to_string(timeout_ms) + " ms");
}

// ---- connecting --------------------------------------------------------------

void ClientExchange::OnConnectFailed(ConnectFailure failure, Status give_up, int64_t now) {
  ConnectDecision decision = policy_.OnFailure(failure, now);
  switch (decision.action) {
    case ConnectDecision::Action::kRetry:
      retry_at_ = decision.retry_at_ms;
      phase_ = Phase::kRetryWait;
      return;
    case ConnectDecision::Action::kTimeout:
      Finish(TimeoutStatus(options_.timeout_ms));
      return;
    case ConnectDecision::Action::kGiveUp:
      OnConnectImpossible(decision.state, std::move(give_up));
      return;
  }
}

void ClientExchange::OnConnectImpossible(ActiveState state, Status why) {
  result_.connect_state = state;
  Finish(why);
}

void ClientExchange::OnConnected(const Status& identity) {
  if (phase_ == Phase::kDone) return;
  result_.connected = true;
  if (!identity.ok()) {
    Finish(identity);
    return;
  }
  EnterConnected();
}

void ClientExchange::EnterConnected() {
  if (have_request_) {
    phase_ = Phase::kSend;
  } else {
    phase_ = Phase::kIdle;
    connected_notice_ = true;
  }
}

bool ClientExchange::TakeConnectedNotice() {
  bool notice = connected_notice_;
  connected_notice_ = false;
  return notice;
}

// ---- sending -----------------------------------------------------------------

size_t ClientExchange::SendSpans(pkt::Span* spans, size_t max_spans, char (*headers)[pkt::kHeaderSize]) const {
  if (phase_ != Phase::kSend || max_spans == 0) return 0;
  // A borrowed payload is framed on the fly; an owned request is framed.
  if (borrowed_mode_) return pkt::FramedSpans(borrowed_, borrowed_len_, sent_, spans, max_spans, headers);
  if (sent_ >= request_.size()) return 0;
  spans[0] = pkt::Span{request_.data() + sent_, request_.size() - sent_};
  return 1;
}

void ClientExchange::OnSent(size_t n) {
  if (phase_ != Phase::kSend) return;
  sent_ += n;
  pkt::Span span;
  char header[1][pkt::kHeaderSize];
  if (SendSpans(&span, 1, header) != 0) return;
  borrowed_mode_ = false;
  borrowed_ = nullptr;
  std::vector<uint8_t>().swap(request_);
  phase_ = Phase::kReceive;
}

// ---- receiving ---------------------------------------------------------------

void ClientExchange::OnReceived(const uint8_t* data, size_t n) {
  if (phase_ != Phase::kReceive) return;
  size_t before = response_.size();
  reader_.Feed(data, n, &response_);
  received_ += response_.size() - before;
  if (options_.max_response_bytes != 0 && received_ > options_.max_response_bytes) {
    response_.Reset();
    Finish(Status::Lib(LibCode::kResponseTooLarge,
                       "over " + std::to_string(options_.max_response_bytes) + " bytes from " + path_));
    return;
  }
  switch (reader_.state()) {
    case pkt::Reader::State::kNeedMore:
      return;
    case pkt::Reader::State::kDone:
      Finish(Status::Ok());
      return;
    case pkt::Reader::State::kProtocolError:
    case pkt::Reader::State::kTooLarge:
      Finish(Status::Lib(LibCode::kProtocol, std::string(reader_.error_text()) + " in response"));
      return;
  }
}

void ClientExchange::OnServerClosed() {
  Fail(Status::Lib(LibCode::kIncompleteResponse, "server closed the connection before the flush packet"));
}

void ClientExchange::OnServerReset() {
  Fail(Status::Lib(LibCode::kIncompleteResponse, "connection reset by the server"));
}

ByteBuffer ClientExchange::TakeChunk() {
  // Counted before the consumer can see it, so that its Taken() never
  // runs ahead of the count.
  if (ledger_->HandedOver(response_.size())) flow_.Hold();
  // Handed over whole (external in JS when large); the next chunk is read
  // into fresh memory.
  return ByteBuffer(std::move(response_));
}

// ---- the outcome -------------------------------------------------------------

void ClientExchange::Fail(const Status& why) {
  if (phase_ != Phase::kDone) Finish(why);
}

void ClientExchange::Finish(const Status& status) {
  result_.status = status;
  if (!status.ok()) result_.address = path_;
  phase_ = Phase::kDone;
  borrowed_mode_ = false;  // the caller's bytes may go once it hears of the end
  borrowed_ = nullptr;
}

// ---- serverUid ---------------------------------------------------------------

namespace {

Status IdentityMismatch(const std::string& path, const std::string& expected, const std::string& actual) {
  return Status::Lib(LibCode::kServerIdentity, "'" + path + "': expected " + expected + ", the server runs as " + actual);
}

std::string UidText(int64_t uid) { return uid < 0 ? "an unknown user" : "uid " + std::to_string(uid); }

}  // namespace

Status CheckServerUid(const ClientOptions& options, const std::string& path, int64_t server_uid, int64_t own_uid) {
  int64_t expected;
  switch (options.server_identity) {
    case ServerIdentity::kAny:
      return Status::Ok();
    case ServerIdentity::kSelf:
      expected = own_uid;
      break;
    case ServerIdentity::kUid:
    default:
      expected = options.server_uid;
      break;
  }
  if (server_uid >= 0 && server_uid == expected) return Status::Ok();
  return IdentityMismatch(path, UidText(expected), UidText(server_uid));
}

Status CheckServerUser(const ClientOptions& options, const std::string& path, const std::string& server_sid,
                       const std::string& own_sid) {
  if (options.server_identity == ServerIdentity::kAny) return Status::Ok();
  if (options.server_identity != ServerIdentity::kSelf) {
    return IdentityMismatch(path, "uid " + std::to_string(options.server_uid) + " (a number is POSIX only)",
                            server_sid.empty() ? "an unknown user" : server_sid);
  }
  if (!own_sid.empty() && server_sid == own_sid) return Status::Ok();
  return IdentityMismatch(path, own_sid.empty() ? "this user" : own_sid,
                          server_sid.empty() ? "an unknown user" : server_sid);
}

// ---- commands ----------------------------------------------------------------

void ExchangeCommand::ApplyTo(ClientExchange* exchange) {
  switch (kind) {
    case Kind::kAdopt:
      return;
    case Kind::kSend:
      // Only a connect-only exchange waiting for its request takes one.
      if (exchange->phase() != ClientExchange::Phase::kIdle) return;
      exchange->SetFramedRequest(std::move(request));
      exchange->OnConnected();
      return;
    case Kind::kCancel:
      exchange->Fail(why);
      return;
    case Kind::kPause:
      exchange->Pause();
      return;
    case Kind::kResume:
      exchange->Resume();
      return;
    case Kind::kChunksTaken:
      exchange->ChunksTaken();
      return;
  }
}

void QueuedAsyncClient::Send(uint64_t id, const uint8_t* request, size_t len) {
  ExchangeCommand c(ExchangeCommand::Kind::kSend, id);
  pkt::AppendMessage(request, len, &c.request);
  Push(std::move(c));
}

void QueuedAsyncClient::Cancel(uint64_t id, const Status& why) {
  ExchangeCommand c(ExchangeCommand::Kind::kCancel, id);
  c.why = why;
  Push(std::move(c));
}

void QueuedAsyncClient::Pause(uint64_t id) { Push(ExchangeCommand(ExchangeCommand::Kind::kPause, id)); }

void QueuedAsyncClient::Resume(uint64_t id) { Push(ExchangeCommand(ExchangeCommand::Kind::kResume, id)); }

void QueuedAsyncClient::ChunksTaken(uint64_t id) { Push(ExchangeCommand(ExchangeCommand::Kind::kChunksTaken, id)); }

}  // namespace sipc
