#include "status.h"

#include <cerrno>
#include <cstring>

namespace sipc {

namespace {

const char* ErrnoName(int err) {
  switch (err) {
#define SIPC_ERRNO_CASE(e) \
  case e:                  \
    return #e;
    SIPC_ERRNO_CASE(EPERM)
    SIPC_ERRNO_CASE(ENOENT)
    SIPC_ERRNO_CASE(EINTR)
    SIPC_ERRNO_CASE(EIO)
    SIPC_ERRNO_CASE(EBADF)
    SIPC_ERRNO_CASE(EAGAIN)
    SIPC_ERRNO_CASE(ENOMEM)
    SIPC_ERRNO_CASE(EACCES)
    SIPC_ERRNO_CASE(EFAULT)
    SIPC_ERRNO_CASE(EBUSY)
    SIPC_ERRNO_CASE(EEXIST)
    SIPC_ERRNO_CASE(ENOTDIR)
    SIPC_ERRNO_CASE(EISDIR)
    SIPC_ERRNO_CASE(EINVAL)
    SIPC_ERRNO_CASE(ENFILE)
    SIPC_ERRNO_CASE(EMFILE)
    SIPC_ERRNO_CASE(ENOSPC)
    SIPC_ERRNO_CASE(EROFS)
    SIPC_ERRNO_CASE(EPIPE)
    SIPC_ERRNO_CASE(ENAMETOOLONG)
    SIPC_ERRNO_CASE(ENOSYS)
    SIPC_ERRNO_CASE(ELOOP)
    SIPC_ERRNO_CASE(ENOTSOCK)
    SIPC_ERRNO_CASE(EPROTOTYPE)
    SIPC_ERRNO_CASE(EADDRINUSE)
    SIPC_ERRNO_CASE(EADDRNOTAVAIL)
    SIPC_ERRNO_CASE(ENETDOWN)
    SIPC_ERRNO_CASE(ECONNABORTED)
    SIPC_ERRNO_CASE(ECONNRESET)
    SIPC_ERRNO_CASE(ENOBUFS)
    SIPC_ERRNO_CASE(ENOTCONN)
    SIPC_ERRNO_CASE(ETIMEDOUT)
    SIPC_ERRNO_CASE(ECONNREFUSED)
    SIPC_ERRNO_CASE(ECANCELED)
    SIPC_ERRNO_CASE(ENOTSUP)
#undef SIPC_ERRNO_CASE
    default:
      return "UNKNOWN";
  }
}

struct LibInfo {
  const char* name;
  const char* text;
};

LibInfo LibCodeInfo(int code) {
  switch (static_cast<LibCode>(code)) {
    case LibCode::kProtocol:
      return {"ERR_IPC_PROTOCOL", "malformed pkt-line"};
    case LibCode::kIncompleteResponse:
      return {"ERR_IPC_INCOMPLETE_RESPONSE", "connection closed before the end of the response"};
    case LibCode::kIncompleteRequest:
      return {"ERR_IPC_INCOMPLETE_REQUEST", "client hung up before the end of its request"};
    case LibCode::kRequestTooLarge:
      return {"ERR_IPC_REQUEST_TOO_LARGE", "request exceeds maxRequestBytes"};
    case LibCode::kRequestTimeout:
      return {"ERR_IPC_REQUEST_TIMEOUT", "client did not complete its request within requestTimeoutMs"};
    case LibCode::kTimeout:
      return {"ERR_IPC_TIMEOUT", "exchange did not complete within timeoutMs"};
    case LibCode::kAborted:
      return {"ABORT_ERR", "the operation was aborted"};
    case LibCode::kNotSocket:
      return {"ERR_IPC_NOT_A_SOCKET", "path exists and is not a socket"};
    case LibCode::kServerClosed:
      return {"ERR_IPC_SERVER_CLOSED", "server is closed"};
    case LibCode::kTooManyConnections:
      return {"ERR_IPC_TOO_MANY_CONNECTIONS", "connection refused: maxConnections reached"};
    case LibCode::kPeerRefused:
      return {"ERR_IPC_PEER_REFUSED", "peer refused by allowPeer"};
    case LibCode::kWriteStalled:
      return {"ERR_IPC_WRITE_STALLED", "client stopped reading its response"};
  }
  return {"ERR_IPC_UNKNOWN", "unknown error"};
}

}  // namespace

const char* StatusCodeName(const Status& s) {
  if (s.ok()) return "OK";
  if (s.is_errno()) return ErrnoName(s.code);
  return LibCodeInfo(s.code).name;
}

std::string StatusMessage(const Status& s) {
  std::string text;
  if (s.is_errno()) {
    text = std::strerror(s.code);
  } else if (!s.ok()) {
    text = LibCodeInfo(s.code).text;
  }
  if (!s.detail.empty()) {
    text += ": ";
    text += s.detail;
  }
  return text;
}

}  // namespace sipc
