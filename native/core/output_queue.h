// OutputQueue: the bytes waiting to be written on one connection.
//
// An entry is either owned (already pkt-line framed: the copy out of the
// caller's buffer was also the framing pass) or borrowed: the caller's
// payload, framed on the fly into header and payload spans, so that a
// large chunk reaches the kernel without a copy. Entries may carry a
// token. When an entry has been written in full its token is reported
// (that is how a JS `reply.write()` learns its bytes reached the kernel);
// when the queue is cleared the tokens of the dropped entries are handed
// back, so the owner of borrowed memory learns it is free again.
//
// Not thread-safe: the owning server guards it with its own lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <vector>

#include "byte_buffer.h"  // kBorrowThreshold
#include "pkt_line.h"

namespace sipc {

class OutputQueue {
 public:
  // Room for the headers a Fill() of `max` spans may generate.
  template <size_t kMaxSpans>
  struct HeaderScratch {
    char headers[kMaxSpans / 2 + 1][pkt::kHeaderSize];
  };

  void Push(std::vector<uint8_t>&& framed, uint64_t token) {
    if (framed.empty() && token == 0) return;
    Item item;
    item.bytes = std::move(framed);
    item.token = token;
    bytes_ += item.size();
    items_.push_back(std::move(item));
  }

  // Queues `len` payload bytes from the caller's memory, as data packets
  // (plus the flush with `with_flush`). The memory must stay valid and
  // unchanged until `token` (non-zero) is reported by Consume or Clear.
  void PushBorrowed(const uint8_t* data, size_t len, bool with_flush, uint64_t token) {
    Item item;
    item.borrowed = data;
    item.borrowed_len = len;
    item.borrowed_flush = with_flush;
    item.token = token;
    bytes_ += item.size();
    items_.push_back(std::move(item));
  }

  bool empty() const { return items_.empty(); }
  // The framed bytes still to be written (owned and borrowed alike).
  size_t bytes() const { return bytes_; }

  // Fills up to `max` spans with the unwritten bytes, oldest first, and
  // returns their number. Spans stay valid until Consume() or Clear()
  // (a deque keeps its elements in place when others are added), and,
  // for borrowed entries, as long as `scratch` holds their headers.
  template <size_t kMaxSpans>
  size_t Fill(pkt::Span* spans, HeaderScratch<kMaxSpans>* scratch) const {
    return FillImpl(spans, kMaxSpans, scratch->headers);
  }

  // Marks `written` bytes as sent; appends the tokens of entries that are
  // now complete (non-zero tokens only) to `done_tokens`.
  void Consume(size_t written, std::vector<uint64_t>* done_tokens) {
    while (!items_.empty()) {
      Item& item = items_.front();
      size_t left = item.size() - front_offset_;
      if (written < left) {
        front_offset_ += written;
        bytes_ -= written;
        return;
      }
      written -= left;
      bytes_ -= left;
      if (item.token != 0) done_tokens->push_back(item.token);
      items_.pop_front();
      front_offset_ = 0;
    }
  }

  // Drops everything; the tokens of the dropped entries go to `released`.
  void Clear(std::vector<uint64_t>* released) {
    for (const Item& item : items_) {
      if (item.token != 0) released->push_back(item.token);
    }
    Clear();
  }
  void Clear() {
    items_.clear();
    front_offset_ = 0;
    bytes_ = 0;
  }

 private:
  struct Item {
    std::vector<uint8_t> bytes;
    const uint8_t* borrowed = nullptr;
    size_t borrowed_len = 0;
    bool borrowed_flush = false;
    uint64_t token = 0;
    size_t size() const {
      if (borrowed == nullptr) return bytes.size();
      return pkt::EncodedSize(borrowed_len) + (borrowed_flush ? pkt::kHeaderSize : 0);
    }
  };

  size_t FillImpl(pkt::Span* spans, size_t max, char (*headers)[pkt::kHeaderSize]) const {
    size_t n = 0;
    for (size_t i = 0; i < items_.size() && n < max; i++) {
      const Item& item = items_[i];
      size_t offset = i == 0 ? front_offset_ : 0;
      if (item.borrowed != nullptr) {
        size_t room = max - n;
        size_t headers_used = 0;
        size_t got = pkt::FramedSpans(item.borrowed, item.borrowed_len, offset, spans + n, room, headers,
                                      item.borrowed_flush, &headers_used);
        n += got;
        headers += headers_used;
        if (got == room) break;
        continue;
      }
      if (item.bytes.size() == offset) continue;
      spans[n++] = pkt::Span{item.bytes.data() + offset, item.bytes.size() - offset};
    }
    return n;
  }

  std::deque<Item> items_;
  size_t front_offset_ = 0;   // bytes of the front item already written
  size_t bytes_ = 0;          // the items' sizes, less front_offset_
};

}  // namespace sipc
