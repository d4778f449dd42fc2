// The simple-ipc server as the rest of the addon sees it
// (docs/protocol.md#the-server, docs/design.md#threads).
//
// A platform transport (posix/server_posix.cc, win/server_win.cc)
// implements Server. It owns every thread and descriptor; the application
// (the N-API layer) sees complete requests through ServerDelegate and
// answers with Reply/Abort from any thread. Reply writes on the calling
// thread when the kernel takes the bytes at once (one non-blocking send)
// and leaves the rest to the transport's own threads; it never blocks.
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
  // POSIX: not read from the socket yet (most handlers never look);
  // Server::PeerOf reads it while the connection is open.
  bool deferred = false;
};

enum class PipeAccess { kCurrentUser, kEveryone, kSddl };

// Every field is set by the caller: the defaults users see live in one
// place, lib/options.ts (the values below only make a bare struct safe).
struct ServerOptions {
  std::string path;
  int threads = 1;                        // serving threads, at least 1
  size_t max_request_bytes = SIZE_MAX;    // SIZE_MAX: unlimited
  size_t max_buffered_request_bytes = SIZE_MAX;  // all incomplete requests together; SIZE_MAX: unlimited
  uint32_t request_timeout_ms = 0;        // 0: no limit
  uint32_t max_connections = 1024;        // open connections
  uint32_t quit_grace_ms = 0;             // how long a quit lets conversations finish
  uint32_t idle_timeout_ms = 0;           // stop after this long without connections; 0: never
  int socket_mode = -1;                   // POSIX: set before anyone can connect; -1: umask
  PipeAccess pipe_access = PipeAccess::kCurrentUser;  // Windows only
  std::string sddl;                       // Windows, with kSddl
  bool check_peer = false;                // ask the delegate before reading
  // POSIX: serve this inherited listening socket instead of creating one
  // at `path` (socket activation); -1: create it. docs/design.md#inherited-listeners
  int listen_fd = -1;
  // POSIX: take the path over from a live server (the `replace` option):
  // no live-server probe; bind in a private directory beside the path,
  // then rename it over the path. docs/design.md#replace
  bool take_over = false;
};

// kListenerFailed: accepting on the listening socket failed for good
// (EBADF, EINVAL, ENOTSOCK: it was closed or shut down under the server).
enum class StopReason { kClosed, kQuit, kStolen, kIdle, kListenerFailed };

// Counters for IpcServer.stats(). Connection counts are a snapshot; the
// others count since the start.
struct ServerStats {
  uint64_t connections_reading = 0;    // sending their request
  uint64_t connections_peer_check = 0; // waiting for allowPeer
  uint64_t connections_handling = 0;   // being answered
  uint64_t requests = 0;               // responses completed (flush sent)
  uint64_t dropped_protocol = 0;       // malformed or truncated requests
  uint64_t dropped_too_large = 0;
  uint64_t dropped_timeout = 0;        // request or response stalled
  uint64_t dropped_too_many = 0;       // over maxConnections
  uint64_t bytes_in = 0;               // bytes read from clients
  uint64_t bytes_out = 0;              // bytes written to clients
  uint64_t peer_lookups = 0;           // POSIX: credentials read from a socket (not shown to users)
};

// What Server::Reply did with a chunk. The values are the addon's
// (native/addon/server_wrap.cc passes them to lib/native.ts).
enum class ReplyOutcome {
  kSent = 0,      // the kernel took all of it at once; nothing is reported later
  kQueued = 1,    // copied and queued; OnWritten(token) follows once it is sent
  kBorrowed = 2,  // queued from the caller's memory: keep it alive and unchanged
                  // until `token` comes back through OnWritten or OnReleased
  kGone = 3,      // the conversation is over (client left, aborted): nothing sent
  kBuffered = 4,  // copied and queued within the write mark
                  // (Conversation::kWriteMark): as good as sent for the
                  // caller; its token is dropped, nothing is reported later
};

struct ReplyChunk {
  const uint8_t* data = nullptr;
  size_t len = 0;
  bool end = false;         // the last chunk: the flush follows, then close
  bool quit = false;        // with `end`: then stop the server (Git's quit)
  bool may_borrow = false;  // the caller can keep `data` alive (kBorrowed)
  uint64_t token = 0;       // non-zero: reported by OnWritten/OnReleased
};

// A request accepted and read on the application's thread
// (Server::AcceptOnCaller): the same as an OnRequest.
struct CallerRequest {
  ConnId id = 0;
  ByteBuffer request;
  PeerInfo peer;
};

// What the application's thread does with its copy of the listener
// (Server::CallerListener) after a turn of its loop.
enum class ListenerTurn {
  kWatch,  // it is the caller's: watch it for connections to accept
  kPause,  // the serving threads have it for now: do not watch it
  kLeave,  // the server stops: stop watching and close the copy
};

// Called on server threads, and from Reply on the thread that called it.
// Implementations must not block for long and must not call back into the
// Server from inside these calls, except through the non-blocking
// Reply/Abort/AllowPeer entry points.
class ServerDelegate {
 public:
  virtual ~ServerDelegate() = default;
  // A complete request. The conversation stays open until Reply(end) or
  // Abort.
  virtual void OnRequest(ConnId id, ByteBuffer&& request, const PeerInfo& peer) = 0;
  // Only with ServerOptions::check_peer: a new connection waits, unread,
  // until the application answers with Server::AllowPeer.
  virtual void OnPeerCheck(ConnId id, const PeerInfo& peer) = 0;
  // Queued writes carrying `token` reached the kernel.
  virtual void OnWritten(ConnId id, const std::vector<uint64_t>& tokens) = 0;
  // Borrowed replies (ReplyOutcome::kBorrowed) dropped unsent;
  // their memory is free again.
  virtual void OnReleased(ConnId id, const std::vector<uint64_t>& tokens) {
    (void)id;
    (void)tokens;
  }
  // A conversation handed to OnRequest ended without its last Reply: the client
  // left, a write failed, or the server was forced to stop. Later calls
  // for `id` are ignored.
  virtual void OnConversationLost(ConnId id, const Status& why) = 0;
  // A client was dropped before its request reached the application
  // (protocol error, over the size limit, too slow, too many connections).
  virtual void OnClientError(const Status& why, const PeerInfo& peer) = 0;
  // The last call. All threads but the caller have ended; the caller is
  // the server's own thread, which ends right after (Join it).
  virtual void OnStopped(StopReason reason) = 0;
};

class Server {
 public:
  virtual ~Server() = default;

  // Sends a chunk of the response (data packets; with `end` also the
  // flush, then closes). Writes on the calling thread when nothing is
  // queued and the kernel takes the bytes at once; queues the rest for the
  // transport's threads. Any thread; never blocks.
  virtual ReplyOutcome Reply(ConnId id, const ReplyChunk& chunk) = 0;
  // The application still works on `id` after its first turn: watch the
  // connection for a client that leaves (OnConversationLost). Transports
  // that always watch ignore it.
  virtual void Watch(ConnId id) { (void)id; }
  // The counters of ServerStats, with the same meaning on every transport.
  // Any thread.
  virtual ServerStats Stats() = 0;

  // Closes without the flush: the client sees an incomplete response.
  virtual void Abort(ConnId id) = 0;
  // The credentials of a connection whose PeerInfo came `deferred`: read
  // now, once. False when the connection is closed (answered, aborted,
  // or dropped after its client left). Any thread; one non-blocking
  // system call at most.
  virtual bool PeerOf(ConnId id, PeerInfo* peer) {
    (void)id;
    (void)peer;
    return false;
  }
  // Answer to OnPeerCheck.
  virtual void AllowPeer(ConnId id, bool allowed) = 0;
  // Graceful stop (docs/protocol.md#stopping): conversations already handed to the
  // application may finish for up to `grace_ms`, then they are dropped.
  // OnStopped follows. Any thread; idempotent.
  virtual void Stop(uint32_t grace_ms) = 0;
  // Waits for the server thread to end. Call after OnStopped, or after
  // Stop(0) during teardown.
  virtual void Join() = 0;

  // ---- Accepting on the application's thread while it is idle
  // (docs/design.md#accepting-on-the-js-thread). Optional: a transport
  // without it offers no listener, and its own threads accept everything.
  // All three from one thread, the caller's (the JS thread), each
  // non-blocking and bounded.

  // A copy of the listening socket's descriptor for the caller's event
  // loop to watch; the caller closes it. -1: not offered.
  virtual int CallerListener() { return -1; }
  // The caller's loop is about to wait: the listener comes back to it if
  // the serving threads took it over while it was busy.
  virtual ListenerTurn CallerIdle() { return ListenerTurn::kLeave; }
  // The caller's copy is readable: accepts up to `max` connections and
  // reads each once. Complete requests are appended to `out` (the
  // caller's now, as from OnRequest); the others go to serving threads.
  virtual ListenerTurn AcceptOnCaller(int max, std::vector<CallerRequest>* out) {
    (void)max;
    (void)out;
    return ListenerTurn::kLeave;
  }
};

// Starts a server: lock, probe for a live server, bind, listen, threads.
// Returns EADDRINUSE when a live server owns the path. Blocking (up to
// about 100 ms for the lock file); call off the JS thread.
Status StartServer(const ServerOptions& options, ServerDelegate* delegate,
                   std::unique_ptr<Server>* out);

}  // namespace sipc
