// The conversation rules both server transports share
// (docs/design.md#the-conversation-core).
#include "conversation.h"

#include <cerrno>
#include <string>
#include <utility>

#include "clock.h"

namespace sipc {

void CountConnection(ConversationPhase phase, ServerStats* stats) {
  switch (phase) {
    case ConversationPhase::kAwaitFirstByte:
    case ConversationPhase::kReading:
      stats->connections_reading++;
      break;
    case ConversationPhase::kPeerCheck:
      stats->connections_peer_check++;
      break;
    case ConversationPhase::kHandling:
      stats->connections_handling++;
      break;
    case ConversationPhase::kIdle:     // no client
    case ConversationPhase::kClosing:  // over
      break;
  }
}

ReadVerdict ReadVerdict::Drop(bool report, Counter counter, Status why) {
  ReadVerdict v;
  v.kind = Kind::kDrop;
  v.report = report;
  v.counter = counter;
  v.why = std::move(why);
  return v;
}

void StopRequest::Request(StopReason why, int64_t now, uint32_t grace_ms) {
  int64_t deadline = DeadlineAfter(now, grace_ms);
  if (requested) {
    if (deadline < grace_deadline) grace_deadline = deadline;
    return;
  }
  requested = true;
  reason = why;
  grace_deadline = deadline;
}

bool ListenerOccupation::Record(Attempt result) {
  switch (result) {
    case Attempt::kTookOne:
      taken_++;
      // One attempt more than the instances that listened must find
      // none; if it takes one too, the name has instances not ours.
      return taken_ <= listening_;
    case Attempt::kNoneListening:
      complete_ = true;
      return false;
    case Attempt::kFailed:
      return false;
  }
  return false;
}

void ConversationNotices::DeliverTo(ServerDelegate* delegate) const {
  if (!released.empty()) delegate->OnReleased(id, released);
  if (!written.empty()) delegate->OnWritten(id, written);
  if (lost) delegate->OnConversationLost(id, lost_why);
}

void Conversation::Reset(size_t max_request_bytes) {
  id = 0;
  peer = PeerInfo();
  phase = ConversationPhase::kIdle;
  reader = pkt::Reader(max_request_bytes);
  request.Reset();
  deadline = 0;
  out.Clear();
  ended = quit = aborted = write_waiting = false;
  write_waiting_since = 0;
}

bool Conversation::StartRequestClock(int64_t now, uint32_t timeout_ms) {
  if (timeout_ms == 0) return false;
  deadline = now + timeout_ms;
  return true;
}

void Conversation::BeginPeerCheck() {
  phase = ConversationPhase::kPeerCheck;
  deadline = 0;
}

void Conversation::AllowRead() {
  phase = ConversationPhase::kReading;
  deadline = 0;
}

bool Conversation::RequestExpired(int64_t now) const {
  bool reading = phase == ConversationPhase::kReading || phase == ConversationPhase::kAwaitFirstByte;
  return reading && deadline != 0 && now >= deadline;
}

Status Conversation::TimeoutStatus(uint32_t timeout_ms) {
  return Status::Lib(LibCode::kRequestTimeout, std::to_string(timeout_ms) + " ms");
}

Status Conversation::TooManyConnectionsStatus(uint32_t max_connections) {
  return Status::Lib(LibCode::kTooManyConnections, std::to_string(max_connections) + " open");
}

Status Conversation::ClientLeftStatus() { return Status::FromErrno(ECONNRESET, "read", "client went away"); }

Status Conversation::WriteStalledStatus() { return Status::Lib(LibCode::kWriteStalled); }

Status Conversation::GraceOverStatus() {
  return Status::Lib(LibCode::kServerClosed, "closed before the handler finished");
}

ReadVerdict Conversation::Feed(const uint8_t* data, size_t len, size_t max_request_bytes) {
  reader.Feed(data, len, &request);
  switch (reader.state()) {
    case pkt::Reader::State::kNeedMore:
      break;
    case pkt::Reader::State::kDone:
      return ReadVerdict::Complete();
    case pkt::Reader::State::kProtocolError:
      return ReadVerdict::Drop(true, ReadVerdict::Counter::kProtocol,
                               Status::Lib(LibCode::kProtocol, std::string(reader.error_text()) + " in request"));
    case pkt::Reader::State::kTooLarge:
      return ReadVerdict::Drop(
          true, ReadVerdict::Counter::kTooLarge,
          Status::Lib(LibCode::kRequestTooLarge, "limit " + std::to_string(max_request_bytes) + " bytes"));
  }
  return ReadVerdict::NeedMore();
}

// A client that hangs up without sending anything is a liveness probe
// (docs/protocol.md#liveness-probes): closed silently, as Git does.
ReadVerdict Conversation::EndOfInput() const {
  if (!reader.started()) return ReadVerdict::Drop(false, ReadVerdict::Counter::kNone, Status::Ok());
  return ReadVerdict::Drop(true, ReadVerdict::Counter::kProtocol, Status::Lib(LibCode::kIncompleteRequest));
}

ReadVerdict Conversation::ReadFailed(Status why) const {
  bool started = reader.started();
  return ReadVerdict::Drop(started, started ? ReadVerdict::Counter::kProtocol : ReadVerdict::Counter::kNone,
                           std::move(why));
}

ByteBuffer Conversation::TakeRequest() {
  phase = ConversationPhase::kHandling;
  deadline = 0;
  reader = pkt::Reader();
  return ByteBuffer(std::move(request));
}

std::vector<uint8_t> Conversation::FrameCopy(const ReplyChunk& chunk) {
  std::vector<uint8_t> framed;
  if (Borrows(chunk)) return framed;
  if (chunk.end) {
    pkt::AppendMessage(chunk.data, chunk.len, &framed);
  } else {
    pkt::AppendPackets(chunk.data, chunk.len, &framed);
  }
  return framed;
}

ReplyOutcome Conversation::Queue(const ReplyChunk& chunk, std::vector<uint8_t>&& framed, size_t already_sent) {
  if (Borrows(chunk)) {
    out.PushBorrowed(chunk.data, chunk.len, chunk.end, chunk.token);
    DropSent(already_sent);
    MarkLast(chunk);
    return ReplyOutcome::kBorrowed;
  }
  // Under the mark the caller is done with the chunk now: no token, so no
  // OnWritten (and no hop to the caller's thread) follows.
  bool buffered = out.bytes() + (framed.size() - already_sent) <= kWriteMark;
  out.Push(std::move(framed), buffered ? 0 : chunk.token);
  DropSent(already_sent);
  MarkLast(chunk);
  return buffered ? ReplyOutcome::kBuffered : ReplyOutcome::kQueued;
}

void Conversation::DropSent(size_t already_sent) {
  if (already_sent == 0) return;
  std::vector<uint64_t> none;
  out.Consume(already_sent, &none);  // the entry is not complete: no token
}

void Conversation::MarkLast(const ReplyChunk& chunk) {
  if (!chunk.end) return;
  ended = true;
  quit = chunk.quit;
}

bool Conversation::Abort() {
  bool first = !aborted;
  aborted = true;
  ended = true;
  write_waiting = false;
  return first;
}

}  // namespace sipc
