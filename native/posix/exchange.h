// Exchange: one client conversation (connect with Git's retry rules, send
// the request, read the response) as a non-blocking state machine.
//
// The same machine serves the synchronous client (driven by poll() on the
// calling thread) and the asynchronous client, so both follow exactly the
// same rules. The connect-retry decisions are ConnectPolicy's
// (native/core/connect_policy.h).
//
// Threads: an Exchange is used by one thread at a time. The asynchronous
// client steps it first on the calling thread (connect, send) and then
// hands it, through a mutex, to its I/O thread, which owns it to the end.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "../core/client.h"
#include "../core/connect_policy.h"
#include "../core/pkt_line.h"
#include "unix_address.h"

namespace sipc {

class Exchange {
 public:
  // Without a request (none of the Set*Request calls before the first
  // Step) the machine stops after connecting (phase kIdle) until one is
  // set. `stream`: the caller takes response() after each Step.
  Exchange(std::string path, const ClientOptions& options, bool stream);
  ~Exchange();
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  enum class Phase { kConnect, kRetryWait, kIdle, kSend, kReceive, kDone };

  // `data` is raw; it is framed here (a copy).
  void SetRequest(const uint8_t* data, size_t len);
  // `framed` is already pkt-line framed.
  void SetFramedRequest(std::vector<uint8_t>&& framed);
  // Sends `data` framed on the fly, without a copy. The caller keeps the
  // bytes alive and unchanged until the exchange is done.
  void SetBorrowedRequest(const uint8_t* data, size_t len);
  // Copies a borrowed request that is not all sent yet into the exchange's
  // own memory, so that the caller's bytes may go; no-op otherwise.
  void OwnRequest();

  // Advances as far as possible without blocking. `revents` are the poll
  // events seen on fd() (0 when woken by a deadline).
  void Step(int revents, int64_t now);

  // Ends the exchange with `why` unless it is already done.
  void Fail(const Status& why);

  Phase phase() const { return phase_; }
  bool done() const { return phase_ == Phase::kDone; }
  int fd() const { return fd_; }
  // Changes whenever fd() is a new socket (a retried connect), so that a
  // poller registration of a closed descriptor is never reused by number.
  uint32_t fd_generation() const { return fd_generation_; }
  // poll() events to wait for on fd(), 0 for none.
  short wanted_events() const;
  // When Step() must run even without I/O (retry or timeout); -1 if never.
  int64_t next_deadline() const;

  const ClientResult& result() const { return result_; }
  // Response payload received so far; streaming callers take it after each
  // Step().
  ByteBuffer& response() { return response_; }
  bool stream() const { return stream_; }

 private:
  void TryConnect(int64_t now);
  void ConnectFailed(int err, int64_t now);
  void FailTimeout();
  void DoSend(int64_t now);
  void DoReceive();
  void Finish(const Status& status);
  void CloseFd();

  std::string path_;
  ClientOptions options_;
  bool stream_;
  Phase phase_ = Phase::kConnect;
  int fd_ = -1;
  uint32_t fd_generation_ = 0;
  bool have_request_ = false;
  UnixAddress address_;
  bool address_resolved_ = false;
  int64_t start_ms_ = -1;
  ConnectPolicy policy_;  // re-created at the first Step(), with its time
  int64_t retry_at_ = 0;
  std::vector<uint8_t> request_;
  const uint8_t* borrowed_ = nullptr;  // with borrowed_mode_
  size_t borrowed_len_ = 0;
  bool borrowed_mode_ = false;
  size_t sent_ = 0;
  pkt::Reader reader_;
  ByteBuffer response_;
  ClientResult result_;
};

}  // namespace sipc
