// Unit tests of native/core/conversation: the rules both server transports
// share (docs/design.md#the-conversation-core), each at its boundaries.
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "../core/clock.h"
#include "../core/conversation.h"
#include "test_util.h"

using sipc::Conversation;
using sipc::ConversationNotices;
using sipc::ConversationPhase;
using sipc::LibCode;
using sipc::ReadVerdict;
using sipc::ReplyChunk;
using sipc::ReplyOutcome;
using sipc::ServerStats;
using sipc::Status;
using sipc::StopReason;
using sipc::StopRequest;

namespace {

std::vector<uint8_t> Bytes(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }

ReadVerdict FeedString(Conversation* conv, const std::string& s, size_t max = SIZE_MAX) {
  std::vector<uint8_t> bytes = Bytes(s);
  return conv->Feed(bytes.data(), bytes.size(), max);
}

ReplyChunk Chunk(const std::vector<uint8_t>& data, bool end, uint64_t token = 0) {
  ReplyChunk chunk;
  chunk.data = data.data();
  chunk.len = data.size();
  chunk.end = end;
  chunk.token = token;
  return chunk;
}

// Everything queued, as the peer would receive it.
std::string Drain(Conversation* conv, std::vector<uint64_t>* written) {
  std::string all;
  sipc::pkt::Span spans[16];
  sipc::OutputQueue::HeaderScratch<16> headers;
  for (;;) {
    size_t count = conv->out.Fill(spans, &headers);
    size_t bytes = 0;
    for (size_t i = 0; i < count; i++) {
      all.append(reinterpret_cast<const char*>(spans[i].data), spans[i].size);
      bytes += spans[i].size;
    }
    conv->Wrote(bytes, written);
    if (count == 0) return all;
  }
}

class RecordingDelegate : public sipc::ServerDelegate {
 public:
  std::vector<std::string> calls;
  void OnRequest(sipc::ConnId, sipc::ByteBuffer&&, const sipc::PeerInfo&) override { calls.push_back("request"); }
  void OnPeerCheck(sipc::ConnId, const sipc::PeerInfo&) override { calls.push_back("peer"); }
  void OnWritten(sipc::ConnId id, const std::vector<uint64_t>& tokens) override {
    calls.push_back("written " + std::to_string(id) + ":" + std::to_string(tokens.size()));
  }
  void OnReleased(sipc::ConnId id, const std::vector<uint64_t>& tokens) override {
    calls.push_back("released " + std::to_string(id) + ":" + std::to_string(tokens.size()));
  }
  void OnConversationLost(sipc::ConnId id, const Status& why) override {
    calls.push_back("lost " + std::to_string(id) + ":" + sipc::StatusCodeName(why));
  }
  void OnClientError(const Status&, const sipc::PeerInfo&) override { calls.push_back("client error"); }
  void OnStopped(StopReason) override { calls.push_back("stopped"); }
};

}  // namespace

TEST(stop_request_first_reason_stays_and_only_a_shorter_grace_wins) {
  StopRequest stop;
  CHECK(!stop.requested);
  stop.Request(StopReason::kQuit, 1000, 500);
  CHECK(stop.requested);
  CHECK(stop.reason == StopReason::kQuit);
  CHECK_EQ(stop.grace_deadline, int64_t{1500});
  stop.Request(StopReason::kClosed, 1100, 1000);  // later and longer: no change
  CHECK(stop.reason == StopReason::kQuit);
  CHECK_EQ(stop.grace_deadline, int64_t{1500});
  stop.Request(StopReason::kClosed, 1200, 300);  // ends exactly then: no change
  CHECK_EQ(stop.grace_deadline, int64_t{1500});
  stop.Request(StopReason::kClosed, 1200, 299);  // one ms shorter: wins
  CHECK_EQ(stop.grace_deadline, int64_t{1499});
  stop.Request(StopReason::kClosed, 1300, 0);  // close({ timeoutMs: 0 }): now
  CHECK_EQ(stop.grace_deadline, int64_t{1300});
  CHECK(stop.reason == StopReason::kQuit);
}

TEST(stop_request_without_a_time_limit_waits_until_a_finite_one_comes) {
  StopRequest stop;
  stop.Request(StopReason::kQuit, 1000, sipc::kNoTimeLimitMs);  // closeTimeoutMs: 0
  CHECK_EQ(stop.grace_deadline, INT64_MAX);
  stop.Request(StopReason::kClosed, 2000, 0);  // close({ force: true }): now
  CHECK_EQ(stop.grace_deadline, int64_t{2000});
  CHECK(stop.reason == StopReason::kQuit);
}

TEST(idle_stop_is_due_exactly_the_timeout_after_the_last_close_and_never_while_a_connection_is_open) {
  sipc::IdleRule idle;
  CHECK_EQ(idle.DueAt(0, 1000), sipc::IdleRule::kNever);  // no timeout: never
  idle.timeout_ms = 300;
  CHECK_EQ(idle.DueAt(0, 1000), int64_t{1300});
  CHECK(!idle.Due(1299, 0, 1000));
  CHECK(idle.Due(1300, 0, 1000));  // at the deadline
  CHECK(idle.Due(5000, 0, 1000));
  // Any open connection holds it off, however long.
  CHECK_EQ(idle.DueAt(1, 1000), sipc::IdleRule::kNever);
  CHECK(!idle.Due(INT64_MAX - 1, 1, 1000));
}

TEST(a_stop_drains_only_once_nobody_new_can_reach_the_server_and_only_within_its_grace) {
  CHECK(sipc::StopDrains(StopReason::kIdle, false));  // an idle stop makes itself unreachable
  for (StopReason reason : {StopReason::kClosed, StopReason::kQuit, StopReason::kStolen}) {
    CHECK(!sipc::StopDrains(reason, false));
    CHECK(sipc::StopDrains(reason, true));  // e.g. the path leads to another server
  }
  CHECK(!sipc::StopRefusesRequests(true, false));
  CHECK(sipc::StopRefusesRequests(true, true));  // the grace is over
  CHECK(sipc::StopRefusesRequests(false, false));
  CHECK(sipc::StopRefusesRequests(false, true));
}

TEST(listener_occupation_takes_each_listening_instance_then_is_complete_once_none_listens) {
  using Attempt = sipc::ListenerOccupation::Attempt;
  sipc::ListenerOccupation occupation(2);
  CHECK(occupation.Record(Attempt::kTookOne));
  CHECK(occupation.Record(Attempt::kTookOne));  // one attempt more must find none
  CHECK(!occupation.complete());
  CHECK(!occupation.Record(Attempt::kNoneListening));
  CHECK(occupation.complete());
  // Clients took some instances first: it is complete sooner.
  sipc::ListenerOccupation early(4);
  CHECK(early.Record(Attempt::kTookOne));
  CHECK(!early.Record(Attempt::kNoneListening));
  CHECK(early.complete());
  // No instance listened at all.
  sipc::ListenerOccupation none(0);
  CHECK(!none.Record(Attempt::kNoneListening));
  CHECK(none.complete());
}

TEST(listener_occupation_is_incomplete_after_a_failure_or_more_instances_than_listened) {
  using Attempt = sipc::ListenerOccupation::Attempt;
  sipc::ListenerOccupation refused(3);
  CHECK(refused.Record(Attempt::kTookOne));
  CHECK(!refused.Record(Attempt::kFailed));  // e.g. the DACL refuses the server's own user
  CHECK(!refused.complete());
  // The third take of two listening instances: someone else's instance.
  sipc::ListenerOccupation foreign(2);
  CHECK(foreign.Record(Attempt::kTookOne));
  CHECK(foreign.Record(Attempt::kTookOne));
  CHECK(!foreign.Record(Attempt::kTookOne));
  CHECK(!foreign.complete());
}

TEST(a_draining_stop_serves_every_client_that_reached_it_and_closes_those_gone_without_a_byte_unseen) {
  using Arrival = sipc::ListenerOccupation::Arrival;
  // A client is there: served, even when the cancel completed the listen.
  CHECK(sipc::ListenerOccupation::Serves(Arrival::kClient, true));
  CHECK(sipc::ListenerOccupation::Serves(Arrival::kClient, false));
  // Gone without a byte (the server's own connection, or a probe): unseen.
  CHECK(!sipc::ListenerOccupation::Serves(Arrival::kGoneWithoutBytes, true));
  CHECK(!sipc::ListenerOccupation::Serves(Arrival::kGoneWithoutBytes, false));
  // No client: a cancelled listen closes; a completed one is read (the
  // read tells what came).
  CHECK(!sipc::ListenerOccupation::Serves(Arrival::kNone, false));
  CHECK(sipc::ListenerOccupation::Serves(Arrival::kNone, true));
}

TEST(request_clock_runs_from_the_start_and_expires_at_the_deadline) {
  Conversation conv(SIZE_MAX);
  CHECK(!conv.RequestClockStopped(0));  // no limit: nothing to start
  CHECK(!conv.StartRequestClock(1000, 0));
  CHECK_EQ(conv.deadline, int64_t{0});
  CHECK(!conv.RequestExpired(1000000));  // no deadline never expires
  CHECK(conv.RequestClockStopped(200));
  CHECK(conv.StartRequestClock(1000, 200));
  CHECK(!conv.RequestClockStopped(200));
  CHECK_EQ(conv.deadline, int64_t{1200});
  CHECK(!conv.RequestExpired(1199));
  CHECK(conv.RequestExpired(1200));
  conv.phase = ConversationPhase::kAwaitFirstByte;  // the first byte is awaited on the same clock
  CHECK(conv.RequestExpired(1200));
  CHECK_EQ(sipc::StatusCodeName(Conversation::TimeoutStatus(200)), std::string("ERR_IPC_REQUEST_TIMEOUT"));
}

TEST(request_clock_pauses_for_the_peer_check_and_restarts_after_it) {
  Conversation conv(SIZE_MAX);
  conv.phase = ConversationPhase::kAwaitFirstByte;
  conv.StartRequestClock(1000, 200);
  conv.BeginPeerCheck();
  CHECK(conv.phase == ConversationPhase::kPeerCheck);
  CHECK(!conv.RequestExpired(1000000));  // the application may take its time
  conv.AllowRead();
  CHECK(conv.phase == ConversationPhase::kReading);
  CHECK(conv.RequestClockStopped(200));  // the transport starts it anew
  conv.StartRequestClock(5000, 200);
  CHECK(!conv.RequestExpired(5199));
  CHECK(conv.RequestExpired(5200));
}

TEST(request_clock_never_expires_once_the_request_is_handed_over) {
  Conversation conv(SIZE_MAX);
  conv.StartRequestClock(1000, 200);
  CHECK(FeedString(&conv, "0009ping\n0000").kind == ReadVerdict::Kind::kComplete);
  sipc::ByteBuffer request = conv.TakeRequest();
  CHECK_EQ(std::string(reinterpret_cast<const char*>(request.data()), request.size()), std::string("ping\n"));
  CHECK(conv.phase == ConversationPhase::kHandling);
  CHECK(!conv.RequestExpired(1000000));
  CHECK_EQ(conv.request.size(), size_t{0});
}

TEST(read_verdicts_need_more_complete_and_protocol_error) {
  Conversation conv(SIZE_MAX);
  CHECK(FeedString(&conv, "0009pi").kind == ReadVerdict::Kind::kNeedMore);
  CHECK(FeedString(&conv, "ng\n000").kind == ReadVerdict::Kind::kNeedMore);
  CHECK(FeedString(&conv, "0").kind == ReadVerdict::Kind::kComplete);

  Conversation bad(SIZE_MAX);
  ReadVerdict v = FeedString(&bad, "00x3");
  CHECK(v.kind == ReadVerdict::Kind::kDrop);
  CHECK(v.report);
  CHECK(v.counter == ReadVerdict::Counter::kProtocol);
  CHECK_EQ(sipc::StatusCodeName(v.why), std::string("ERR_IPC_PROTOCOL"));
  CHECK(v.why.detail.find("in request") != std::string::npos);
}

TEST(read_verdict_at_the_size_limit_and_one_over) {
  Conversation exact(5);
  CHECK(FeedString(&exact, "0009ping\n0000", 5).kind == ReadVerdict::Kind::kComplete);
  Conversation over(4);
  ReadVerdict v = FeedString(&over, "0009ping\n0000", 4);
  CHECK(v.kind == ReadVerdict::Kind::kDrop);
  CHECK(v.report);
  CHECK(v.counter == ReadVerdict::Counter::kTooLarge);
  CHECK_EQ(sipc::StatusCodeName(v.why), std::string("ERR_IPC_REQUEST_TOO_LARGE"));
  CHECK(v.why.detail.find("limit 4 bytes") != std::string::npos);
}

TEST(end_of_input_is_a_silent_probe_before_any_byte_and_truncation_after) {
  Conversation probe(SIZE_MAX);
  ReadVerdict v = probe.EndOfInput();
  CHECK(v.kind == ReadVerdict::Kind::kDrop);
  CHECK(!v.report);
  CHECK(v.counter == ReadVerdict::Counter::kNone);

  Conversation truncated(SIZE_MAX);
  FeedString(&truncated, "0");  // one byte of a header
  v = truncated.EndOfInput();
  CHECK(v.kind == ReadVerdict::Kind::kDrop);
  CHECK(v.report);
  CHECK(v.counter == ReadVerdict::Counter::kProtocol);
  CHECK_EQ(sipc::StatusCodeName(v.why), std::string("ERR_IPC_INCOMPLETE_REQUEST"));
}

TEST(read_failure_is_reported_only_once_a_request_began) {
  Conversation silent(SIZE_MAX);
  ReadVerdict v = silent.ReadFailed(Status::FromErrno(ECONNRESET, "read"));
  CHECK(v.kind == ReadVerdict::Kind::kDrop);
  CHECK(!v.report);
  CHECK(v.counter == ReadVerdict::Counter::kNone);

  Conversation begun(SIZE_MAX);
  FeedString(&begun, "0009");
  v = begun.ReadFailed(Status::FromErrno(ECONNRESET, "read"));
  CHECK(v.report);
  CHECK(v.counter == ReadVerdict::Counter::kProtocol);
  CHECK_EQ(v.why.code, ECONNRESET);
}

TEST(replies_apply_only_while_handling_and_until_the_last_chunk) {
  Conversation conv(SIZE_MAX);
  CHECK(!conv.TakesReplies());  // still reading
  conv.phase = ConversationPhase::kHandling;
  CHECK(conv.TakesReplies());
  std::vector<uint8_t> data = Bytes("pong");
  CHECK(conv.Queue(Chunk(data, false), Conversation::FrameCopy(Chunk(data, false)), 0) == ReplyOutcome::kBuffered);
  CHECK(conv.TakesReplies());
  ReplyChunk last = Chunk(data, true);
  last.quit = true;
  CHECK(conv.Queue(last, Conversation::FrameCopy(last), 0) == ReplyOutcome::kBuffered);
  CHECK(!conv.TakesReplies());
  CHECK(conv.ended);
  CHECK(conv.quit);
  std::vector<uint64_t> written;
  CHECK_EQ(Drain(&conv, &written), std::string("0008pong0008pong0000"));
}

TEST(queue_counts_bytes_already_sent_and_reports_tokens_once_complete) {
  Conversation conv(SIZE_MAX);
  conv.phase = ConversationPhase::kHandling;
  // Over the write mark (docs/design.md#memory), so that the token is kept.
  std::vector<uint8_t> big(Conversation::kWriteMark, 'h');
  ReplyChunk chunk = Chunk(big, true, 7);
  size_t framed = sipc::pkt::EncodedSize(big.size()) + sipc::pkt::kHeaderSize;
  CHECK(conv.Queue(chunk, Conversation::FrameCopy(chunk), 3) == ReplyOutcome::kQueued);  // 3 bytes went out at once
  CHECK_EQ(conv.out.bytes(), framed - 3);
  std::vector<uint64_t> written;
  std::string rest = Drain(&conv, &written);
  CHECK_EQ(rest.size(), framed - 3);
  CHECK_EQ(rest.substr(0, 5), std::string("0hhhh"));  // the first header's last digit ("fff0"), then payload
  CHECK_EQ(rest.substr(rest.size() - 4), std::string("0000"));
  CHECK_EQ(written.size(), size_t{1});
  CHECK_EQ(written[0], uint64_t{7});
  CHECK_EQ(conv.out.bytes(), size_t{0});

  // Under the mark, the bytes already sent count the same way; no token is kept.
  Conversation small_conv(SIZE_MAX);
  small_conv.phase = ConversationPhase::kHandling;
  std::vector<uint8_t> data = Bytes("hello");
  ReplyChunk small = Chunk(data, true, 8);
  CHECK(small_conv.Queue(small, Conversation::FrameCopy(small), 3) == ReplyOutcome::kBuffered);  // "000" went out
  CHECK_EQ(Drain(&small_conv, &written), std::string("9hello0000"));
  CHECK_EQ(written.size(), size_t{1});  // still only 7
}

// The write mark (docs/design.md#memory): a copied chunk is done for the
// caller at once (kBuffered, no token kept) while the queue it leaves
// holds at most kWriteMark framed bytes; the chunk that takes it over
// the mark waits (kQueued, OnWritten(token) once it is out), and so does
// every chunk while the queue stays over it.
TEST(write_mark_buffers_copied_chunks_up_to_the_mark_and_no_further) {
  Conversation conv(SIZE_MAX);
  conv.phase = ConversationPhase::kHandling;
  const size_t framed = 1024;  // one packet: header + 1020 bytes
  std::vector<uint8_t> data(framed - sipc::pkt::kHeaderSize, 'd');
  uint64_t token = 1;
  size_t buffered = 0;
  ReplyOutcome outcome;
  // (Bounded: a queue that never reaches the mark fails the checks below.)
  while ((outcome = conv.Queue(Chunk(data, false, token), Conversation::FrameCopy(Chunk(data, false, token)), 0)) ==
             ReplyOutcome::kBuffered &&
         token < 1000) {
    buffered++;
    token++;
  }
  CHECK(outcome == ReplyOutcome::kQueued);
  CHECK_EQ(buffered, Conversation::kWriteMark / framed);  // exactly the mark
  CHECK_EQ(conv.out.bytes(), Conversation::kWriteMark + framed);
  uint64_t waiting = token;
  // Over the mark, even a chunk of one byte waits.
  std::vector<uint8_t> one = Bytes("x");
  CHECK(conv.Queue(Chunk(one, false, 999), Conversation::FrameCopy(Chunk(one, false, 999)), 0) == ReplyOutcome::kQueued);

  // The peer takes the buffered chunks (no tokens), then the waiting
  // one: reported alone, and the queue is under the mark again.
  std::vector<uint64_t> written;
  conv.Wrote(Conversation::kWriteMark, &written);
  CHECK(written.empty());
  conv.Wrote(framed, &written);
  CHECK_EQ(written.size(), size_t{1});
  CHECK_EQ(written[0], waiting);
  CHECK_EQ(conv.out.bytes(), size_t{5});
  CHECK(conv.Queue(Chunk(data, false, 1000), Conversation::FrameCopy(Chunk(data, false, 1000)), 0) ==
        ReplyOutcome::kBuffered);
  written.clear();
  Drain(&conv, &written);
  CHECK_EQ(written.size(), size_t{1});  // the one-byte chunk; the buffered one keeps no token
  CHECK_EQ(written[0], uint64_t{999});
  CHECK(conv.out.empty());
  CHECK_EQ(conv.out.bytes(), size_t{0});
}

// A borrowed chunk is never buffered: its memory stays pinned until its
// token comes back, however little is queued.
TEST(write_mark_never_buffers_a_borrowed_chunk) {
  Conversation conv(SIZE_MAX);
  conv.phase = ConversationPhase::kHandling;
  std::vector<uint8_t> big(sipc::kBorrowThreshold, 'b');
  ReplyChunk chunk = Chunk(big, false, 5);
  chunk.may_borrow = true;
  CHECK(conv.Queue(chunk, Conversation::FrameCopy(chunk), 0) == ReplyOutcome::kBorrowed);
  std::vector<uint64_t> written;
  Drain(&conv, &written);
  CHECK_EQ(written.size(), size_t{1});
  CHECK_EQ(written[0], uint64_t{5});
}

// A dropped queue counts nothing any more (a reused Windows instance
// starts from an empty queue).
TEST(write_mark_counts_from_zero_after_a_drop) {
  Conversation conv(SIZE_MAX);
  conv.phase = ConversationPhase::kHandling;
  std::vector<uint8_t> big(Conversation::kWriteMark, 'z');
  CHECK(conv.Queue(Chunk(big, false, 3), Conversation::FrameCopy(Chunk(big, false, 3)), 0) == ReplyOutcome::kQueued);
  std::vector<uint64_t> released;
  conv.DropQueued(&released);
  CHECK_EQ(conv.out.bytes(), size_t{0});
  std::vector<uint8_t> small = Bytes("s");
  CHECK(conv.Queue(Chunk(small, false, 4), Conversation::FrameCopy(Chunk(small, false, 4)), 0) ==
        ReplyOutcome::kBuffered);
}

TEST(borrowing_needs_permission_a_token_and_the_threshold) {
  std::vector<uint8_t> big(sipc::kBorrowThreshold, 'x');
  std::vector<uint8_t> small(sipc::kBorrowThreshold - 1, 'x');
  ReplyChunk chunk = Chunk(big, false, 9);
  CHECK(!Conversation::Borrows(chunk));  // may_borrow not set
  chunk.may_borrow = true;
  CHECK(Conversation::Borrows(chunk));
  CHECK(Conversation::FrameCopy(chunk).empty());
  chunk.token = 0;
  CHECK(!Conversation::Borrows(chunk));  // nothing to report it back with
  ReplyChunk under = Chunk(small, false, 9);
  under.may_borrow = true;
  CHECK(!Conversation::Borrows(under));
  CHECK_EQ(Conversation::FrameCopy(under).size(), sipc::pkt::EncodedSize(small.size()));

  Conversation conv(SIZE_MAX);
  conv.phase = ConversationPhase::kHandling;
  chunk.token = 9;
  CHECK(conv.Queue(chunk, Conversation::FrameCopy(chunk), 0) == ReplyOutcome::kBorrowed);
  std::vector<uint64_t> released;
  conv.DropQueued(&released);  // dropped unsent: the memory is free again
  CHECK_EQ(released.size(), size_t{1});
  CHECK_EQ(released[0], uint64_t{9});
  CHECK(conv.out.empty());
}

TEST(write_stall_needs_a_limit_a_waiting_write_and_more_than_the_limit) {
  Conversation conv(SIZE_MAX);
  CHECK(!conv.WriteStalled(1000000, 100));  // nothing waits
  conv.WaitForPeer(1000);
  CHECK(!conv.WriteStalled(1100, 100));  // exactly the limit: not yet
  CHECK(conv.WriteStalled(1101, 100));
  CHECK(!conv.WriteStalled(1000000, 0));  // no limit
  conv.write_waiting = false;  // the peer took it
  CHECK(!conv.WriteStalled(1000000, 100));
}

TEST(abort_ends_once_stops_the_stall_clock_and_keeps_quit) {
  Conversation conv(SIZE_MAX);
  conv.phase = ConversationPhase::kHandling;
  conv.quit = true;
  conv.WaitForPeer(0);
  CHECK(conv.Abort());
  CHECK(conv.aborted);
  CHECK(conv.ended);
  CHECK(!conv.TakesReplies());
  CHECK(!conv.WriteStalled(1000000, 1));
  CHECK(conv.quit);  // a quit conversation that ended early still quits
  CHECK(!conv.Abort());
}

TEST(reset_forgets_the_client) {
  Conversation conv(SIZE_MAX);
  conv.id = 5;
  conv.phase = ConversationPhase::kHandling;
  FeedString(&conv, "0009pi");
  conv.StartRequestClock(1, 1);
  conv.Abort();
  conv.Reset(4);
  CHECK_EQ(conv.id, sipc::ConnId{0});
  CHECK(conv.phase == ConversationPhase::kIdle);
  CHECK(!conv.ended);
  CHECK(!conv.aborted);
  CHECK(!conv.reader.started());
  CHECK_EQ(conv.deadline, int64_t{0});
  CHECK(FeedString(&conv, "0009ping\n0000", 4).kind == ReadVerdict::Kind::kDrop);  // the new limit
}

TEST(notices_are_delivered_released_then_written_then_lost) {
  RecordingDelegate delegate;
  ConversationNotices notices;
  notices.id = 3;
  notices.DeliverTo(&delegate);  // nothing collected: no call
  CHECK_EQ(delegate.calls.size(), size_t{0});
  notices.written = {1, 2};
  notices.released = {4};
  notices.Lose(true, Status::Lib(LibCode::kWriteStalled));
  notices.DeliverTo(&delegate);
  REQUIRE(delegate.calls.size() == 3);
  CHECK_EQ(delegate.calls[0], std::string("released 3:1"));
  CHECK_EQ(delegate.calls[1], std::string("written 3:2"));
  CHECK_EQ(delegate.calls[2], std::string("lost 3:ERR_IPC_WRITE_STALLED"));
  ConversationNotices again;
  again.Lose(false, Status::Lib(LibCode::kWriteStalled));  // not the first abort: not lost again
  delegate.calls.clear();
  again.DeliverTo(&delegate);
  CHECK_EQ(delegate.calls.size(), size_t{0});
}

TEST(drop_reasons_carry_the_codes_every_transport_reports) {
  Status too_many = Conversation::TooManyConnectionsStatus(2);
  CHECK_EQ(std::string(sipc::StatusCodeName(too_many)), std::string("ERR_IPC_TOO_MANY_CONNECTIONS"));
  CHECK_EQ(too_many.detail, std::string("2 open"));
  Status left = Conversation::ClientLeftStatus();
  CHECK_EQ(left.code, ECONNRESET);
  CHECK_EQ(std::string(left.syscall), std::string("read"));
  CHECK_EQ(std::string(sipc::StatusCodeName(Conversation::WriteStalledStatus())),
           std::string("ERR_IPC_WRITE_STALLED"));
  CHECK_EQ(std::string(sipc::StatusCodeName(Conversation::GraceOverStatus())), std::string("ERR_IPC_SERVER_CLOSED"));
}

TEST(stats_count_each_phase_once) {
  ServerStats stats;
  for (ConversationPhase phase :
       {ConversationPhase::kIdle, ConversationPhase::kAwaitFirstByte, ConversationPhase::kPeerCheck,
        ConversationPhase::kReading, ConversationPhase::kHandling, ConversationPhase::kClosing}) {
    sipc::CountConnection(phase, &stats);
  }
  CHECK_EQ(stats.connections_reading, uint64_t{2});
  CHECK_EQ(stats.connections_peer_check, uint64_t{1});
  CHECK_EQ(stats.connections_handling, uint64_t{1});
}

TEST_MAIN()
