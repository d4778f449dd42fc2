// Flow control of one exchange's response
// (docs/design.md#stream-backpressure).
//
// Two things stop a stream from reading:
//  - the consumer's pause: AsyncClient::Pause() and Resume(), asked for by
//    the JS thread once its own queue of chunks is long (lib/client.ts);
//  - the hand-over bound: chunks handed towards the consumer that it has
//    not taken yet (StreamLedger). The JS thread's pause is decided on the
//    JS thread, so it cannot act while that thread is not running (a
//    loaded machine, a busy loop); this bound holds whatever JS does.
//
// StreamFlow is owned by the thread that drives the exchange (the I/O
// thread; Pause, Resume and the ledger's wake reach it as commands). The
// StreamLedger is shared by that thread and the consumer's.
#pragma once

#include <atomic>
#include <cstdint>

namespace sipc {

// At most this many bytes of one stream's chunks are handed over and not
// yet taken by the consumer; reading stops there. A few chunks (a chunk
// is what one step read, up to 1 MiB), above lib/client.ts's 1 MiB
// high-water mark so that the consumer's own pause still leads while JS
// runs; small enough that a starved JS thread costs a few MiB per stream,
// not what the server sends meanwhile.
constexpr uint64_t kMaxUntakenStreamBytes = 4 * 1024 * 1024;
// The consumer wakes a stopped exchange once what it has not taken falls
// under this: the reading resumes with half the bound as headroom, so a
// wake costs one command per 2 MiB taken, not one per chunk.
constexpr uint64_t kWakeUntakenStreamBytes = kMaxUntakenStreamBytes / 2;

// The bytes of one stream handed towards the consumer and not yet taken,
// and whether the exchange stopped reading for them. Shared (by
// shared_ptr) by the exchange and every chunk on its way, so that it
// outlives an exchange that ends while its last chunks still wait.
//
// The wake-up cannot be lost: the exchange's thread raises `stopped_`
// and then looks at the count again; the consumer lowers the count and
// then takes `stopped_` down. With sequentially consistent atomics one of
// the two sees the other's write: either the exchange sees the count
// fall and goes on reading, or the consumer sees the flag and wakes it.
// Whoever clears the flag decides: exactly one wake per stop that needs
// one.
class StreamLedger {
 public:
  // The exchange's thread: `n` more bytes handed over. True when it must
  // stop reading until the consumer wakes it (AsyncClient::ChunksTaken).
  bool HandedOver(uint64_t n) {
    if (untaken_.fetch_add(n) + n < kMaxUntakenStreamBytes) return false;
    stopped_.store(true);
    if (untaken_.load() >= kMaxUntakenStreamBytes) return true;
    // The consumer took some since. If it also cleared the flag, its wake
    // is on its way: stop until it comes. Otherwise go on reading.
    return !stopped_.exchange(false);
  }

  // The consumer's thread: it took `n` bytes. True once per stop, when
  // the exchange stopped for the bound and what is left fell under
  // kWakeUntakenStreamBytes: the caller must wake it then.
  bool Taken(uint64_t n) {
    if (untaken_.fetch_sub(n) - n >= kWakeUntakenStreamBytes) return false;
    return stopped_.load() && stopped_.exchange(false);
  }

  uint64_t untaken() const { return untaken_.load(); }

 private:
  std::atomic<uint64_t> untaken_{0};
  std::atomic<bool> stopped_{false};
};

class StreamFlow {
 public:
  void Pause() { paused_ = true; }
  void Resume() { paused_ = false; }
  // The ledger said stop / the consumer's wake came.
  void Hold() { held_ = true; }
  void Release() { held_ = false; }

  // Whether the transport may read more now. Only reading the response
  // is held back: connecting and sending the request go on, and the
  // pause takes hold once the response starts. The exchange's deadline
  // keeps running either way: a paused or held stream still times out.
  bool MayRead(bool receiving_response) const { return !((paused_ || held_) && receiving_response); }

 private:
  bool paused_ = false;
  bool held_ = false;
};

}  // namespace sipc
