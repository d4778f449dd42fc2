// SocketExchange: the I/O of one client exchange over a Unix socket. The
// rules (connect retries, deadline, framing, reading the response, flow
// control, the outcome) are ClientExchange's (native/core/exchange.h);
// this only makes the system calls and reports what they brought.
//
// The same object serves the blocking client (driven by poll() on the
// calling thread) and the asynchronous client.
//
// Threads: an exchange is used by one thread at a time. The asynchronous
// client steps it first on the calling thread (connect, send); a small one
// may be finished there too (core/caller_side.h); otherwise it is handed,
// through a mutex, to the I/O thread, which owns it to the end.
#pragma once

#include <cstdint>
#include <string>

#include "../core/exchange.h"
#include "unix_address.h"

namespace sipc {

class SocketExchange : public ClientExchange {
 public:
  SocketExchange(std::string path, const ClientOptions& options, bool stream);
  ~SocketExchange() override;

  // Advances as far as possible without blocking. `revents` are the poll
  // events seen on fd() (0 when woken by a deadline or a command).
  void Step(int revents, int64_t now);

  int fd() const { return fd_; }
  // Changes whenever fd() is a new socket (a retried connect), so that a
  // poller registration of a closed descriptor is never reused by number.
  uint32_t fd_generation() const { return fd_generation_; }
  // poll() events to wait for on fd(), 0 for none (a paused stream too).
  short wanted_events() const;

  // Asynchronous client, kAdopt: the events the calling thread registered.
  uint32_t registered_by_caller = 0;

 private:
  void TryConnect(int64_t now);
  void FinishConnect(int revents, int64_t now);
  void ConnectFailed(int err, int64_t now);
  void Connected(int64_t now);
  void DoSend();
  void DoReceive();
  void CloseFd();

  int fd_ = -1;
  uint32_t fd_generation_ = 0;
  bool connecting_ = false;  // an EINPROGRESS connect on fd_
  UnixAddress address_;
  bool address_resolved_ = false;
};

}  // namespace sipc
