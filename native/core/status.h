// Status: the one error type of the native core.
//
// A status carries either an errno value (POSIX numbering; the Windows
// transport translates Win32 errors into the same numbers) or one of the
// library's own codes, plus the system call that failed and a detail text.
// The N-API layer turns it into a JS Error shaped like Node's `net` errors.
#pragma once

#include <string>

namespace sipc {

// Library-specific conditions. Kept far above any errno value.
enum class LibCode : int {
  kProtocol = 100001,            // malformed pkt-line (0003, non-hex, oversize)
  kIncompleteResponse = 100002,  // stream ended before the flush packet
  kIncompleteRequest = 100003,   // client hung up mid-request
  kRequestTooLarge = 100004,     // request over maxRequestBytes
  kRequestTimeout = 100005,      // request not complete within requestTimeoutMs
  kTimeout = 100006,             // client: whole exchange over timeoutMs
  kAborted = 100007,             // client: cancelled by the caller
  kNotSocket = 100008,           // something that is not a socket is at the path
  kServerClosed = 100009,        // the server stopped before the conversation ended
  kTooManyConnections = 100010,  // over maxConnections
  kPeerRefused = 100011,         // rejected by allowPeer
  kWriteStalled = 100012,        // client stopped reading its response
  kUnsafeFile = 100013,          // a file beside the socket is not a regular file of ours
  kBufferFull = 100014,          // incomplete requests hold maxBufferedRequestBytes
  kResponseTooLarge = 100015,    // client: response over maxResponseBytes
  kServerIdentity = 100016,      // client: the server is not the user serverUid requires
};

struct Status {
  int code = 0;                   // 0 = ok; errno (> 0) or LibCode
  const char* syscall = nullptr;  // static string, or nullptr
  std::string detail;             // human-readable context (path, limit)

  bool ok() const { return code == 0; }
  bool is(LibCode c) const { return code == static_cast<int>(c); }
  bool is_errno() const { return code > 0 && code < 100000; }

  static Status Ok() { return Status{}; }
  static Status FromErrno(int err, const char* syscall, std::string detail = {}) {
    return Status{err, syscall, std::move(detail)};
  }
  static Status Lib(LibCode c, std::string detail = {}) {
    return Status{static_cast<int>(c), nullptr, std::move(detail)};
  }
};

// "ENOENT", "ERR_IPC_PROTOCOL", ... ("UNKNOWN" for unnamed errnos).
const char* StatusCodeName(const Status& s);

// One-line description: strerror() text or the library text, plus detail.
std::string StatusMessage(const Status& s);

}  // namespace sipc
