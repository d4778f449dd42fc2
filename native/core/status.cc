#include "status.h"

#include <cerrno>
#include <cstring>

namespace sipc {

namespace {

struct ErrnoInfo {
  const char* name;
  const char* text;
};

// Our own texts: the C library's strerror() does not know the socket
// errors everywhere (msvcrt says "Unknown error" for ECONNREFUSED).
ErrnoInfo ErrnoLookup(int err) {
  switch (err) {
#define SIPC_ERRNO_CASE(e, text) \
  case e:                        \
    return {#e, text};
    SIPC_ERRNO_CASE(EPERM, "operation not permitted")
    SIPC_ERRNO_CASE(ENOENT, "no such file or directory")
    SIPC_ERRNO_CASE(EINTR, "interrupted system call")
    SIPC_ERRNO_CASE(EIO, "i/o error")
    SIPC_ERRNO_CASE(EBADF, "bad file descriptor")
    SIPC_ERRNO_CASE(EAGAIN, "resource temporarily unavailable")
    SIPC_ERRNO_CASE(ENOMEM, "not enough memory")
    SIPC_ERRNO_CASE(EACCES, "permission denied")
    SIPC_ERRNO_CASE(EFAULT, "bad address")
    SIPC_ERRNO_CASE(EBUSY, "resource busy")
    SIPC_ERRNO_CASE(EEXIST, "file already exists")
    SIPC_ERRNO_CASE(ENOTDIR, "not a directory")
    SIPC_ERRNO_CASE(EISDIR, "is a directory")
    SIPC_ERRNO_CASE(EINVAL, "invalid argument")
    SIPC_ERRNO_CASE(ENFILE, "file table overflow")
    SIPC_ERRNO_CASE(EMFILE, "too many open files")
    SIPC_ERRNO_CASE(ENOSPC, "no space left on device")
    SIPC_ERRNO_CASE(EROFS, "read-only file system")
    SIPC_ERRNO_CASE(EPIPE, "broken pipe")
    SIPC_ERRNO_CASE(ENAMETOOLONG, "name too long")
    SIPC_ERRNO_CASE(ENOSYS, "function not implemented")
    SIPC_ERRNO_CASE(ELOOP, "too many symbolic links encountered")
    SIPC_ERRNO_CASE(ENOTSOCK, "socket operation on non-socket")
    SIPC_ERRNO_CASE(EPROTOTYPE, "protocol wrong type for socket")
    SIPC_ERRNO_CASE(EADDRINUSE, "address already in use")
    SIPC_ERRNO_CASE(EADDRNOTAVAIL, "address not available")
    SIPC_ERRNO_CASE(ENETDOWN, "network is down")
    SIPC_ERRNO_CASE(ECONNABORTED, "software caused connection abort")
    SIPC_ERRNO_CASE(ECONNRESET, "connection reset by peer")
    SIPC_ERRNO_CASE(ENOBUFS, "no buffer space available")
    SIPC_ERRNO_CASE(ENOTCONN, "socket is not connected")
    SIPC_ERRNO_CASE(ETIMEDOUT, "connection timed out")
    SIPC_ERRNO_CASE(ECONNREFUSED, "connection refused")
    SIPC_ERRNO_CASE(ECANCELED, "operation canceled")
    SIPC_ERRNO_CASE(ENOTSUP, "operation not supported")
#undef SIPC_ERRNO_CASE
    default:
      return {"UNKNOWN", nullptr};
  }
}

// The texts name limits and checks in neutral words, never by an option
// of an API on top: the JS layer and the native CLI spell their options
// differently, and each names its own where it turns a status into words
// (docs/design.md#errors).
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
      return {"ERR_IPC_REQUEST_TOO_LARGE", "request exceeds the request size limit"};
    case LibCode::kRequestTimeout:
      return {"ERR_IPC_REQUEST_TIMEOUT", "client did not complete its request within the request time limit"};
    case LibCode::kTimeout:
      return {"ERR_IPC_TIMEOUT", "exchange did not complete within the exchange time limit"};
    case LibCode::kAborted:
      return {"ABORT_ERR", "The operation was aborted"};  // Node's AbortError wording
    case LibCode::kNotSocket:
      return {"ERR_IPC_NOT_A_SOCKET", "path exists and is not a socket"};
    case LibCode::kServerClosed:
      return {"ERR_IPC_SERVER_CLOSED", "server is closed"};
    case LibCode::kTooManyConnections:
      return {"ERR_IPC_TOO_MANY_CONNECTIONS", "connection refused: connection limit reached"};
    case LibCode::kPeerRefused:
      return {"ERR_IPC_PEER_REFUSED", "peer refused by the peer check"};
    case LibCode::kWriteStalled:
      return {"ERR_IPC_WRITE_STALLED", "client stopped reading its response"};
    case LibCode::kUnsafeFile:
      return {"ERR_IPC_UNSAFE_FILE", "not a regular file of this user; left as it is"};
    case LibCode::kBufferFull:
      return {"ERR_IPC_BUFFER_FULL", "incomplete requests hold the request buffer limit"};
    case LibCode::kResponseTooLarge:
      return {"ERR_IPC_RESPONSE_TOO_LARGE", "response exceeds the response size limit"};
    case LibCode::kServerIdentity:
      return {"ERR_IPC_SERVER_IDENTITY", "the server is not run by the user the identity check requires"};
  }
  return {"ERR_IPC_UNKNOWN", "unknown error"};
}

}  // namespace

const char* StatusCodeName(const Status& s) {
  if (s.ok()) return "OK";
  if (s.is_errno()) return ErrnoLookup(s.code).name;
  return LibCodeInfo(s.code).name;
}

std::string StatusMessage(const Status& s) {
  std::string text;
  if (s.is_errno()) {
    const char* known = ErrnoLookup(s.code).text;
    text = known != nullptr ? known : std::strerror(s.code);
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
