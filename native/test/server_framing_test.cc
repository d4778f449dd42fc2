// Server tests: the pkt-line conversation itself: requests and responses of every size, empty writes with tokens, Abort, and requests that are malformed, end early or end with another packet.
// Helpers: server_test_util.h.
#include "server_test_util.h"

namespace {

// ---- basics ----

TEST(ping_pong_and_peer_credentials) {
  Harness h;
  REQUIRE(h.start_status.ok());
  std::string response;
  ClientResult r = Send(h.path, "ping", &response);
  CHECK(r.status.ok());
  CHECK_EQ(response, std::string("pong"));
  // Without allowPeer the credentials come deferred: read on use
  // (server_peer_test.cc: peer_credentials_read_only_when_asked).
  CHECK(h.delegate.last_peer().deferred);
  CHECK(GetActiveState(h.path) == ActiveState::kListening);
}

TEST(big_and_empty_responses) {
  Harness h;
  REQUIRE(h.start_status.ok());
  std::string response;
  CHECK(Send(h.path, "big:1000000", &response).status.ok());
  CHECK(response == BigPayload(1000000));
  CHECK(Send(h.path, "", &response).status.ok());
  CHECK(response.empty());
  std::string large = BigPayload(300000);
  CHECK(Send(h.path, large, &response).status.ok());
  CHECK(response == large);
}

TEST(abort_is_never_a_complete_response) {
  Harness h;
  REQUIRE(h.start_status.ok());
  std::string response;
  ClientResult r = Send(h.path, "abort", &response);
  CHECK(!r.status.ok());
  CHECK(r.status.is(LibCode::kIncompleteResponse));
}

TEST(empty_write_with_token_is_reported_and_does_not_stall) {
  Harness h;
  REQUIRE(h.start_status.ok());
  std::string response;
  ClientResult r = Send(h.path, "zero-token", &response);
  CHECK(r.status.ok());
  CHECK_EQ(response, std::string("done"));
}

TEST(empty_write_with_token_while_idle_does_not_spin) {
  Harness h;
  REQUIRE(h.start_status.ok());
  double cpu0 = CpuSeconds();
  std::string response;
  ClientResult r = Send(h.path, "zero-token-idle", &response);
  double used = CpuSeconds() - cpu0;
  CHECK(r.status.ok());
  CHECK_EQ(response, std::string("done"));
  CHECK(h.delegate.token_written(78));
  std::fprintf(stderr, "    cpu during a 600 ms idle conversation: %.3f s\n", used);
  CHECK(used < 0.3);
}

// ---- malformed requests (docs/protocol.md#pkt-line-framing) ----

TEST(malformed_requests_are_dropped_without_a_response) {
  Harness h;
  REQUIRE(h.start_status.ok());
  const std::vector<std::string> bad = {
      "0003",                              // reserved length
      "00g5x",                             // non-hex
      "G005x",                             // non-hex, first position
      "000 ",                              // space
      std::string("00\0" "5x", 5),         // NUL
      "fff1" + std::string(70000, 'x'),    // above 65520
      "ffff",                              // far above
      "0009abcde" "zzzz",                  // good packet, then garbage
  };
  size_t expected = 0;
  for (const std::string& input : bad) {
    int fd = ConnectRaw(h.path);
    REQUIRE(fd >= 0);
    SendAll(fd, input);
    RawRead r = ReadUntilClosed(fd);
    close(fd);
    CHECK(r.eof);
    CHECK(r.bytes.empty());
    expected++;
    std::vector<int> errors = h.delegate.WaitClientErrors(expected);
    REQUIRE(errors.size() >= expected);
    CHECK_EQ(errors[expected - 1], static_cast<int>(LibCode::kProtocol));
  }
  CHECK_EQ(h.delegate.requests(), size_t{0});
  // The server still answers.
  std::string response;
  CHECK(Send(h.path, "ping", &response).status.ok());
}

TEST(delim_response_end_and_empty_packet_end_a_request) {
  Harness h;
  REQUIRE(h.start_status.ok());
  for (const char* end : {"0001", "0002", "0004", "0000"}) {
    int fd = ConnectRaw(h.path);
    REQUIRE(fd >= 0);
    SendAll(fd, std::string("0008echo") + end);
    RawRead r = ReadUntilClosed(fd);
    close(fd);
    CHECK_EQ(r.bytes, Frame("echo"));
  }
  // Upper-case hex.
  int fd = ConnectRaw(h.path);
  SendAll(fd, "000Aechoes0000");
  RawRead r = ReadUntilClosed(fd);
  close(fd);
  CHECK_EQ(r.bytes, Frame("echoes"));
}

TEST(truncated_request_and_liveness_probe) {
  Harness h;
  REQUIRE(h.start_status.ok());
  // A probe: connect and hang up. Silent.
  for (int i = 0; i < 5; i++) close(ConnectRaw(h.path));
  // Truncated: half a message, then hang up.
  int fd = ConnectRaw(h.path);
  SendAll(fd, "000aabc");
  shutdown(fd, SHUT_WR);
  RawRead r = ReadUntilClosed(fd);
  close(fd);
  CHECK(r.eof);
  CHECK(r.bytes.empty());
  std::vector<int> errors = h.delegate.WaitClientErrors(1);
  REQUIRE(errors.size() == 1);
  CHECK_EQ(errors[0], static_cast<int>(LibCode::kIncompleteRequest));
  SleepMs(100);
  CHECK_EQ(h.delegate.client_errors().size(), size_t{1});
}

}  // namespace
