#include "pkt_line.h"

#include <cstring>

namespace sipc {
namespace pkt {

const char kFlush[kHeaderSize] = {'0', '0', '0', '0'};

namespace {

const char kHexDigits[] = "0123456789abcdef";

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

void FormatHeader(size_t payload_len, char out[kHeaderSize]) {
  size_t total = payload_len + kHeaderSize;
  out[0] = kHexDigits[(total >> 12) & 0xf];
  out[1] = kHexDigits[(total >> 8) & 0xf];
  out[2] = kHexDigits[(total >> 4) & 0xf];
  out[3] = kHexDigits[total & 0xf];
}

void AppendPackets(const uint8_t* data, size_t len, std::vector<uint8_t>* out) {
  out->reserve(out->size() + EncodedSize(len) + kHeaderSize);
  while (len > 0) {
    size_t n = len < kMaxPayload ? len : kMaxPayload;
    char header[kHeaderSize];
    FormatHeader(n, header);
    out->insert(out->end(), header, header + kHeaderSize);
    out->insert(out->end(), data, data + n);
    data += n;
    len -= n;
  }
}

void AppendMessage(const uint8_t* data, size_t len, std::vector<uint8_t>* out) {
  AppendPackets(data, len, out);
  out->insert(out->end(), kFlush, kFlush + kHeaderSize);
}

size_t FramedSpans(const uint8_t* data, size_t len, size_t offset, Span* spans, size_t max_spans,
                   char (*headers)[kHeaderSize], bool with_flush, size_t* headers_used) {
  const size_t packets = PacketCount(len);
  const size_t body = EncodedSize(len);
  size_t n = 0;
  size_t header_count = 0;
  // Packets before the last are full, so the packet holding `offset`
  // follows by division; past the body only (part of) the flush is left.
  size_t packet = offset >= body ? packets : offset / kMaxPacketSize;
  size_t within = offset >= body ? 0 : offset % kMaxPacketSize;
  while (n < max_spans && packet < packets) {
    size_t payload_offset = packet * kMaxPayload;
    size_t payload_len = len - payload_offset < kMaxPayload ? len - payload_offset : kMaxPayload;
    if (within < kHeaderSize) {
      FormatHeader(payload_len, headers[header_count]);
      const uint8_t* h = reinterpret_cast<const uint8_t*>(headers[header_count++]);
      spans[n++] = Span{h + within, kHeaderSize - within};
      within = kHeaderSize;
      if (n == max_spans) break;
    }
    size_t skip = within - kHeaderSize;
    spans[n++] = Span{data + payload_offset + skip, payload_len - skip};
    packet++;
    within = 0;
  }
  if (with_flush && n < max_spans && offset < body + kHeaderSize && packet >= packets) {
    size_t flush_done = offset > body ? offset - body : 0;
    spans[n++] = Span{reinterpret_cast<const uint8_t*>(kFlush) + flush_done, kHeaderSize - flush_done};
  }
  if (headers_used != nullptr) *headers_used = header_count;
  return n;
}

bool Reader::ParseHeader() {
  size_t total = 0;
  for (size_t i = 0; i < kHeaderSize; i++) {
    int v = HexValue(header_[i]);
    if (v < 0) {
      error_text_ = "non-hex character in packet header";
      state_ = State::kProtocolError;
      return false;
    }
    total = (total << 4) | static_cast<size_t>(v);
  }
  switch (total) {
    case 0:
      end_ = EndPacket::kFlush;
      state_ = State::kDone;
      return false;
    case 1:
      end_ = EndPacket::kDelim;
      state_ = State::kDone;
      return false;
    case 2:
      end_ = EndPacket::kResponseEnd;
      state_ = State::kDone;
      return false;
    case 3:
      error_text_ = "invalid packet length 0003";
      state_ = State::kProtocolError;
      return false;
    case 4:
      end_ = EndPacket::kEmptyData;
      state_ = State::kDone;
      return false;
    default:
      break;
  }
  if (total > kMaxPacketSize) {
    error_text_ = "packet length above 65520";
    state_ = State::kProtocolError;
    return false;
  }
  packet_left_ = total - kHeaderSize;
  return true;
}

template <typename Sink>
size_t Reader::FeedInto(const uint8_t* data, size_t len, Sink&& append) {
  size_t used = 0;
  if (len > 0) started_ = true;
  while (used < len && state_ == State::kNeedMore) {
    if (packet_left_ == 0) {
      size_t want = kHeaderSize - header_fill_;
      size_t take = len - used < want ? len - used : want;
      std::memcpy(header_ + header_fill_, data + used, take);
      header_fill_ += take;
      used += take;
      if (header_fill_ < kHeaderSize) break;
      header_fill_ = 0;
      if (!ParseHeader()) break;
      if (payload_total_ + packet_left_ > max_payload_) {
        state_ = State::kTooLarge;
        break;
      }
      continue;
    }
    size_t take = len - used < packet_left_ ? len - used : packet_left_;
    append(data + used, take);
    payload_total_ += take;
    packet_left_ -= take;
    used += take;
  }
  return used;
}

size_t Reader::Feed(const uint8_t* data, size_t len, std::vector<uint8_t>* payload) {
  return FeedInto(data, len, [payload](const uint8_t* p, size_t n) { payload->insert(payload->end(), p, p + n); });
}

size_t Reader::Feed(const uint8_t* data, size_t len, ByteBuffer* payload) {
  return FeedInto(data, len, [payload](const uint8_t* p, size_t n) { payload->Append(p, n); });
}

}  // namespace pkt
}  // namespace sipc
