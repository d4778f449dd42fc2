// Unit tests of native/core/exchange: the rules of one client exchange
// that every client transport shares (docs/design.md#the-client-core),
// each at its boundaries, over a simulated clock and fed bytes.
#include <cerrno>
#include <cstdint>
#include <string>
#include <vector>

#include "../core/caller_side.h"
#include "../core/exchange.h"
#include "test_util.h"

using sipc::ActiveState;
using sipc::CallerSide;
using sipc::ByteBuffer;
using sipc::ClientExchange;
using sipc::ClientOptions;
using sipc::ClientRequest;
using sipc::ConnectFailure;
using sipc::ExchangeCommand;
using sipc::LibCode;
using sipc::Status;
using Phase = sipc::ClientExchange::Phase;

namespace {

ClientOptions Options(int64_t timeout_ms = -1) {
  ClientOptions options;
  options.timeout_ms = timeout_ms;
  return options;
}

ClientRequest Request(const std::string& s) {
  return ClientRequest::Borrowed(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

// Everything SendSpans() gives, `step` bytes at a time reported as sent.
std::string SendAll(ClientExchange* ex, size_t step = SIZE_MAX) {
  std::string out;
  while (ex->phase() == Phase::kSend) {
    sipc::pkt::Span spans[8];
    char headers[5][sipc::pkt::kHeaderSize];
    size_t count = ex->SendSpans(spans, 8, headers);
    if (count == 0) break;
    std::string piece;
    for (size_t i = 0; i < count; i++) piece.append(reinterpret_cast<const char*>(spans[i].data), spans[i].size);
    if (piece.size() > step) piece.resize(step);
    out += piece;
    ex->OnSent(piece.size());
  }
  return out;
}

void Feed(ClientExchange* ex, const std::string& bytes) {
  ex->OnReceived(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

std::string Text(const ByteBuffer& b) { return std::string(reinterpret_cast<const char*>(b.data()), b.size()); }

// Connected and sent: reading the response.
void ToReceive(ClientExchange* ex, int64_t now = 0) {
  ex->Begin(now);
  ex->OnConnected();
  SendAll(ex);
}

}  // namespace

// ---- request framing ----

TEST(the_request_is_framed_and_ends_with_a_flush) {
  std::string payload = "hello";
  ClientExchange ex("/p", Options(), false);
  ex.SetRequest(Request(payload));
  ex.Begin(0);
  ex.OnConnected();
  CHECK(ex.phase() == Phase::kSend);
  CHECK_EQ(SendAll(&ex), std::string("0009hello0000"));
  CHECK(ex.phase() == Phase::kReceive);
}

TEST(an_empty_request_is_a_flush_packet_even_without_memory_behind_it) {
  // An empty Buffer may have no memory at all (a null pointer).
  for (ClientRequest::Kind kind : {ClientRequest::Kind::kBorrowed, ClientRequest::Kind::kTransient}) {
    ClientExchange ex("/p", Options(), false);
    ex.SetRequest(ClientRequest{kind, nullptr, 0});
    ex.OwnRequest();
    ex.Begin(0);
    ex.OnConnected();
    CHECK(ex.phase() == Phase::kSend);
    CHECK_EQ(SendAll(&ex), std::string("0000"));
  }
}

TEST(a_partly_sent_request_continues_where_the_kernel_stopped) {
  std::string payload(70000, 'x');  // two packets
  ClientExchange ex("/p", Options(), false);
  ex.SetRequest(Request(payload));
  ex.Begin(0);
  ex.OnConnected();
  std::string sent = SendAll(&ex, 777);
  CHECK_EQ(sent.size(), sipc::pkt::EncodedSize(payload.size()) + 4);
  CHECK_EQ(sent.substr(0, 4), std::string("fff0"));
  CHECK_EQ(sent.substr(sent.size() - 4), std::string("0000"));
  CHECK(ex.phase() == Phase::kReceive);
}

TEST(a_transient_request_owned_after_a_partial_send_keeps_its_offset) {
  std::string payload(70000, 'y');
  std::string expected;
  {
    ClientExchange whole("/p", Options(), false);
    whole.SetRequest(Request(payload));
    whole.Begin(0);
    whole.OnConnected();
    expected = SendAll(&whole);
  }
  std::vector<uint8_t> callers(payload.begin(), payload.end());
  ClientExchange ex("/p", Options(), false);
  ex.SetRequest(ClientRequest::Transient(callers.data(), callers.size()));
  ex.Begin(0);
  ex.OnConnected();
  sipc::pkt::Span spans[4];
  char headers[3][sipc::pkt::kHeaderSize];
  REQUIRE(ex.SendSpans(spans, 4, headers) > 0);
  std::string first(reinterpret_cast<const char*>(spans[0].data), 4);
  ex.OnSent(4);  // only the first header went out
  ex.OwnRequest();
  CHECK(!ex.request_borrowed());
  std::fill(callers.begin(), callers.end(), uint8_t{'Z'});  // the caller's bytes are gone
  CHECK_EQ(first + SendAll(&ex), expected);
}

TEST(a_connect_only_exchange_is_idle_until_its_request_and_says_so_once) {
  ClientExchange ex("/p", Options(), false);
  ex.SetRequest(ClientRequest::None());
  ex.Begin(0);
  ex.OnConnected();
  CHECK(ex.phase() == Phase::kIdle);
  CHECK(ex.TakeConnectedNotice());
  CHECK(!ex.TakeConnectedNotice());
  ExchangeCommand send(ExchangeCommand::Kind::kSend, 1);
  sipc::pkt::AppendMessage(reinterpret_cast<const uint8_t*>("later"), 5, &send.request);
  send.ApplyTo(&ex);
  CHECK(ex.phase() == Phase::kSend);
  CHECK_EQ(SendAll(&ex), std::string("0009later0000"));
  // A second Send is ignored: one request per connection.
  ExchangeCommand again(ExchangeCommand::Kind::kSend, 1);
  again.request = {'x'};
  again.ApplyTo(&ex);
  CHECK(ex.phase() == Phase::kReceive);
}

// ---- the deadline ----

TEST(the_deadline_counts_from_begin_and_ends_with_a_timeout_at_it) {
  std::string payload = "x";
  ClientExchange ex("/p", Options(200), false);
  ex.SetRequest(Request(payload));
  CHECK(!ex.Expire(1000000));  // not begun: no deadline yet
  ex.Begin(1000);
  ex.Begin(5000);  // later calls change nothing
  CHECK_EQ(ex.deadline(), int64_t{1200});
  CHECK_EQ(ex.next_deadline(), int64_t{1200});
  CHECK(!ex.Expire(1199));
  CHECK(ex.Expire(1200));
  CHECK(ex.result().status.is(LibCode::kTimeout));
  CHECK_EQ(ex.result().address, std::string("/p"));
  CHECK_EQ(ex.next_deadline(), int64_t{-1});
}

TEST(no_deadline_without_timeout) {
  ClientExchange ex("/p", Options(-1), false);
  ex.Begin(0);
  CHECK_EQ(ex.deadline(), int64_t{-1});
  CHECK(!ex.Expire(INT64_MAX / 2));
}

// ---- connecting: ConnectPolicy's decisions, applied ----

TEST(a_missing_path_gives_up_at_once_with_the_transports_error) {
  ClientExchange ex("/p", Options(), false);
  ex.Begin(0);
  ex.OnConnectFailed(ConnectFailure::kNotFound, Status::FromErrno(ENOENT, "connect", "/p"), 0);
  CHECK(ex.done());
  CHECK_EQ(ex.result().status.code, ENOENT);
  CHECK(ex.result().connect_state == ActiveState::kPathNotFound);
  CHECK(!ex.result().connected);
}

TEST(a_busy_server_is_retried_every_50_ms_then_not_listening) {
  ClientExchange ex("/p", Options(), false);  // wait_if_busy, connect_timeout 1000
  ex.Begin(0);
  ex.OnConnectFailed(ConnectFailure::kBusy, Status::FromErrno(ECONNREFUSED, "connect"), 0);
  CHECK(ex.phase() == Phase::kRetryWait);
  CHECK_EQ(ex.next_deadline(), int64_t{50});
  CHECK(!ex.RetryDue(49));
  CHECK(ex.RetryDue(50));
  CHECK(ex.phase() == Phase::kConnect);
  ex.OnConnectFailed(ConnectFailure::kBusy, Status::FromErrno(ECONNREFUSED, "connect"), 1000);
  CHECK(ex.done());
  CHECK(ex.result().connect_state == ActiveState::kNotListening);
  CHECK_EQ(ex.result().status.code, ECONNREFUSED);
}

TEST(a_retry_ends_early_when_the_transport_says_so) {
  ClientExchange ex("/p", Options(), false);
  ex.Begin(0);
  ex.OnConnectFailed(ConnectFailure::kBusy, Status::FromErrno(ECONNREFUSED, "connect"), 0);
  ex.RetryNow();
  CHECK(ex.phase() == Phase::kConnect);
}

TEST(a_retry_never_lies_beyond_the_deadline_which_ends_it_with_a_timeout) {
  ClientExchange ex("/p", Options(30), false);
  ex.Begin(0);
  ex.OnConnectFailed(ConnectFailure::kBusy, Status::FromErrno(ECONNREFUSED, "connect"), 0);
  CHECK_EQ(ex.next_deadline(), int64_t{30});
  ex.OnConnectFailed(ConnectFailure::kBusy, Status::FromErrno(ECONNREFUSED, "connect"), 30);
  CHECK(ex.result().status.is(LibCode::kTimeout));
}

TEST(the_windows_transport_says_path_not_found_when_waiting_for_a_path_runs_out) {
  ClientOptions options = Options();
  options.wait_if_not_found = true;
  ClientExchange posix("/p", options, false);
  ClientExchange win("/p", options, false, ActiveState::kPathNotFound);
  for (ClientExchange* ex : {&posix, &win}) {
    ex->Begin(0);
    ex->OnConnectFailed(ConnectFailure::kNotFound, Status::FromErrno(ENOENT, "connect"), 1000);
  }
  CHECK(posix.result().connect_state == ActiveState::kNotListening);
  CHECK(win.result().connect_state == ActiveState::kPathNotFound);
}

TEST(an_impossible_connect_ends_with_its_state) {
  ClientExchange ex("/p", Options(), false);
  ex.Begin(0);
  ex.OnConnectImpossible(ActiveState::kInvalidPath, Status::FromErrno(ENAMETOOLONG, "connect"));
  CHECK(ex.done());
  CHECK(ex.result().connect_state == ActiveState::kInvalidPath);
}

TEST(a_failed_identity_check_ends_a_connected_exchange_before_sending) {
  std::string payload = "secret";
  ClientExchange ex("/p", Options(), false);
  ex.SetRequest(Request(payload));
  ex.Begin(0);
  ex.OnConnected(Status::Lib(LibCode::kServerIdentity, "x"));
  CHECK(ex.done());
  CHECK(ex.result().status.is(LibCode::kServerIdentity));
  sipc::pkt::Span spans[4];
  char headers[3][sipc::pkt::kHeaderSize];
  CHECK_EQ(ex.SendSpans(spans, 4, headers), size_t{0});  // nothing of the request goes out
}

TEST(server_uid_rules_self_a_uid_and_an_unknown_server) {
  ClientOptions any = Options();
  CHECK(sipc::CheckServerUid(any, "/p", 65534, 0).ok());
  ClientOptions self = Options();
  self.server_identity = sipc::ServerIdentity::kSelf;
  CHECK(sipc::CheckServerUid(self, "/p", 1000, 1000).ok());
  Status other = sipc::CheckServerUid(self, "/p", 65534, 0);
  CHECK(other.is(LibCode::kServerIdentity));
  CHECK(other.detail.find("/p") != std::string::npos);
  CHECK(other.detail.find("uid 0") != std::string::npos);
  CHECK(other.detail.find("uid 65534") != std::string::npos);
  CHECK(sipc::CheckServerUid(self, "/p", -1, 0).is(LibCode::kServerIdentity));  // unknown is never a match
  ClientOptions uid = Options();
  uid.server_identity = sipc::ServerIdentity::kUid;
  uid.server_uid = 65534;
  CHECK(sipc::CheckServerUid(uid, "/p", 65534, 0).ok());
  CHECK(sipc::CheckServerUid(uid, "/p", 65533, 65533).is(LibCode::kServerIdentity));
  // Windows: 'self' is the same user SID; an unknown server never matches.
  CHECK(sipc::CheckServerUser(self, "p", "S-1-5-21-1", "S-1-5-21-1").ok());
  CHECK(sipc::CheckServerUser(self, "p", "S-1-5-21-2", "S-1-5-21-1").is(LibCode::kServerIdentity));
  CHECK(sipc::CheckServerUser(self, "p", "", "").is(LibCode::kServerIdentity));
  CHECK(sipc::CheckServerUser(any, "p", "", "").ok());
}

// ---- reading the response ----

TEST(the_flush_packet_ends_the_exchange_with_the_whole_response) {
  std::string payload = "q";
  ClientExchange ex("/p", Options(), false);
  ex.SetRequest(Request(payload));
  ToReceive(&ex);
  Feed(&ex, "0009he");
  CHECK(!ex.done());
  CHECK(!ex.has_chunk());  // not a stream: the response is kept whole
  Feed(&ex, "llo0000");
  CHECK(ex.done());
  CHECK(ex.result().status.ok());
  CHECK(ex.result().connected);
  CHECK_EQ(Text(ex.response()), std::string("hello"));
}

TEST(a_hang_up_or_reset_before_the_flush_is_an_incomplete_response) {
  std::string payload = "q";
  ClientExchange closed("/p", Options(), false);
  ClientExchange reset("/p", Options(), false);
  for (ClientExchange* ex : {&closed, &reset}) {
    ex->SetRequest(Request(payload));
    ToReceive(ex);
    Feed(ex, "0009hel");
  }
  closed.OnServerClosed();
  reset.OnServerReset();
  CHECK(closed.result().status.is(LibCode::kIncompleteResponse));
  CHECK(reset.result().status.is(LibCode::kIncompleteResponse));
  CHECK(reset.result().status.detail.find("reset") != std::string::npos);
}

TEST(a_malformed_response_is_a_protocol_error) {
  std::string payload = "q";
  ClientExchange ex("/p", Options(), false);
  ex.SetRequest(Request(payload));
  ToReceive(&ex);
  Feed(&ex, "0003");
  CHECK(ex.result().status.is(LibCode::kProtocol));
}

TEST(a_stream_hands_over_what_each_read_brought) {
  std::string payload = "q";
  ClientExchange ex("/p", Options(), true);
  ex.SetRequest(Request(payload));
  ToReceive(&ex);
  Feed(&ex, "0009hello0008abc");
  CHECK(ex.has_chunk());
  CHECK_EQ(Text(ex.TakeChunk()), std::string("helloabc"));
  CHECK(!ex.has_chunk());
  Feed(&ex, "d0000");
  CHECK(ex.done());
  CHECK_EQ(Text(ex.TakeChunk()), std::string("d"));
}

TEST(max_response_bytes_allows_exactly_the_limit_and_not_one_byte_more) {
  std::string payload = "q";
  ClientOptions options = Options();
  options.max_response_bytes = 5;
  ClientExchange at("/p", options, false);
  ClientExchange over("/p", options, true);  // streamed bytes count too
  for (ClientExchange* ex : {&at, &over}) {
    ex->SetRequest(Request(payload));
    ToReceive(ex);
  }
  Feed(&at, "0009hello0000");
  CHECK(at.result().status.ok());
  Feed(&over, "0008abc");
  over.TakeChunk();
  Feed(&over, "0007def");
  CHECK(over.done());
  CHECK(over.result().status.is(LibCode::kResponseTooLarge));
}

// ---- flow control and cancel ----

TEST(a_paused_stream_may_not_read_until_resumed_and_only_the_response_is_held) {
  std::string payload = "q";
  ClientExchange ex("/p", Options(), true);
  ex.SetRequest(Request(payload));
  ex.Pause();  // before connecting: connecting and sending go on
  ex.Begin(0);
  ex.OnConnected();
  CHECK(ex.phase() == Phase::kSend);
  SendAll(&ex);
  CHECK(ex.phase() == Phase::kReceive);
  CHECK(!ex.MayRead());
  ExchangeCommand(ExchangeCommand::Kind::kResume, 1).ApplyTo(&ex);
  CHECK(ex.MayRead());
  ExchangeCommand(ExchangeCommand::Kind::kPause, 1).ApplyTo(&ex);
  CHECK(!ex.MayRead());
  CHECK(ex.Expire(INT64_MAX) == false);  // no deadline: paused forever is allowed
}

// The hand-over bound (core/stream_flow.h): chunks handed over and not
// yet taken stop the reading at kMaxUntakenStreamBytes; the consumer is
// told to wake the exchange once, when what it has not taken falls under
// kWakeUntakenStreamBytes, and the wake lets it read again.
TEST(a_stream_stops_reading_at_the_hand_over_bound_until_the_consumer_takes_and_wakes) {
  const uint64_t kMax = sipc::kMaxUntakenStreamBytes;
  const uint64_t kWake = sipc::kWakeUntakenStreamBytes;
  std::string payload = "q";
  ClientExchange ex("/p", Options(), true);
  ex.SetRequest(Request(payload));
  ToReceive(&ex);
  const std::string packet = "fff0" + std::string(65516, 'x');  // the largest pkt-line
  uint64_t handed = 0;
  while (ex.MayRead() && handed <= 2 * kMax) {
    Feed(&ex, packet);
    handed += ex.TakeChunk().size();
  }
  CHECK(!ex.MayRead());
  CHECK(handed >= kMax);
  CHECK(handed < kMax + 65516);  // stopped by the chunk that reached the bound
  CHECK_EQ(ex.ledger()->untaken(), handed);
  CHECK(ex.Expire(INT64_MAX) == false);  // held, not over

  CHECK(!ex.ledger()->Taken(handed - kWake));  // at the wake level, not under it
  CHECK(!ex.MayRead());
  CHECK(ex.ledger()->Taken(1));   // under it: wake, once
  CHECK(!ex.ledger()->Taken(1));  // not again for the same stop
  CHECK(!ex.MayRead());           // until the wake arrives as a command
  ExchangeCommand(ExchangeCommand::Kind::kChunksTaken, 1).ApplyTo(&ex);
  CHECK(ex.MayRead());

  // A pause holds on its own; a wake does not end it.
  ex.Pause();
  ExchangeCommand(ExchangeCommand::Kind::kChunksTaken, 1).ApplyTo(&ex);
  CHECK(!ex.MayRead());
  ex.Resume();
  CHECK(ex.MayRead());

  // The next stop comes after another kMax - (what is still untaken).
  uint64_t untaken = ex.ledger()->untaken();
  uint64_t more = 0;
  while (ex.MayRead() && more <= 2 * kMax) {
    Feed(&ex, packet);
    more += ex.TakeChunk().size();
  }
  CHECK(untaken + more >= kMax);
  CHECK(untaken + more < kMax + 65516);
}

TEST(a_non_stream_exchange_has_no_ledger_and_no_bound) {
  std::string payload = "q";
  ClientExchange ex("/p", Options(), false);
  CHECK(ex.ledger() == nullptr);
  ex.SetRequest(Request(payload));
  ToReceive(&ex);
  const std::string packet = "fff0" + std::string(65516, 'x');
  for (uint64_t got = 0; got <= 2 * sipc::kMaxUntakenStreamBytes; got += 65516) Feed(&ex, packet);
  CHECK(ex.MayRead());
}

TEST(a_cancel_ends_the_exchange_once_with_its_reason) {
  std::string payload = "q";
  ClientExchange ex("/p", Options(), false);
  ex.SetRequest(Request(payload));
  ToReceive(&ex);
  ExchangeCommand cancel(ExchangeCommand::Kind::kCancel, 1);
  cancel.why = Status::Lib(LibCode::kAborted, "cancelled");
  cancel.ApplyTo(&ex);
  CHECK(ex.result().status.is(LibCode::kAborted));
  ExchangeCommand late(ExchangeCommand::Kind::kCancel, 1);
  late.why = Status::Lib(LibCode::kTimeout);
  late.ApplyTo(&ex);
  Feed(&ex, "0000");
  CHECK(ex.result().status.is(LibCode::kAborted));  // the first outcome stays
  CHECK(!ex.MayRead());
}

// ---- where an asynchronous exchange waits (core/caller_side.h) ----

TEST(only_a_sent_non_stream_exchange_waits_on_the_calling_thread) {
  const std::string request = "x";
  ClientExchange sent("p", Options(), false);
  sent.SetRequest(Request(request));
  ToReceive(&sent);
  CHECK(CallerSide::WaitsOnCaller(sent));

  ClientExchange stream("p", Options(), true);
  stream.SetRequest(Request(request));
  ToReceive(&stream);
  CHECK(!CallerSide::WaitsOnCaller(stream));  // flow control is the I/O thread's

  ClientExchange connecting("p", Options(), false);
  connecting.SetRequest(Request(request));
  connecting.Begin(0);
  CHECK(!CallerSide::WaitsOnCaller(connecting));

  ClientExchange part_sent("p", Options(), false);
  part_sent.SetRequest(Request(request));
  part_sent.Begin(0);
  part_sent.OnConnected();
  part_sent.OnSent(1);
  CHECK(part_sent.phase() == Phase::kSend);
  CHECK(!CallerSide::WaitsOnCaller(part_sent));

  ClientExchange connect_only("p", Options(), false);
  connect_only.SetRequest(ClientRequest::None());
  connect_only.Begin(0);
  connect_only.OnConnected();
  CHECK(!CallerSide::WaitsOnCaller(connect_only));
}

TEST(the_io_thread_takes_over_after_the_wait_or_at_an_earlier_deadline) {
  const std::string request = "x";
  ClientExchange no_deadline("p", Options(), false);
  no_deadline.SetRequest(Request(request));
  ToReceive(&no_deadline, 1000);
  CHECK_EQ(CallerSide::HandOverAt(no_deadline, 1000), 1000 + CallerSide::kWaitMs);

  ClientExchange late_deadline("p", Options(60000), false);
  late_deadline.SetRequest(Request(request));
  ToReceive(&late_deadline, 1000);
  CHECK_EQ(CallerSide::HandOverAt(late_deadline, 1000), 1000 + CallerSide::kWaitMs);

  ClientExchange early_deadline("p", Options(2), false);
  early_deadline.SetRequest(Request(request));
  ToReceive(&early_deadline, 1000);
  CHECK_EQ(CallerSide::HandOverAt(early_deadline, 1000), int64_t{1002});
}

TEST(an_exchange_a_step_did_not_finish_goes_to_the_io_thread) {
  const std::string request = "x";
  ClientExchange ex("p", Options(), false);
  ex.SetRequest(Request(request));
  ToReceive(&ex);
  Feed(&ex, "0009abcde");  // a packet, no flush yet
  CHECK(CallerSide::HandOverAfterStep(ex));
  Feed(&ex, "0000");
  CHECK(ex.done());
  CHECK(!CallerSide::HandOverAfterStep(ex));
}

TEST_MAIN()
