// A second, deliberately plain implementation of the docs/protocol.md#pkt-line-framing reader rules,
// for differential fuzzing: it decodes a whole buffer at once (no
// incremental state), so a bug in pkt::Reader's handling of split input
// shows up as a difference.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <vector>

namespace sipc_fuzz {

struct RefResult {
  enum State { kNeedMore, kDone, kProtocolError, kTooLarge } state = kNeedMore;
  int end = 0;  // total length of the end packet: 0 flush, 1 delim, 2 response-end, 4 empty
  std::vector<uint8_t> payload;
  size_t used = 0;  // bytes a reader consumes (headers of error packets included)
};

inline int RefHex(uint8_t c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

inline RefResult RefDecode(const uint8_t* data, size_t size, size_t max_payload) {
  RefResult r;
  size_t off = 0;
  for (;;) {
    if (size - off < 4) {
      r.used = size;
      r.state = RefResult::kNeedMore;
      return r;
    }
    size_t len = 0;
    for (int i = 0; i < 4; i++) {
      int v = RefHex(data[off + i]);
      if (v < 0) {
        r.used = off + 4;
        r.state = RefResult::kProtocolError;
        return r;
      }
      len = len * 16 + static_cast<size_t>(v);
    }
    off += 4;
    if (len == 0 || len == 1 || len == 2 || len == 4) {
      r.used = off;
      r.state = RefResult::kDone;
      r.end = static_cast<int>(len);
      return r;
    }
    if (len == 3 || len > 65520) {
      r.used = off;
      r.state = RefResult::kProtocolError;
      return r;
    }
    size_t plen = len - 4;
    if (r.payload.size() + plen > max_payload) {
      r.used = off;
      r.state = RefResult::kTooLarge;
      return r;
    }
    size_t take = size - off < plen ? size - off : plen;
    r.payload.insert(r.payload.end(), data + off, data + off + take);
    off += take;
    if (take < plen) {
      r.used = size;
      r.state = RefResult::kNeedMore;
      return r;
    }
  }
}

// Deterministic chunk sizes from a seed (xorshift).
struct Splitter {
  uint64_t state;
  size_t max_chunk;
  Splitter(uint64_t seed, size_t max) : state(seed * 0x9E3779B97F4A7C15ULL + 1), max_chunk(max ? max : 1) {}
  size_t Next() {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return 1 + static_cast<size_t>(state % max_chunk);
  }
};

// A failed check: says which, then crashes so that libFuzzer keeps the input.
[[noreturn]] inline void Crash(const char* why) {
  std::fprintf(stderr, "fuzz check failed: %s\n", why);
  __builtin_trap();
}

}  // namespace sipc_fuzz
