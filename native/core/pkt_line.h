// pkt-line framing (docs/protocol.md#pkt-line-framing).
//
// A message is a run of data packets ended by the flush packet "0000". A
// data packet is a 4-digit hex length that counts the header itself, then
// the payload. Writers emit lowercase hex and never an empty data packet.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "byte_buffer.h"

namespace sipc {
namespace pkt {

constexpr size_t kHeaderSize = 4;
constexpr size_t kMaxPacketSize = 65520;
constexpr size_t kMaxPayload = kMaxPacketSize - kHeaderSize;  // 65516
extern const char kFlush[kHeaderSize];                         // "0000"

// Writes the lowercase header for a packet carrying `payload_len` bytes
// (1..kMaxPayload).
void FormatHeader(size_t payload_len, char out[kHeaderSize]);

// Number of data packets a message body of `len` bytes is cut into.
inline size_t PacketCount(size_t len) { return (len + kMaxPayload - 1) / kMaxPayload; }

// Bytes on the wire for `len` payload bytes, without the flush.
inline size_t EncodedSize(size_t len) { return len + PacketCount(len) * kHeaderSize; }

// Appends `len` bytes as data packets (no flush) to `out`.
void AppendPackets(const uint8_t* data, size_t len, std::vector<uint8_t>* out);

// Appends a whole message: data packets then the flush.
void AppendMessage(const uint8_t* data, size_t len, std::vector<uint8_t>* out);

// The framed form of `len` payload bytes (packets, then the flush unless
// `with_flush` is false) without copying the payload: fills `spans` with
// the framed bytes from `offset` on, as header and payload pieces.
// `headers` stores the headers the spans point to (room for
// max_spans / 2 + 1); `headers_used` (optional) tells how many it took.
// Returns the number of spans, 0 once `offset` reaches the framed size.
struct Span {
  const uint8_t* data;
  size_t size;
};
size_t FramedSpans(const uint8_t* data, size_t len, size_t offset, Span* spans, size_t max_spans,
                   char (*headers)[kHeaderSize], bool with_flush = true, size_t* headers_used = nullptr);

// Incremental reader. Feed it bytes as they arrive; payload bytes are
// appended to the caller's buffer. It stops consuming at the end of the
// message, so bytes after the end packet are left to the caller.
//
// As Git's reader does, the message also ends, without error, at "0001"
// (delim), "0002" (response-end) and "0004" (empty data packet). "0003",
// non-hex header characters and lengths above 65520 are protocol errors.
class Reader {
 public:
  enum class State { kNeedMore, kDone, kProtocolError, kTooLarge };
  enum class EndPacket { kNone, kFlush, kDelim, kResponseEnd, kEmptyData };

  // `max_payload`: the largest total payload accepted; beyond it Feed
  // reports kTooLarge (and stops buffering).
  explicit Reader(size_t max_payload = SIZE_MAX) : max_payload_(max_payload) {}

  // Consumes bytes from `data` and returns how many were used. After a
  // result other than kNeedMore further calls consume nothing.
  size_t Feed(const uint8_t* data, size_t len, std::vector<uint8_t>* payload);
  size_t Feed(const uint8_t* data, size_t len, ByteBuffer* payload);

  State state() const { return state_; }
  EndPacket end_packet() const { return end_; }
  // True once any byte of the message has been seen.
  bool started() const { return started_; }
  // True while inside a packet or header (used to tell a clean EOF from
  // a truncated message; a reader that has not started is also "clean").
  bool mid_message() const { return started_ && state_ == State::kNeedMore; }
  // Total payload bytes accepted so far.
  size_t payload_size() const { return payload_total_; }
  // Description of the last protocol error ("bad header '00x3'", ...).
  const char* error_text() const { return error_text_; }

 private:
  bool ParseHeader();
  template <typename Sink>
  size_t FeedInto(const uint8_t* data, size_t len, Sink&& append);

  size_t max_payload_;
  size_t payload_total_ = 0;
  State state_ = State::kNeedMore;
  EndPacket end_ = EndPacket::kNone;
  bool started_ = false;
  char header_[kHeaderSize] = {};
  size_t header_fill_ = 0;
  size_t packet_left_ = 0;  // payload bytes still expected in this packet
  const char* error_text_ = "";
};

}  // namespace pkt
}  // namespace sipc
