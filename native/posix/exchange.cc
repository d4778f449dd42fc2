#include "exchange.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "socket_util.h"

namespace sipc {

namespace {

// Receive buffer of the thread driving exchanges: large reads mean few
// system calls for big responses.
constexpr size_t kReadBufferSize = 256 * 1024;
// Reads per Step(): keeps one big response from starving the other
// exchanges of the async loop.
constexpr int kMaxReadsPerStep = 16;
// A stream's chunk is what one Step() read: at most this many reads
// (1 MiB), so that a paused stream holds little beyond its high-water mark.
constexpr int kMaxStreamReadsPerStep = 4;

uint8_t* ReadBuffer() {
  thread_local std::vector<uint8_t> buffer(kReadBufferSize);
  return buffer.data();
}

// The errno of a failed connect, in the terms of Git's retry rules.
ConnectFailure ClassifyConnectErrno(int err) {
  switch (err) {
    case ENOENT:
      return ConnectFailure::kNotFound;
    case ECONNREFUSED:
    case ETIMEDOUT:
      return ConnectFailure::kBusy;
    case EAGAIN:
      return ConnectFailure::kBacklogFull;
    default:
      return ConnectFailure::kOther;
  }
}

}  // namespace

Exchange::Exchange(std::string path, const ClientOptions& options, bool stream)
    : path_(std::move(path)), options_(options), stream_(stream), policy_(options, 0) {}

Exchange::~Exchange() { CloseFd(); }

void Exchange::CloseFd() {
  if (fd_ >= 0) {
    close(fd_);
    fd_ = -1;
  }
}

void Exchange::SetRequest(const uint8_t* data, size_t len) {
  request_.clear();
  pkt::AppendMessage(data, len, &request_);
  have_request_ = true;
}

void Exchange::SetFramedRequest(std::vector<uint8_t>&& framed) {
  request_ = std::move(framed);
  have_request_ = true;
}

void Exchange::SetBorrowedRequest(const uint8_t* data, size_t len) {
  borrowed_ = data;
  borrowed_len_ = len;
  borrowed_mode_ = true;
  have_request_ = true;
}

void Exchange::OwnRequest() {
  bool unsent = phase_ == Phase::kConnect || phase_ == Phase::kRetryWait || phase_ == Phase::kSend;
  if (!borrowed_mode_ || !unsent) return;
  // Framed as the borrowed bytes are framed on the fly, so `sent_` (an
  // offset into the framed request) stays right.
  pkt::AppendMessage(borrowed_, borrowed_len_, &request_);
  borrowed_ = nullptr;
  borrowed_len_ = 0;
  borrowed_mode_ = false;
}

short Exchange::wanted_events() const {
  switch (phase_) {
    case Phase::kConnect:
      return fd_ >= 0 ? POLLOUT : 0;  // EINPROGRESS
    case Phase::kSend:
      return POLLOUT;
    case Phase::kReceive:
      return POLLIN;
    default:
      return 0;
  }
}

int64_t Exchange::next_deadline() const {
  if (phase_ == Phase::kDone) return -1;
  int64_t deadline = -1;
  if (options_.timeout_ms >= 0 && start_ms_ >= 0) deadline = start_ms_ + options_.timeout_ms;
  if (phase_ == Phase::kRetryWait && (deadline < 0 || retry_at_ < deadline)) deadline = retry_at_;
  return deadline;
}

void Exchange::Fail(const Status& why) {
  if (phase_ != Phase::kDone) Finish(why);
}

void Exchange::Finish(const Status& status) {
  CloseFd();
  result_.status = status;
  if (!status.ok()) result_.address = path_;
  phase_ = Phase::kDone;
}

void Exchange::Step(int revents, int64_t now) {
  if (start_ms_ < 0) {
    start_ms_ = now;
    policy_ = ConnectPolicy(options_, now);
  }
  if (phase_ == Phase::kDone) return;
  if (options_.timeout_ms >= 0 && now >= start_ms_ + options_.timeout_ms) {
    FailTimeout();
    return;
  }
  switch (phase_) {
    case Phase::kRetryWait:
      if (now < retry_at_) return;
      phase_ = Phase::kConnect;
      TryConnect(now);
      break;
    case Phase::kConnect:
      if (fd_ >= 0) {
        // Completion of an EINPROGRESS connect.
        if (!(revents & (POLLOUT | POLLERR | POLLHUP))) return;
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
        if (err != 0) {
          ConnectFailed(err, now);
          return;
        }
        result_.connected = true;
        phase_ = have_request_ ? Phase::kSend : Phase::kIdle;
        if (phase_ == Phase::kSend) DoSend(now);
        return;
      }
      TryConnect(now);
      break;
    case Phase::kIdle:
      if (have_request_) {
        phase_ = Phase::kSend;
        DoSend(now);
      }
      break;
    case Phase::kSend:
      DoSend(now);
      break;
    case Phase::kReceive:
      DoReceive();
      break;
    case Phase::kDone:
      break;
  }
}

void Exchange::TryConnect(int64_t now) {
  if (!address_resolved_) {
    Status st = address_.Resolve(path_);
    if (!st.ok()) {
      result_.connect_state = ActiveState::kOtherError;
      Finish(st);
      return;
    }
    address_resolved_ = true;
  }
  fd_ = NewUnixSocket();
  fd_generation_++;
  if (fd_ < 0) {
    int err = errno;
    result_.connect_state = ActiveState::kOtherError;
    Finish(Status::FromErrno(err, "socket"));
    return;
  }
  int rc;
  do {
    rc = connect(fd_, address_.addr(), address_.len());
  } while (rc < 0 && errno == EINTR);
  if (rc == 0) {
    result_.connected = true;
    phase_ = have_request_ ? Phase::kSend : Phase::kIdle;
    if (phase_ == Phase::kSend) DoSend(now);
    return;
  }
  int err = errno;
  if (err == EINPROGRESS) return;  // wait for POLLOUT
  ConnectFailed(err, now);
}

void Exchange::ConnectFailed(int err, int64_t now) {
  CloseFd();
  ConnectDecision decision = policy_.OnFailure(ClassifyConnectErrno(err), now);
  switch (decision.action) {
    case ConnectDecision::Action::kRetry:
      retry_at_ = decision.retry_at_ms;
      phase_ = Phase::kRetryWait;
      return;
    case ConnectDecision::Action::kTimeout:
      FailTimeout();
      return;
    case ConnectDecision::Action::kGiveUp:
      result_.connect_state = decision.state;
      Finish(Status::FromErrno(err, "connect", path_));
      return;
  }
}

void Exchange::FailTimeout() {
  Finish(Status::Lib(LibCode::kTimeout, "after " + std::to_string(options_.timeout_ms) + " ms"));
}

void Exchange::DoSend(int64_t now) {
  (void)now;
  constexpr size_t kMaxSpans = kMaxSendSpans;
  for (;;) {
    // The framed request from `sent_` on: a borrowed payload is framed on
    // the fly, an owned request is already framed.
    pkt::Span spans[kMaxSpans];
    char headers[kMaxSpans / 2 + 1][pkt::kHeaderSize];
    size_t count;
    if (borrowed_mode_) {
      count = pkt::FramedSpans(borrowed_, borrowed_len_, sent_, spans, kMaxSpans, headers);
    } else {
      count = sent_ < request_.size() ? 1 : 0;
      spans[0] = pkt::Span{request_.data() + sent_, request_.size() - sent_};
    }
    if (count == 0) break;
    ssize_t n = SendSpans(fd_, spans, count, 0);
    if (n > 0) {
      sent_ += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EAGAIN) return;
    Finish(Status::FromErrno(n < 0 ? errno : EPIPE, "write", path_));
    return;
  }
  borrowed_ = nullptr;
  std::vector<uint8_t>().swap(request_);
  // No read now: the response cannot be there yet, and the thread that
  // sent may be the JS thread, which only makes calls that do something.
  // The driver waits for POLLIN.
  phase_ = Phase::kReceive;
}

void Exchange::DoReceive() {
  uint8_t* buffer = ReadBuffer();
  int max_reads = stream_ ? kMaxStreamReadsPerStep : kMaxReadsPerStep;
  for (int i = 0; i < max_reads; i++) {
    ssize_t n = recv(fd_, buffer, kReadBufferSize, 0);
    if (n > 0) {
      reader_.Feed(buffer, static_cast<size_t>(n), &response_);
      switch (reader_.state()) {
        case pkt::Reader::State::kNeedMore:
          continue;
        case pkt::Reader::State::kDone:
          Finish(Status::Ok());
          return;
        case pkt::Reader::State::kProtocolError:
        case pkt::Reader::State::kTooLarge:
          Finish(Status::Lib(LibCode::kProtocol, std::string(reader_.error_text()) + " in response"));
          return;
      }
    }
    if (n == 0) {
      Finish(Status::Lib(LibCode::kIncompleteResponse, "server closed the connection before the flush packet"));
      return;
    }
    int err = errno;
    if (err == EINTR) continue;
    if (err == EAGAIN) return;
    if (err == ECONNRESET) {
      Finish(Status::Lib(LibCode::kIncompleteResponse, "connection reset by the server"));
      return;
    }
    Finish(Status::FromErrno(err, "read", path_));
    return;
  }
}

}  // namespace sipc
