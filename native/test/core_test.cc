// Unit tests of native/core: the pkt-line writer and reader (every rule of
// docs/protocol.md#pkt-line-framing, with every way of splitting the input), OutputQueue,
// the status names, StreamFlow and the stale-lock rule.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "../core/admission.h"
#include "../core/output_queue.h"
#include "../core/pkt_line.h"
#include "../core/stale_lock.h"
#include "../core/status.h"
#include "../core/stream_flow.h"
#include "test_util.h"

using sipc::OutputQueue;
using sipc::pkt::Reader;
namespace pkt = sipc::pkt;

namespace {

std::vector<uint8_t> Bytes(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }

std::string Str(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }

// A small deterministic PRNG (xorshift64*), so failures reproduce.
struct Rng {
  uint64_t state;
  explicit Rng(uint64_t seed) : state(seed ? seed : 1) {}
  uint64_t Next() {
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 2685821657736338717ULL;
  }
  size_t Below(size_t n) { return n == 0 ? 0 : static_cast<size_t>(Next() % n); }
};

struct ReadResult {
  Reader::State state;
  Reader::EndPacket end;
  std::vector<uint8_t> payload;
  size_t used;  // bytes of the input consumed
  bool mid_message;
};

// Feeds `input` cut into pieces at `cuts` (sorted offsets).
ReadResult ReadWithCuts(const std::vector<uint8_t>& input, const std::vector<size_t>& cuts,
                        size_t max_payload = SIZE_MAX) {
  Reader reader(max_payload);
  ReadResult r;
  r.used = 0;
  size_t start = 0;
  std::vector<size_t> bounds = cuts;
  bounds.push_back(input.size());
  for (size_t end : bounds) {
    if (end < start) continue;
    size_t used = reader.Feed(input.data() + start, end - start, &r.payload);
    r.used += used;
    if (reader.state() != Reader::State::kNeedMore) {
      // Nothing is consumed once the message ended.
      size_t more = reader.Feed(input.data() + start + used, end - start - used, &r.payload);
      if (more != 0) sipc_test::Fail(__FILE__, __LINE__, "Feed consumed bytes after the end");
      break;
    }
    if (used != end - start) sipc_test::Fail(__FILE__, __LINE__, "Feed stopped early without an end");
    start = end;
  }
  r.state = reader.state();
  r.end = reader.end_packet();
  r.mid_message = reader.mid_message();
  return r;
}

ReadResult ReadWhole(const std::string& input, size_t max_payload = SIZE_MAX) {
  return ReadWithCuts(Bytes(input), {}, max_payload);
}

ReadResult ReadByteByByte(const std::vector<uint8_t>& input, size_t max_payload = SIZE_MAX) {
  std::vector<size_t> cuts;
  for (size_t i = 1; i < input.size(); i++) cuts.push_back(i);
  return ReadWithCuts(input, cuts, max_payload);
}

bool Same(const ReadResult& a, const ReadResult& b) {
  return a.state == b.state && a.end == b.end && a.payload == b.payload && a.used == b.used;
}

// Reading `input` whole, byte by byte and cut in two at every offset must
// give the same answer.
void CheckAllSplits(const std::string& input, size_t max_payload = SIZE_MAX) {
  std::vector<uint8_t> bytes = Bytes(input);
  ReadResult whole = ReadWithCuts(bytes, {}, max_payload);
  ReadResult single = ReadByteByByte(bytes, max_payload);
  if (!Same(whole, single)) sipc_test::Fail(__FILE__, __LINE__, "byte-by-byte differs for " + input.substr(0, 40));
  for (size_t cut = 0; cut <= bytes.size(); cut++) {
    ReadResult two = ReadWithCuts(bytes, {cut}, max_payload);
    if (!Same(whole, two)) {
      sipc_test::Fail(__FILE__, __LINE__, "cut at " + std::to_string(cut) + " differs for " + input.substr(0, 40));
      return;
    }
  }
}

std::string Packet(const std::string& payload) {
  char header[5];
  std::snprintf(header, sizeof(header), "%04x", static_cast<unsigned>(payload.size() + 4));
  return std::string(header) + payload;
}

// docs/protocol.md#the-lock-file, docs/security.md#files-beside-the-socket
TEST(stale_lock_rule) {
  auto dead = [](int64_t) { return false; };
  auto alive = [](int64_t) { return true; };
  sipc::LockFileInfo lock;
  lock.content = "1234\n";
  CHECK(sipc::LockIsStale(lock, dead));
  CHECK(!sipc::LockIsStale(lock, alive));
  lock.content = "";
  lock.age_ms = sipc::kEmptyLockStaleMs - 1;
  CHECK(!sipc::LockIsStale(lock, dead));
  lock.age_ms = sipc::kEmptyLockStaleMs;
  CHECK(sipc::LockIsStale(lock, dead));
  // Not a regular file of ours: never stale, whatever it holds.
  lock.ours = false;
  CHECK(!sipc::LockIsStale(lock, dead));
  lock.content = "1234\n";
  CHECK(!sipc::LockIsStale(lock, dead));
  CHECK_EQ(sipc::LockOwnerPid("12x"), int64_t{-1});
  CHECK_EQ(sipc::LockOwnerPid("77\n"), int64_t{77});
}

// docs/security.md#refused-and-undecided-peers
TEST(undecided_peers_share_per_user) {
  sipc::UndecidedPeers peers(1000, 8);  // a share of 2
  CHECK(peers.TryAdmit(5));
  CHECK(peers.TryAdmit(5));
  CHECK(!peers.TryAdmit(5));
  CHECK(peers.TryAdmit(6));
  for (int i = 0; i < 20; i++) CHECK(peers.TryAdmit(1000));  // the server's own user: no cap
  peers.Decided(5);
  CHECK(peers.TryAdmit(5));
  CHECK_EQ(peers.held(5), 2u);
  peers.Decided(7);  // never counted: nothing happens
  CHECK_EQ(sipc::UndecidedPeers(0, 1).cap(), 1u);
}

// docs/security.md#memory
TEST(request_memory_budget) {
  sipc::RequestMemory memory(100);
  size_t a = 0, b = 0;
  CHECK(memory.Grow(&a, 60));
  CHECK(!memory.Grow(&b, 41));  // past the budget: nothing charged
  CHECK_EQ(b, size_t{0});
  CHECK(memory.Grow(&b, 40));   // up to it exactly
  CHECK(memory.Grow(&a, 60));   // no growth
  memory.Release(&a);
  CHECK_EQ(a, size_t{0});
  CHECK_EQ(memory.total(), size_t{40});
  CHECK(memory.Grow(&b, 100));
  CHECK(!memory.Grow(&b, 101));
}

}  // namespace

// ---- writer ----

TEST(format_header_is_lowercase_and_counts_itself) {
  char h[4];
  pkt::FormatHeader(1, h);
  CHECK_EQ(std::string(h, 4), std::string("0005"));
  pkt::FormatHeader(6, h);
  CHECK_EQ(std::string(h, 4), std::string("000a"));
  pkt::FormatHeader(pkt::kMaxPayload, h);
  CHECK_EQ(std::string(h, 4), std::string("fff0"));
  CHECK_EQ(pkt::kMaxPayload, size_t{65516});
  CHECK_EQ(std::string(pkt::kFlush, 4), std::string("0000"));
}

TEST(empty_message_is_just_the_flush) {
  std::vector<uint8_t> out;
  pkt::AppendMessage(nullptr, 0, &out);
  CHECK_EQ(Str(out), std::string("0000"));
  out.clear();
  pkt::AppendPackets(nullptr, 0, &out);
  CHECK(out.empty());
  CHECK_EQ(pkt::PacketCount(0), size_t{0});
  CHECK_EQ(pkt::EncodedSize(0), size_t{0});
}

TEST(writer_cuts_at_65516_and_never_emits_an_empty_packet) {
  for (size_t len : {size_t{1}, size_t{65515}, size_t{65516}, size_t{65517}, size_t{131032}, size_t{131033},
                     size_t{200000}}) {
    std::vector<uint8_t> data(len);
    for (size_t i = 0; i < len; i++) data[i] = static_cast<uint8_t>(i * 7);
    std::vector<uint8_t> out;
    pkt::AppendMessage(data.data(), len, &out);
    CHECK_EQ(out.size(), pkt::EncodedSize(len) + 4);
    // Walk the packets.
    size_t off = 0;
    size_t packets = 0;
    std::vector<uint8_t> back;
    for (;;) {
      REQUIRE(off + 4 <= out.size());
      std::string hdr(out.begin() + off, out.begin() + off + 4);
      for (char c : hdr) CHECK(!(c >= 'A' && c <= 'F'));
      size_t total = std::stoul(hdr, nullptr, 16);
      off += 4;
      if (total == 0) break;
      CHECK(total > 4);
      CHECK(total <= pkt::kMaxPacketSize);
      back.insert(back.end(), out.begin() + off, out.begin() + off + (total - 4));
      off += total - 4;
      packets++;
      // Every packet but the last is full.
      if (off + 4 < out.size()) CHECK_EQ(total, pkt::kMaxPacketSize);
    }
    CHECK_EQ(off, out.size());
    CHECK_EQ(packets, pkt::PacketCount(len));
    CHECK(back == data);
  }
}

// ---- reader: complete messages ----

TEST(reader_reads_a_simple_message) {
  ReadResult r = ReadWhole(Packet("hello") + Packet(" world") + "0000");
  CHECK(r.state == Reader::State::kDone);
  CHECK(r.end == Reader::EndPacket::kFlush);
  CHECK_EQ(Str(r.payload), std::string("hello world"));
  CHECK(!r.mid_message);
}

TEST(reader_accepts_upper_and_lower_case_hex) {
  std::string six = "abcdef";
  ReadResult lower = ReadWhole("000a" + six + "0000");
  ReadResult upper = ReadWhole("000A" + six + "0000");
  CHECK(lower.state == Reader::State::kDone);
  CHECK(upper.state == Reader::State::kDone);
  CHECK_EQ(Str(upper.payload), six);
  std::string big(0xABC - 4, 'x');
  ReadResult mixed = ReadWhole("0aBc" + big + "0000");
  CHECK(mixed.state == Reader::State::kDone);
  CHECK_EQ(mixed.payload.size(), big.size());
}

TEST(reader_empty_message) {
  ReadResult r = ReadWhole("0000");
  CHECK(r.state == Reader::State::kDone);
  CHECK(r.end == Reader::EndPacket::kFlush);
  CHECK(r.payload.empty());
  CHECK_EQ(r.used, size_t{4});
}

TEST(reader_ends_without_error_at_delim_response_end_and_empty_packet) {
  struct {
    const char* end;
    Reader::EndPacket kind;
  } cases[] = {{"0001", Reader::EndPacket::kDelim},
               {"0002", Reader::EndPacket::kResponseEnd},
               {"0004", Reader::EndPacket::kEmptyData}};
  for (auto& c : cases) {
    std::string input = Packet("abc") + c.end + Packet("after") + "0000";
    ReadResult r = ReadWhole(input);
    CHECK(r.state == Reader::State::kDone);
    CHECK(r.end == c.kind);
    CHECK_EQ(Str(r.payload), std::string("abc"));
    // Bytes after the end packet are left to the caller.
    CHECK_EQ(r.used, size_t{7 + 4});
    CheckAllSplits(input);
  }
}

TEST(reader_leaves_bytes_after_the_flush) {
  std::string input = Packet("x") + "0000" + "trailing garbage";
  ReadResult r = ReadWhole(input);
  CHECK(r.state == Reader::State::kDone);
  CHECK_EQ(r.used, size_t{9});
  CheckAllSplits(input);
}

TEST(reader_largest_packet_is_65520) {
  std::string payload(pkt::kMaxPayload, 'p');
  ReadResult r = ReadWhole("fff0" + payload + "0000");
  CHECK(r.state == Reader::State::kDone);
  CHECK_EQ(r.payload.size(), pkt::kMaxPayload);
  // Upper case too.
  r = ReadWhole("FFF0" + payload + "0000");
  CHECK(r.state == Reader::State::kDone);
}

// ---- reader: protocol errors ----

TEST(reader_rejects_0003) {
  ReadResult r = ReadWhole(Packet("ok") + "0003" + "0000");
  CHECK(r.state == Reader::State::kProtocolError);
  CheckAllSplits(Packet("ok") + "0003" + "0000");
  Reader reader;
  std::vector<uint8_t> out;
  reader.Feed(reinterpret_cast<const uint8_t*>("0003"), 4, &out);
  CHECK(std::strlen(reader.error_text()) > 0);
}

TEST(reader_rejects_non_hex_in_every_position) {
  const char bad[] = {'g', 'G', 'x', ' ', '-', '+', ':', '/', '@', '`', '\0', '\n', '\xff', '\x80'};
  for (int pos = 0; pos < 4; pos++) {
    for (char c : bad) {
      std::string header = "0009";
      header[pos] = c;
      std::string input = header + "12345" + "0000";
      ReadResult r = ReadWhole(input);
      if (r.state != Reader::State::kProtocolError) {
        sipc_test::Fail(__FILE__, __LINE__,
                        "header with byte " + std::to_string(static_cast<uint8_t>(c)) + " at " + std::to_string(pos) +
                            " accepted");
      }
      CHECK(r.payload.empty());
      CheckAllSplits(input);
    }
  }
}

TEST(reader_rejects_lengths_above_65520) {
  for (const char* h : {"fff1", "fff5", "ffff", "FFFF", "fffA"}) {
    std::string input = std::string(h) + std::string(70000, 'z') + "0000";
    ReadResult r = ReadWhole(input);
    CHECK(r.state == Reader::State::kProtocolError);
    CHECK(r.payload.empty());
    // The error is found at the header: nothing of the payload is taken.
    CHECK_EQ(r.used, size_t{4});
  }
}

TEST(reader_error_after_good_packets) {
  std::string input = Packet("good") + Packet("also good") + "00z0" + "0000";
  ReadResult r = ReadWhole(input);
  CHECK(r.state == Reader::State::kProtocolError);
  CheckAllSplits(input);
}

TEST(reader_consumes_nothing_after_an_error) {
  Reader reader;
  std::vector<uint8_t> out;
  std::string input = "zzzz0000";
  size_t used = reader.Feed(reinterpret_cast<const uint8_t*>(input.data()), input.size(), &out);
  CHECK_EQ(used, size_t{4});
  CHECK(reader.state() == Reader::State::kProtocolError);
  CHECK_EQ(reader.Feed(reinterpret_cast<const uint8_t*>("0000"), 4, &out), size_t{0});
  CHECK(reader.state() == Reader::State::kProtocolError);
}

// ---- reader: truncation ----

TEST(reader_truncated_message_is_never_complete) {
  std::string full = Packet("hello") + Packet("world") + "0000";
  for (size_t len = 0; len < full.size(); len++) {
    std::vector<uint8_t> part(full.begin(), full.begin() + len);
    ReadResult r = ReadByteByByte(part);
    CHECK(r.state == Reader::State::kNeedMore);
    // Any byte seen means the stream ended mid-message.
    CHECK_EQ(r.mid_message, len > 0);
  }
}

TEST(reader_started_flag) {
  Reader reader;
  std::vector<uint8_t> out;
  CHECK(!reader.started());
  CHECK(!reader.mid_message());
  reader.Feed(nullptr, 0, &out);
  CHECK(!reader.started());
  reader.Feed(reinterpret_cast<const uint8_t*>("0"), 1, &out);
  CHECK(reader.started());
  CHECK(reader.mid_message());
}

// ---- reader: the size limit ----

TEST(reader_max_payload_exact_is_accepted) {
  std::string input = Packet("12345") + Packet("67890") + "0000";
  ReadResult r = ReadWhole(input, 10);
  CHECK(r.state == Reader::State::kDone);
  CHECK_EQ(r.payload.size(), size_t{10});
  CheckAllSplits(input, 10);
}

TEST(reader_max_payload_plus_one_is_too_large) {
  std::string input = Packet("12345") + Packet("678901") + "0000";
  ReadResult r = ReadWhole(input, 10);
  CHECK(r.state == Reader::State::kTooLarge);
  // Stops before buffering the packet that crosses the limit.
  CHECK(r.payload.size() <= 10);
  CheckAllSplits(input, 10);
  // A zero limit accepts only the empty message.
  CHECK(ReadWhole("0000", 0).state == Reader::State::kDone);
  CHECK(ReadWhole(Packet("a") + "0000", 0).state == Reader::State::kTooLarge);
}

TEST(reader_too_large_does_not_buffer_the_rest) {
  // A client announcing a full packet after the limit: nothing of it is
  // kept, whatever follows.
  std::vector<uint8_t> input = Bytes(Packet(std::string(100, 'a')) + "fff0");
  input.resize(input.size() + 65516, 'b');
  Reader reader(150);
  std::vector<uint8_t> payload;
  size_t used = reader.Feed(input.data(), input.size(), &payload);
  CHECK(reader.state() == Reader::State::kTooLarge);
  CHECK_EQ(payload.size(), size_t{100});
  CHECK(used < input.size());
  CHECK_EQ(reader.payload_size(), size_t{100});
}

// ---- reader: split feeds ----

TEST(reader_every_split_of_a_mixed_message) {
  std::string input = Packet("a") + Packet(std::string(300, 'b')) + "000A" + "cdefgh" + "0000";
  CheckAllSplits(input);
  ReadResult r = ReadWhole(input);
  CHECK(r.state == Reader::State::kDone);
  CHECK_EQ(r.payload.size(), size_t{1 + 300 + 6});
}

TEST(reader_round_trips_random_messages_with_random_cuts) {
  Rng rng(12345);
  for (int iter = 0; iter < 300; iter++) {
    size_t len = rng.Below(4) == 0 ? rng.Below(200000) : rng.Below(300);
    std::vector<uint8_t> data(len);
    for (auto& b : data) b = static_cast<uint8_t>(rng.Next());
    std::vector<uint8_t> wire;
    pkt::AppendMessage(data.data(), len, &wire);
    std::vector<size_t> cuts;
    size_t ncuts = rng.Below(20);
    for (size_t i = 0; i < ncuts; i++) cuts.push_back(rng.Below(wire.size() + 1));
    std::sort(cuts.begin(), cuts.end());
    ReadResult r = ReadWithCuts(wire, cuts);
    CHECK(r.state == Reader::State::kDone);
    CHECK(r.end == Reader::EndPacket::kFlush);
    CHECK_EQ(r.used, wire.size());
    if (r.payload != data) {
      sipc_test::Fail(__FILE__, __LINE__, "round trip differs, len " + std::to_string(len));
      return;
    }
  }
}

TEST(reader_byte_by_byte_large_message) {
  std::vector<uint8_t> data(140000);
  for (size_t i = 0; i < data.size(); i++) data[i] = static_cast<uint8_t>(i % 251);
  std::vector<uint8_t> wire;
  pkt::AppendMessage(data.data(), data.size(), &wire);
  ReadResult r = ReadByteByByte(wire);
  CHECK(r.state == Reader::State::kDone);
  CHECK(r.payload == data);
}

// ---- OutputQueue ----

// Unwritten bytes left in a queue.
size_t Pending(const OutputQueue& q) {
  pkt::Span spans[64];
  OutputQueue::HeaderScratch<64> headers;
  size_t n = q.Fill(spans, &headers);
  size_t total = 0;
  for (size_t i = 0; i < n; i++) total += spans[i].size;
  return total;
}

TEST(output_queue_partial_writes_and_tokens) {
  OutputQueue q;
  CHECK(q.empty());
  q.Push(Bytes("aaaa"), 1);
  q.Push(Bytes("bb"), 0);
  q.Push(Bytes("ccc"), 3);
  CHECK_EQ(Pending(q), size_t{9});
  pkt::Span spans[8];
  OutputQueue::HeaderScratch<8> headers;
  CHECK_EQ(q.Fill(spans, &headers), size_t{3});
  CHECK_EQ(spans[0].size, size_t{4});
  std::vector<uint64_t> done;
  q.Consume(3, &done);
  CHECK(done.empty());
  CHECK_EQ(Pending(q), size_t{6});
  CHECK_EQ(q.Fill(spans, &headers), size_t{3});
  CHECK_EQ(spans[0].size, size_t{1});
  CHECK_EQ(spans[0].data[0], uint8_t{'a'});
  q.Consume(3, &done);  // rest of aaaa and bb: token 1 only (bb has none)
  CHECK_EQ(done.size(), size_t{1});
  CHECK_EQ(done[0], uint64_t{1});
  CHECK_EQ(Pending(q), size_t{3});
  done.clear();
  q.Consume(3, &done);
  CHECK_EQ(done.size(), size_t{1});
  CHECK_EQ(done[0], uint64_t{3});
  CHECK(q.empty());
  CHECK_EQ(Pending(q), size_t{0});
}

TEST(output_queue_fill_respects_max_and_order) {
  OutputQueue q;
  for (int i = 0; i < 10; i++) q.Push(std::vector<uint8_t>(i + 1, static_cast<uint8_t>('0' + i)), i + 1);
  pkt::Span spans[4];
  OutputQueue::HeaderScratch<4> headers;
  CHECK_EQ(q.Fill(spans, &headers), size_t{4});
  for (int i = 0; i < 4; i++) {
    CHECK_EQ(spans[i].size, size_t(i + 1));
    CHECK_EQ(spans[i].data[0], uint8_t('0' + i));
  }
  std::vector<uint64_t> done;
  q.Consume(1 + 2 + 3 + 4 + 5, &done);  // five whole entries
  CHECK_EQ(done.size(), size_t{5});
  for (size_t i = 0; i < done.size(); i++) CHECK_EQ(done[i], uint64_t(i + 1));
  CHECK_EQ(q.Fill(spans, &headers), size_t{4});
  CHECK_EQ(spans[0].data[0], uint8_t{'5'});
  q.Clear();
  CHECK(q.empty());
  CHECK_EQ(Pending(q), size_t{0});
  CHECK_EQ(q.Fill(spans, &headers), size_t{0});
}

TEST(output_queue_ignores_empty_untokened_entries) {
  OutputQueue q;
  q.Push({}, 0);
  CHECK(q.empty());
}

TEST(output_queue_spans_survive_later_pushes) {
  OutputQueue q;
  q.Push(Bytes("first"), 0);
  pkt::Span spans[2];
  OutputQueue::HeaderScratch<2> headers;
  CHECK_EQ(q.Fill(spans, &headers), size_t{1});
  const uint8_t* before = spans[0].data;
  for (int i = 0; i < 1000; i++) q.Push(Bytes("more"), 0);
  CHECK_EQ(q.Fill(spans, &headers), size_t{2});
  CHECK(spans[0].data == before);
  CHECK_EQ(std::string(reinterpret_cast<const char*>(before), 5), std::string("first"));
}

// ---- Status ----

TEST(status_code_names) {
  using sipc::LibCode;
  using sipc::Status;
  CHECK_EQ(std::string(sipc::StatusCodeName(Status::Ok())), std::string("OK"));
  CHECK_EQ(std::string(sipc::StatusCodeName(Status::FromErrno(ENOENT, "connect"))), std::string("ENOENT"));
  CHECK_EQ(std::string(sipc::StatusCodeName(Status::Lib(LibCode::kRequestTooLarge))),
           std::string("ERR_IPC_REQUEST_TOO_LARGE"));
  CHECK_EQ(std::string(sipc::StatusCodeName(Status::Lib(LibCode::kRequestTimeout))),
           std::string("ERR_IPC_REQUEST_TIMEOUT"));
  CHECK_EQ(std::string(sipc::StatusCodeName(Status::Lib(LibCode::kTooManyConnections))),
           std::string("ERR_IPC_TOO_MANY_CONNECTIONS"));
  CHECK_EQ(std::string(sipc::StatusCodeName(Status::Lib(LibCode::kProtocol))), std::string("ERR_IPC_PROTOCOL"));
  // Every library code has a distinct ERR_IPC_ (or ABORT_ERR) name.
  std::vector<std::string> names;
  for (int c = 100001; c <= 100012; c++) {
    std::string name = sipc::StatusCodeName(Status{c, nullptr, {}});
    CHECK(name.rfind("ERR_IPC_", 0) == 0 || name == "ABORT_ERR");
    CHECK(name != "ERR_IPC_UNKNOWN");
    for (const std::string& other : names) CHECK(other != name);
    names.push_back(name);
  }
  std::string msg = sipc::StatusMessage(Status::Lib(LibCode::kRequestTooLarge, "limit 10 bytes"));
  CHECK(msg.find("limit 10 bytes") != std::string::npos);
}

// ---- StreamFlow ----

TEST(stream_flow_holds_back_only_the_response_while_paused) {
  sipc::StreamFlow flow;
  CHECK(flow.MayRead(true));
  CHECK(flow.MayRead(false));
  flow.Pause();
  flow.Pause();  // twice: still one pause, undone by one Resume
  CHECK(!flow.MayRead(true));
  CHECK(flow.MayRead(false));  // connecting and sending go on
  flow.Resume();
  CHECK(flow.MayRead(true));
  flow.Resume();  // without a pause: nothing to undo
  CHECK(flow.MayRead(true));
}

// ---- StreamLedger (the hand-over bound) ----

TEST(stream_ledger_stops_at_the_bound_and_asks_for_one_wake_per_stop) {
  const uint64_t kMax = sipc::kMaxUntakenStreamBytes;
  const uint64_t kWake = sipc::kWakeUntakenStreamBytes;
  CHECK(kWake < kMax);
  sipc::StreamLedger ledger;
  CHECK(!ledger.HandedOver(kMax - 1));  // just under: reads on
  CHECK(!ledger.Taken(kMax - 1));        // taken without a stop: no wake
  CHECK_EQ(ledger.untaken(), uint64_t{0});
  CHECK(!ledger.HandedOver(kMax - 1));
  CHECK(ledger.HandedOver(1));  // at the bound: stop
  CHECK_EQ(ledger.untaken(), kMax);
  CHECK(!ledger.Taken(kMax - kWake));  // down to the wake level: not yet
  CHECK(ledger.Taken(1));              // under it: wake
  CHECK(!ledger.Taken(kWake - 1));     // once per stop
  CHECK_EQ(ledger.untaken(), uint64_t{0});
  // A second stop, a second wake.
  CHECK(ledger.HandedOver(kMax + 5));
  CHECK(ledger.Taken(kMax + 5));
  CHECK(!ledger.Taken(0));
}

// ---- the stale-lock rule (docs/protocol.md#the-lock-file) ----

namespace {
bool NoneAlive(int64_t) { return false; }
bool AllAlive(int64_t) { return true; }
bool StaleWith(const std::string& content, int64_t age_ms, bool alive) {
  sipc::LockFileInfo info;
  info.content = content;
  info.age_ms = age_ms;
  return alive ? sipc::LockIsStale(info, AllAlive) : sipc::LockIsStale(info, NoneAlive);
}
}  // namespace

TEST(stale_lock_without_a_pid_is_stale_from_5000_ms_not_before) {
  CHECK(!StaleWith("", 0, true));
  CHECK(!StaleWith("", 4999, true));
  CHECK(StaleWith("", 5000, true));
  CHECK(StaleWith("", 5001, false));
}

TEST(stale_lock_of_a_live_pid_is_never_stale_of_a_dead_one_always) {
  CHECK(!StaleWith("1234\n", 0, true));
  CHECK(!StaleWith("1234\n", 5000, true));
  CHECK(!StaleWith("1234\n", int64_t{1} << 40, true));  // years: still its holder's
  CHECK(StaleWith("1234\n", 0, false));
  CHECK(StaleWith("1234", 0, false));
}

TEST(stale_lock_pid_is_digits_then_nothing_or_a_line_break) {
  CHECK_EQ(sipc::LockOwnerPid("1234\n"), int64_t{1234});
  CHECK_EQ(sipc::LockOwnerPid("1234"), int64_t{1234});
  CHECK_EQ(sipc::LockOwnerPid(sipc::LockContentFor(987654)), int64_t{987654});
  // Malformed: bytes after the pid, no digits, zero, a sign, a number no
  // pid can be.
  for (const char* bad : {"1234x", "1234 \n", "1234\r\n", "12 34", "", "\n", "x1234", "-5\n", "+5\n", "0\n", "00\n",
                          "99999999999999999999\n"}) {
    CHECK_EQ(sipc::LockOwnerPid(bad), int64_t{-1});
  }
}

TEST(stale_lock_with_malformed_contents_is_judged_by_age_like_an_empty_one) {
  // "1234x" names no pid: even if 1234 lives, the lock goes stale by age.
  CHECK(!StaleWith("1234x", 4999, true));
  CHECK(StaleWith("1234x", 5000, true));
  CHECK(!StaleWith("1234 \n", 4999, true));
  CHECK(StaleWith("1234 \n", 5000, true));
}

TEST_MAIN()
