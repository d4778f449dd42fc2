#include "socket_exchange.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

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

SocketExchange::SocketExchange(std::string path, const ClientOptions& options, bool stream)
    : ClientExchange(std::move(path), options, stream) {}

SocketExchange::~SocketExchange() { CloseFd(); }

void SocketExchange::CloseFd() {
  if (fd_ >= 0) {
    close(fd_);
    fd_ = -1;
  }
  connecting_ = false;
}

short SocketExchange::wanted_events() const {
  if (fd_ < 0) return 0;
  switch (phase()) {
    case Phase::kConnect:
      return connecting_ ? POLLOUT : 0;
    case Phase::kSend:
      return POLLOUT;
    case Phase::kReceive:
      return MayRead() ? POLLIN : 0;
    default:
      return 0;
  }
}

void SocketExchange::Step(int revents, int64_t now) {
  Begin(now);
  if (Expire(now)) {
    CloseFd();
    return;
  }
  // One step per phase: a request just sent is not read at once (the
  // response cannot be there yet, and the caller may be the JS thread,
  // which only makes calls that do something).
  switch (phase()) {
    case Phase::kRetryWait:
      if (RetryDue(now)) TryConnect(now);
      break;
    case Phase::kConnect:
      if (connecting_) {
        FinishConnect(revents, now);
      } else {
        TryConnect(now);
      }
      break;
    case Phase::kSend:
      DoSend();
      break;
    case Phase::kReceive:
      if (MayRead()) DoReceive();
      break;
    case Phase::kIdle:
    case Phase::kDone:
      break;
  }
  if (done()) CloseFd();
}

void SocketExchange::TryConnect(int64_t now) {
  if (!address_resolved_) {
    Status st = address_.Resolve(path());
    if (!st.ok()) {
      OnConnectImpossible(ActiveState::kOtherError, st);
      return;
    }
    address_resolved_ = true;
  }
  fd_ = NewUnixSocket();
  fd_generation_++;
  if (fd_ < 0) {
    OnConnectImpossible(ActiveState::kOtherError, Status::FromErrno(errno, "socket"));
    return;
  }
  int rc;
  do {
    rc = connect(fd_, address_.addr(), address_.len());
  } while (rc < 0 && errno == EINTR);
  if (rc == 0) {
    Connected(now);
    return;
  }
  int err = errno;
  if (err == EINPROGRESS) {
    connecting_ = true;  // wait for POLLOUT
    return;
  }
  ConnectFailed(err, now);
}

// Completion of an EINPROGRESS connect.
void SocketExchange::FinishConnect(int revents, int64_t now) {
  if (!(revents & (POLLOUT | POLLERR | POLLHUP))) return;
  connecting_ = false;
  int err = 0;
  socklen_t len = sizeof(err);
  if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
  if (err != 0) {
    ConnectFailed(err, now);
    return;
  }
  Connected(now);
}

void SocketExchange::ConnectFailed(int err, int64_t now) {
  CloseFd();
  OnConnectFailed(ClassifyConnectErrno(err), Status::FromErrno(err, "connect", path()), now);
}

void SocketExchange::Connected(int64_t now) {
  (void)now;
  Status identity;
  if (options().server_identity != ServerIdentity::kAny) {
    // serverUid: the credentials the kernel recorded when the server
    // called listen(), before a byte of the request goes out.
    identity = CheckServerUid(options(), path(), GetPeerInfo(fd_).uid, static_cast<int64_t>(geteuid()));
  }
  OnConnected(identity);
  if (phase() == Phase::kSend) DoSend();
  if (done()) CloseFd();
}

void SocketExchange::DoSend() {
  constexpr size_t kMaxSpans = kMaxSendSpans;
  while (phase() == Phase::kSend) {
    pkt::Span spans[kMaxSpans];
    char headers[kMaxSpans / 2 + 1][pkt::kHeaderSize];
    size_t count = ClientExchange::SendSpans(spans, kMaxSpans, headers);
    ssize_t n = ::sipc::SendSpans(fd_, spans, count, 0);
    if (n > 0) {
      OnSent(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EAGAIN) return;
    Fail(Status::FromErrno(n < 0 ? errno : EPIPE, "write", path()));
    return;
  }
}

void SocketExchange::DoReceive() {
  uint8_t* buffer = ReadBuffer();
  int max_reads = stream() ? kMaxStreamReadsPerStep : kMaxReadsPerStep;
  for (int i = 0; i < max_reads && phase() == Phase::kReceive; i++) {
    ssize_t n = recv(fd_, buffer, kReadBufferSize, 0);
    if (n > 0) {
      OnReceived(buffer, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) {
      OnServerClosed();
      return;
    }
    int err = errno;
    if (err == EINTR) continue;
    if (err == EAGAIN) return;
    if (err == ECONNRESET) {
      OnServerReset();
      return;
    }
    Fail(Status::FromErrno(err, "read", path()));
    return;
  }
}

}  // namespace sipc
