// EventQueue: hands events from native threads to the JS thread in
// batches. Producers append under a mutex; only the producer that finds
// the queue empty pokes the thread-safe function, and the JS thread
// drains everything queued by then in one callback. That keeps the cost
// per event to a lock and a vector append when the JS thread is busy.
//
// The poke happens under the mutex so that once Close() has returned no
// producer can still be about to touch the thread-safe function, which
// environment teardown is about to release.
#pragma once

#include <napi.h>

#include <mutex>
#include <utility>
#include <vector>

namespace sipc {

template <typename Event>
class EventQueue {
 public:
  // Any thread. Returns false once the queue is closed (events dropped).
  template <typename Poke>
  bool Push(Event&& event, Poke&& poke) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return false;
    bool first = events_.empty();
    events_.push_back(std::move(event));
    if (first) poke();
    return true;
  }

  // JS thread: puts back events a drain could not deliver, ahead of any
  // queued since, and asks for another drain.
  template <typename Poke>
  void PutBack(std::vector<Event>&& rest, Poke&& poke) {
    if (rest.empty()) return;
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return;
    for (Event& e : events_) rest.push_back(std::move(e));
    events_.swap(rest);
    poke();
  }

  // JS thread: takes all queued events.
  void TakeAll(std::vector<Event>* out) {
    out->clear();
    std::lock_guard<std::mutex> lock(mutex_);
    out->swap(events_);
  }

  void Close() {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
    events_.clear();
  }

 private:
  std::mutex mutex_;
  std::vector<Event> events_;
  bool closed_ = false;
};

}  // namespace sipc
