// ByteBuffer: a growable byte buffer for whole requests and responses.
//
// Unlike std::vector it grows with realloc(), which for large blocks
// (glibc: mmap'd chunks) moves pages with mremap() instead of copying
// them into a new allocation. A 50 MB message is then written into memory
// once, not about twice, which matters most where first-touch page
// faults are expensive (they dominate bulk transfers on many VMs).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>
#include <vector>

namespace sipc {

// Messages at least this large are not copied between JS and native code:
// a request or reply chunk is sent from the caller's memory (borrowed)
// when it cannot be written at once, and a received message becomes an
// external Buffer. Below it a copy costs less than keeping the memory
// alive and reporting it back. The one definition, for the server, the
// client and the addon.
constexpr size_t kBorrowThreshold = 64 * 1024;

class ByteBuffer {
 public:
  ByteBuffer() = default;
  // Adopts the bytes of a vector (one copy). Lets transports that build
  // messages in vectors hand them over unchanged.
  ByteBuffer(std::vector<uint8_t>&& bytes) {  // NOLINT: implicit on purpose
    Append(bytes.data(), bytes.size());
    std::vector<uint8_t>().swap(bytes);
  }
  ByteBuffer(const ByteBuffer&) = delete;
  ByteBuffer& operator=(const ByteBuffer&) = delete;
  ByteBuffer(ByteBuffer&& other) noexcept { Swap(other); }
  ByteBuffer& operator=(ByteBuffer&& other) noexcept {
    if (this != &other) {
      Reset();
      Swap(other);
    }
    return *this;
  }
  ~ByteBuffer() { std::free(data_); }

  const uint8_t* data() const { return data_; }
  uint8_t* data() { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // Appends `len` bytes; throws std::bad_alloc when out of memory.
  void Append(const uint8_t* bytes, size_t len) {
    if (len == 0) return;
    Reserve(size_ + len);
    std::memcpy(data_ + size_, bytes, len);
    size_ += len;
  }

  // Makes room for at least `capacity` bytes in all.
  void Reserve(size_t capacity) {
    if (capacity <= capacity_) return;
    size_t grown = capacity_ < 4096 ? 4096 : capacity_ + capacity_ / 2;
    if (grown < capacity) grown = capacity;
    void* p = std::realloc(data_, grown);
    if (p == nullptr) throw std::bad_alloc();
    data_ = static_cast<uint8_t*>(p);
    capacity_ = grown;
  }

  // Forgets the content, keeps the memory.
  void Clear() { size_ = 0; }

  // Frees the memory.
  void Reset() {
    std::free(data_);
    data_ = nullptr;
    size_ = capacity_ = 0;
  }

  void Swap(ByteBuffer& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
    std::swap(capacity_, other.capacity_);
  }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

}  // namespace sipc
