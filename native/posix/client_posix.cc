// The blocking client: a SocketExchange driven by poll() on the calling
// thread.
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

#include "../core/clock.h"
#include "socket_exchange.h"
#include "socket_util.h"

namespace sipc {

namespace {

// `sink` (streaming exchanges only) takes the payload read by each step.
void RunToCompletion(SocketExchange* exchange, ResponseSink* sink) {
  auto step = [exchange, sink](int revents) {
    exchange->Step(revents, NowMs());
    ByteBuffer& got = exchange->response();
    if (sink != nullptr && !got.empty()) {
      sink->OnResponseBytes(got.data(), got.size());
      got.Clear();
    }
  };
  step(0);
  while (!exchange->done()) {
    int64_t deadline = exchange->next_deadline();
    int timeout = -1;
    if (deadline >= 0) {
      int64_t left = deadline - NowMs();
      timeout = left < 0 ? 0 : static_cast<int>(left);
    }
    short events = exchange->wanted_events();
    int revents = 0;
    if (events != 0) {
      pollfd pfd{exchange->fd(), events, 0};
      int rc = poll(&pfd, 1, timeout);
      if (rc < 0 && errno != EINTR) {
        exchange->Fail(Status::FromErrno(errno, "poll"));
        return;
      }
      if (rc > 0) revents = pfd.revents;
    } else if (timeout > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(timeout));
    }
    step(revents);
  }
}

}  // namespace

ClientResult SendCommandSync(const std::string& path, const uint8_t* request, size_t request_len,
                             const ClientOptions& options, ByteBuffer* response) {
  SocketExchange exchange(path, options, false);
  // The caller's bytes outlive this call: sent from where they are.
  exchange.SetRequest(ClientRequest::Borrowed(request, request_len));
  RunToCompletion(&exchange, nullptr);
  *response = std::move(exchange.response());
  return exchange.result();
}

ClientResult SendCommandSyncStreaming(const std::string& path, const uint8_t* request, size_t request_len,
                                      const ClientOptions& options, ResponseSink* sink) {
  SocketExchange exchange(path, options, true);
  exchange.SetRequest(ClientRequest::Borrowed(request, request_len));  // alive for the whole call
  RunToCompletion(&exchange, sink);
  return exchange.result();
}

ActiveState GetActiveState(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) < 0) {
    return (errno == ENOENT || errno == ENOTDIR) ? ActiveState::kNotListening : ActiveState::kInvalidPath;
  }
  if (!S_ISSOCK(st.st_mode)) return ActiveState::kInvalidPath;

  // One attempt, no waiting; hang up without sending anything (the server
  // drops such a probe silently).
  UnixAddress address;
  if (!address.Resolve(path).ok()) return ActiveState::kOtherError;
  int err = ConnectOnce(address, static_cast<int>(ClientOptions{}.connect_timeout_ms));
  switch (err) {
    case 0:
    case EAGAIN:  // backlog full: a live server
      return ActiveState::kListening;
    case ENOENT:
      return ActiveState::kPathNotFound;
    case ECONNREFUSED:
    case ETIMEDOUT:
      return ActiveState::kNotListening;
    default:
      return ActiveState::kOtherError;
  }
}

}  // namespace sipc
