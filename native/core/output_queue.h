// OutputQueue: the framed bytes waiting to be written on one connection.
//
// Each entry is already pkt-line framed (the copy out of the caller's
// buffer is also the framing pass), so a writer hands the kernel one
// iovec per entry. Entries may carry a token: when an entry has been
// written in full its token is reported, which is how a JS `reply.write()`
// learns that its bytes reached the kernel.
//
// Not thread-safe: the owning server guards it with its own lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <vector>

namespace sipc {

struct ByteSpan {
  const uint8_t* data;
  size_t size;
};

class OutputQueue {
 public:
  void Push(std::vector<uint8_t>&& framed, uint64_t token) {
    if (framed.empty() && token == 0) return;
    bytes_pending_ += framed.size();
    items_.push_back(Item{std::move(framed), token});
  }

  bool empty() const { return items_.empty(); }
  size_t bytes_pending() const { return bytes_pending_ - front_offset_; }

  // Fills up to `max` spans with the unwritten bytes, oldest first.
  // Returns the number of spans. Spans stay valid until Consume() or
  // Clear(): a deque keeps its elements in place when others are added.
  size_t Fill(ByteSpan* spans, size_t max) const {
    size_t n = 0;
    for (size_t i = 0; i < items_.size() && n < max; i++) {
      const Item& item = items_[i];
      size_t offset = i == 0 ? front_offset_ : 0;
      if (item.bytes.size() == offset) continue;
      spans[n++] = ByteSpan{item.bytes.data() + offset, item.bytes.size() - offset};
    }
    return n;
  }

  // Marks `written` bytes as sent; appends the tokens of entries that are
  // now complete (non-zero tokens only) to `done_tokens`.
  void Consume(size_t written, std::vector<uint64_t>* done_tokens) {
    while (!items_.empty()) {
      Item& item = items_.front();
      size_t left = item.bytes.size() - front_offset_;
      if (written < left) {
        front_offset_ += written;
        return;
      }
      written -= left;
      bytes_pending_ -= item.bytes.size();
      if (item.token != 0) done_tokens->push_back(item.token);
      items_.pop_front();
      front_offset_ = 0;
    }
  }

  void Clear() {
    items_.clear();
    bytes_pending_ = 0;
    front_offset_ = 0;
  }

 private:
  struct Item {
    std::vector<uint8_t> bytes;
    uint64_t token;
  };
  std::deque<Item> items_;
  size_t bytes_pending_ = 0;  // sum of all item sizes
  size_t front_offset_ = 0;   // bytes of the front item already written
};

}  // namespace sipc
