// The simple-ipc server as the rest of the addon sees it (SPEC section 3).
//
// A platform transport (posix/server_posix.cc, win/server_win.cc)
// implements Server. It owns every thread and descriptor; the application
// (the N-API layer) sees complete requests through ServerDelegate and
// answers with Write/End/Abort, from any thread, without blocking.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "byte_buffer.h"
#include "status.h"

namespace sipc {

using ConnId = uint64_t;

struct PeerInfo {
  int64_t pid = -1;  // -1 when the platform cannot tell
  int64_t uid = -1;
  int64_t gid = -1;
  std::string sid;   // Windows: the client's user SID (string form)
};

enum class PipeAccess { kCurrentUser, kEveryone, kSddl };

struct ServerOptions {
  std::string path;
  int threads = 8;                        // worker threads, at least 1
  size_t max_request_bytes = 64u << 20;   // SIZE_MAX: unlimited
  uint32_t request_timeout_ms = 30000;    // 0: no limit
  uint32_t max_connections = 1024;        // open + queued connections
  int socket_mode = -1;                   // POSIX: chmod before listen; -1: umask
  PipeAccess pipe_access = PipeAccess::kCurrentUser;  // Windows only
  std::string sddl;                       // Windows, with kSddl
  bool check_peer = false;                // ask the delegate before reading
  // POSIX: serve this inherited listening socket instead of creating one
  // at `path` (socket activation); -1: create it. See docs/design.md.
  int listen_fd = -1;
  // POSIX: take the path over from a live server (the `replace` option):
  // no live-server probe; bind under a temporary name, then rename it over
  // the path. See docs/design.md.
  bool take_over = false;
};

enum class StopReason { kClosed, kQuit, kStolen, kError };

// Called on server threads. Implementations must not block for long and
// must not call back into the Server from inside these calls, except
// through the non-blocking Write/End/Abort/AllowPeer entry points.
class ServerDelegate {
 public:
  virtual ~ServerDelegate() = default;
  // A complete request. The conversation stays open until End/Abort.
  virtual void OnRequest(ConnId id, ByteBuffer&& request, const PeerInfo& peer) = 0;
  // Only with ServerOptions::check_peer: a new connection waits, unread,
  // until the application answers with Server::AllowPeer.
  virtual void OnPeerCheck(ConnId id, const PeerInfo& peer) = 0;
  // Writes carrying `token` reached the kernel.
  virtual void OnWritten(ConnId id, const std::vector<uint64_t>& tokens) = 0;
  // Borrowed writes (Server::WriteBorrowed/EndBorrowed) dropped unsent;
  // their memory is free again.
  virtual void OnReleased(ConnId id, const std::vector<uint64_t>& tokens) {
    (void)id;
    (void)tokens;
  }
  // A conversation handed to OnRequest ended without End(): the client
  // left, a write failed, or the server was forced to stop. Later calls
  // for `id` are ignored.
  virtual void OnConversationLost(ConnId id, const Status& why) = 0;
  // A client was dropped before its request reached the application
  // (protocol error, over the size limit, too slow, too many connections).
  virtual void OnClientError(const Status& why, const PeerInfo& peer) = 0;
  // The last call. All threads but the caller have ended; the caller is
  // the server's own thread, which ends right after (Join it).
  virtual void OnStopped(StopReason reason, const Status& error) = 0;
};

class Server {
 public:
  virtual ~Server() = default;

  // Sends `data` as data packets. `token` (non-zero) is reported through
  // OnWritten once the bytes reached the kernel. Any thread.
  virtual void Write(ConnId id, const uint8_t* data, size_t len, uint64_t token) = 0;
  // Sends `data` (may be empty), then the flush, then closes. With
  // `quit`, the server then shuts down (SPEC 3, Quit). Any thread.
  virtual void End(ConnId id, const uint8_t* data, size_t len, bool quit) = 0;
  // Like Write/End, but the bytes are sent from the caller's memory, with
  // no copy. Returns false when nothing was borrowed (the conversation is
  // over, or the transport copied instead). On true, `token` (non-zero) is
  // reported exactly once, by OnWritten once sent or by OnReleased if
  // dropped; until then the memory must stay valid and unchanged.
  virtual bool WriteBorrowed(ConnId id, const uint8_t* data, size_t len, uint64_t token) {
    Write(id, data, len, token);
    return false;
  }
  virtual bool EndBorrowed(ConnId id, const uint8_t* data, size_t len, bool quit, uint64_t token) {
    (void)token;
    End(id, data, len, quit);
    return false;
  }
  // Closes without the flush: the client sees an incomplete response.
  virtual void Abort(ConnId id) = 0;
  // Answer to OnPeerCheck.
  virtual void AllowPeer(ConnId id, bool allowed) = 0;
  // Graceful stop (SPEC 3, Stopping): conversations already handed to the
  // application may finish for up to `grace_ms`, then they are dropped.
  // OnStopped follows. Any thread; idempotent.
  virtual void Stop(uint32_t grace_ms) = 0;
  // Waits for the server thread to end. Call after OnStopped, or after
  // Stop(0) during teardown.
  virtual void Join() = 0;
};

// Starts a server: lock, probe for a live server, bind, listen, threads.
// Returns EADDRINUSE when a live server owns the path. Blocking (up to
// about 100 ms for the lock file); call off the JS thread.
Status StartServer(const ServerOptions& options, ServerDelegate* delegate,
                   std::unique_ptr<Server>* out);

}  // namespace sipc
