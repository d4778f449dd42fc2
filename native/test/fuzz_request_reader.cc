// libFuzzer target: the server's request path without sockets. Bytes go
// through a pkt::Reader configured as PosixServer configures it (limit =
// maxRequestBytes, fed whatever each recv() returned, the return value of
// Feed ignored since a connection carries one request), and the end of
// the stream is classified as the server does: request, protocol error,
// too large, truncated request, or a silent liveness probe.
//
// Input: byte 0 picks maxRequestBytes, byte 1 the recv() size pattern;
// the rest is what the client sent before hanging up.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../core/pkt_line.h"
#include "fuzz_reference.h"

using sipc::pkt::Reader;
using sipc_fuzz::RefResult;

namespace {

enum class Outcome { kRequest, kProtocol, kTooLarge, kIncomplete, kProbe };

size_t MaxRequestBytes(uint8_t b) {
  switch (b % 6) {
    case 0:
      return 0;
    case 1:
      return 64u << 20;  // the default
    case 2:
      return SIZE_MAX;  // maxRequestBytes: Infinity
    case 3:
      return 65516;
    default:
      return static_cast<size_t>(b);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  size_t max_request = MaxRequestBytes(data[0]);
  // recv() returns anything from 1 byte to the 256 KiB buffer.
  sipc_fuzz::Splitter recv_sizes(data[1], data[1] < 128 ? data[1] + 1 : 256 * 1024);
  const uint8_t* stream = data + 2;
  size_t len = size - 2;

  Reader reader(max_request);
  std::vector<uint8_t> request;
  Outcome outcome = Outcome::kProbe;
  bool decided = false;
  size_t off = 0;
  while (off < len && !decided) {
    size_t n = recv_sizes.Next();
    if (n > len - off) n = len - off;
    reader.Feed(stream + off, n, &request);
    off += n;
    switch (reader.state()) {
      case Reader::State::kNeedMore:
        break;
      case Reader::State::kProtocolError:
        outcome = Outcome::kProtocol;
        decided = true;
        break;
      case Reader::State::kTooLarge:
        outcome = Outcome::kTooLarge;
        decided = true;
        break;
      case Reader::State::kDone:
        outcome = Outcome::kRequest;
        decided = true;
        break;
    }
  }
  if (!decided) outcome = reader.started() ? Outcome::kIncomplete : Outcome::kProbe;

  RefResult ref = sipc_fuzz::RefDecode(stream, len, max_request);
  Outcome expected = Outcome::kProbe;
  switch (ref.state) {
    case RefResult::kDone:
      expected = Outcome::kRequest;
      break;
    case RefResult::kProtocolError:
      expected = Outcome::kProtocol;
      break;
    case RefResult::kTooLarge:
      expected = Outcome::kTooLarge;
      break;
    case RefResult::kNeedMore:
      expected = len > 0 ? Outcome::kIncomplete : Outcome::kProbe;
      break;
  }
  if (outcome != expected) sipc_fuzz::Crash("outcome differs from the reference");
  if (request.size() > max_request) sipc_fuzz::Crash("request over maxRequestBytes was buffered");
  if (outcome == Outcome::kRequest && request != ref.payload) sipc_fuzz::Crash("request differs from the reference");
  // A message is never complete unless it ended with an end packet.
  if (outcome == Outcome::kRequest && reader.end_packet() == Reader::EndPacket::kNone) sipc_fuzz::Crash("no end packet");
  return 0;
}
