// Flow control of one exchange's response
// (docs/design.md#stream-backpressure): AsyncClient::Pause() and Resume() of a stream whose
// consumer fell behind, and what they allow the transport to do. The
// POSIX and Windows clients keep one per exchange, owned by the thread
// that drives the exchange (the I/O thread; Pause/Resume reach it as
// commands).
#pragma once

namespace sipc {

class StreamFlow {
 public:
  void Pause() { paused_ = true; }
  void Resume() { paused_ = false; }

  // Whether the transport may read more now. Only reading the response
  // is held back: connecting and sending the request go on, and the
  // pause takes hold once the response starts. The exchange's deadline
  // keeps running either way: a paused stream still times out.
  bool MayRead(bool receiving_response) const { return !(paused_ && receiving_response); }

 private:
  bool paused_ = false;
};

}  // namespace sipc
