// libFuzzer target: pkt::Reader fed arbitrary bytes in arbitrary splits,
// checked against the whole-buffer reference decoder, plus a writer/reader
// round trip of the same bytes.
//
// Input: byte 0 picks the split pattern, byte 1 the largest chunk, byte 2
// the payload limit; the rest is the stream.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../core/pkt_line.h"
#include "fuzz_reference.h"

using sipc::pkt::Reader;
using sipc_fuzz::RefResult;

namespace {

size_t PickLimit(uint8_t b) {
  switch (b % 8) {
    case 0:
      return 0;
    case 1:
      return 1;
    case 2:
      return 5;
    case 3:
      return 100;
    case 4:
      return 65516;
    case 5:
      return 65517;
    case 6:
      return static_cast<size_t>(b) * 37;
    default:
      return SIZE_MAX;
  }
}

Reader::State ToReaderState(RefResult::State s) {
  switch (s) {
    case RefResult::kNeedMore:
      return Reader::State::kNeedMore;
    case RefResult::kDone:
      return Reader::State::kDone;
    case RefResult::kProtocolError:
      return Reader::State::kProtocolError;
    case RefResult::kTooLarge:
      return Reader::State::kTooLarge;
  }
  return Reader::State::kNeedMore;
}

Reader::EndPacket ToEnd(int end) {
  switch (end) {
    case 0:
      return Reader::EndPacket::kFlush;
    case 1:
      return Reader::EndPacket::kDelim;
    case 2:
      return Reader::EndPacket::kResponseEnd;
    default:
      return Reader::EndPacket::kEmptyData;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  sipc_fuzz::Splitter split(data[0], data[1] == 0 ? 1 : data[1]);
  size_t limit = PickLimit(data[2]);
  const uint8_t* stream = data + 3;
  size_t len = size - 3;

  // Incremental, split as the input says.
  Reader reader(limit);
  std::vector<uint8_t> payload;
  size_t used = 0;
  size_t off = 0;
  while (off < len) {
    size_t chunk = split.Next();
    if (chunk > len - off) chunk = len - off;
    size_t n = reader.Feed(stream + off, chunk, &payload);
    if (n > chunk) sipc_fuzz::Crash("consumed more than given");
    used += n;
    if (reader.state() != Reader::State::kNeedMore) {
      if (reader.Feed(stream + off + n, chunk - n, &payload) != 0) sipc_fuzz::Crash("consumed after the end");
      break;
    }
    if (n != chunk) sipc_fuzz::Crash("stopped early without an end");
    off += chunk;
  }

  RefResult ref = sipc_fuzz::RefDecode(stream, len, limit);
  if (reader.state() != ToReaderState(ref.state)) sipc_fuzz::Crash("state differs from the reference");
  if (used != ref.used) sipc_fuzz::Crash("consumed count differs from the reference");
  if (payload != ref.payload) sipc_fuzz::Crash("payload differs from the reference");
  if (reader.payload_size() != payload.size()) sipc_fuzz::Crash("payload_size wrong");
  if (payload.size() > limit) sipc_fuzz::Crash("over the limit");
  if (ref.state == RefResult::kDone && reader.end_packet() != ToEnd(ref.end)) sipc_fuzz::Crash("end packet differs");
  if (reader.mid_message() != (len > 0 && ref.state == RefResult::kNeedMore)) sipc_fuzz::Crash("mid_message wrong");

  // Round trip: the stream as a message body comes back intact.
  std::vector<uint8_t> wire;
  sipc::pkt::AppendMessage(stream, len, &wire);
  Reader back;
  std::vector<uint8_t> out;
  size_t pos = 0;
  while (pos < wire.size() && back.state() == Reader::State::kNeedMore) {
    size_t chunk = split.Next();
    if (chunk > wire.size() - pos) chunk = wire.size() - pos;
    pos += back.Feed(wire.data() + pos, chunk, &out);
  }
  if (back.state() != Reader::State::kDone || back.end_packet() != Reader::EndPacket::kFlush || pos != wire.size() ||
      out.size() != len || (len > 0 && !std::equal(out.begin(), out.end(), stream))) {
    sipc_fuzz::Crash("round trip failed");
  }
  return 0;
}
