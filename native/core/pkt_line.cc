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

size_t Reader::Feed(const uint8_t* data, size_t len, std::vector<uint8_t>* payload) {
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
    payload->insert(payload->end(), data + used, data + used + take);
    payload_total_ += take;
    packet_left_ -= take;
    used += take;
  }
  return used;
}

}  // namespace pkt
}  // namespace sipc
