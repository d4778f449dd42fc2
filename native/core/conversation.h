// Conversation: one client connection as both server transports see it,
// and the rules of the conversation (docs/design.md#the-conversation-core).
//
// A transport (posix/server_posix.cc, win/server_win.cc) embeds one
// Conversation in each connection and does only the I/O: it submits
// reads and writes and reports what they brought. What a read result
// means, when the request deadline runs, when a writer is stalled, what a
// Reply does to the queue, and how a stop grace is shortened are decided
// here, once.
//
// Pure C++: no OS calls, no clock (callers pass `now`), no locking. The
// transport guards each Conversation with the lock that guards the
// connection it belongs to (the serving thread's `mu` on POSIX, the
// server's mutex on Windows), except where its own comments say that one
// thread owns a field alone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "byte_buffer.h"
#include "output_queue.h"
#include "pkt_line.h"
#include "server.h"
#include "status.h"

namespace sipc {

// Where a connection stands. Not every transport uses every phase.
enum class ConversationPhase {
  kIdle,            // Windows: an instance without a client (listening)
  kAwaitFirstByte,  // POSIX with allowPeer: nothing read, waiting to see a byte
  kPeerCheck,       // the application decides (AllowPeer); nothing read
  kReading,         // receiving the request
  kHandling,        // the request is the application's
  kClosing,         // Windows: over, waiting for outstanding operations
};

// Adds a connection in `phase` to the snapshot counts of `stats`.
void CountConnection(ConversationPhase phase, ServerStats* stats);

// What a read brought, for the transport: read on, hand the request over,
// or drop the client (and whether to tell the application).
struct ReadVerdict {
  enum class Kind { kNeedMore, kComplete, kDrop };
  // The ServerStats counter a drop counts against.
  enum class Counter { kNone, kProtocol, kTooLarge };

  Kind kind = Kind::kNeedMore;
  bool report = false;  // with kDrop: OnClientError(why); else a probe, closed silently
  Counter counter = Counter::kNone;
  Status why;

  static ReadVerdict NeedMore() { return ReadVerdict{}; }
  static ReadVerdict Complete() {
    ReadVerdict v;
    v.kind = Kind::kComplete;
    return v;
  }
  static ReadVerdict Drop(bool report, Counter counter, Status why);
};

// A stop request and its grace (docs/protocol.md#stopping). The first
// request sets the reason; a later one can only shorten the grace.
struct StopRequest {
  bool requested = false;
  StopReason reason = StopReason::kClosed;
  int64_t grace_deadline = 0;  // conversations still running then are dropped

  // A later, shorter grace wins (e.g. close() after quit); a longer one
  // changes nothing.
  void Request(StopReason why, int64_t now, uint32_t grace_ms);
};

// Whether a stop serves the connections whose request has not reached the
// application yet (docs/protocol.md#stopping), rather than dropping them:
// only once nobody new can reach the server. An idle stop makes itself
// unreachable first, so that a client arriving at the idle deadline is
// answered (docs/protocol.md#idle-stop); any other stop drains only when
// the transport knows it is `unreachable` already (POSIX: the path leads
// to another server).
inline bool StopDrains(StopReason reason, bool unreachable) { return reason == StopReason::kIdle || unreachable; }
// Once a stop has begun, whether a request that completes now is dropped
// unanswered rather than handed to the application: always, except in a
// stop that drains, until its grace is over.
inline bool StopRefusesRequests(bool drains, bool grace_over) { return !drains || grace_over; }

// How a stop that drains makes the server unreachable on a transport
// without an atomic "stop accepting" (docs/windows.md#options-that-differ):
// a Windows pipe instance takes a client until its handle is closed, even
// after its listen was cancelled, so closing the waiting instances one by
// one could hang up on a client that connected in between. Instead, with
// no instance created any more, the server connects to its own name as a
// client again and again, closing each such connection at once. The
// system hands each connect to one listening instance, so every attempt
// takes one away from the clients, until an attempt finds none listening
// (the name is busy or gone): from then on nobody new can connect, and
// the clients that connected before are served. An attempt that fails
// otherwise (the name's DACL refuses the server's own user) ends the
// occupation incomplete; the transport then looks for a client on each
// instance right before closing it, which a client connecting in between
// still loses.
class ListenerOccupation {
 public:
  enum class Attempt {
    kTookOne,        // connected: one instance less listens
    kNoneListening,  // every instance is taken, or none is left
    kFailed,         // any other failure
  };
  // What the transport finds on an instance whose listen completed or
  // was cancelled during the stop.
  enum class Arrival {
    kNone,              // no client ever connected
    kClient,            // a client is connected, whether it sent bytes or not
    kGoneWithoutBytes,  // a client connected and left without a byte
  };

  // `listening`: the instances that listened when the stop began. Taking
  // more means instances the server did not create (another process
  // added them to the name): they are not its to take, so it stops there.
  explicit ListenerOccupation(uint64_t listening) : listening_(listening) {}

  // Records an attempt; returns whether to make another.
  bool Record(Attempt result);
  // Nobody listens any more: no client can connect from now on.
  bool complete() const { return complete_; }

  // During the stop, whether an instance's client is served (counted
  // against maxConnections, shown to allowPeer, read). Every client that
  // reached the server is, even when the instance's listen was cancelled
  // first (`connected`: the listen completed with a client). A client
  // gone without a byte brought no request: the server's own occupying
  // connection, or a probe that left (which the server closes silently
  // anyway), so it is closed unseen: not counted, not reported.
  static bool Serves(Arrival arrival, bool connected) {
    return arrival == Arrival::kClient || (arrival == Arrival::kNone && connected);
  }

 private:
  uint64_t listening_;
  uint64_t taken_ = 0;
  bool complete_ = false;
};

// The idle stop (docs/protocol.md#idle-stop): a server that has had no
// connection open for `timeout_ms` stops by itself (StopReason::kIdle).
// Any open connection counts as activity, whatever it does: a silent
// client, a request being read, a conversation in the application's hands.
// The transport keeps the count of open connections and the time the last
// one closed (or the server started); this says when the stop is due.
struct IdleRule {
  static constexpr int64_t kNever = INT64_MAX;
  uint32_t timeout_ms = 0;  // 0: never stop for being idle

  // When the idle stop falls due: `timeout_ms` after `idle_since`, or
  // kNever while a connection is open (or without a timeout).
  int64_t DueAt(uint64_t open_connections, int64_t idle_since) const {
    if (timeout_ms == 0 || open_connections > 0) return kNever;
    return idle_since + timeout_ms;
  }
  bool Due(int64_t now, uint64_t open_connections, int64_t idle_since) const {
    return now >= DueAt(open_connections, idle_since);
  }
};

// Delegate calls about one conversation, collected under the transport's
// lock and made after it is released (docs/design.md#lock-order).
struct ConversationNotices {
  ConnId id = 0;
  std::vector<uint64_t> written;   // OnWritten
  std::vector<uint64_t> released;  // OnReleased: borrowed memory dropped unsent
  bool lost = false;               // OnConversationLost(lost_why)
  Status lost_why;
  bool quit = false;               // the quit conversation is over: stop the server

  void Lose(bool first, Status why) {
    lost = first;
    lost_why = std::move(why);
  }
  // Makes the calls, released tokens first (their memory is free), then
  // written, then lost. The quit is the caller's (it knows how to stop).
  void DeliverTo(ServerDelegate* delegate) const;
};

class Conversation {
 public:
  explicit Conversation(size_t max_request_bytes) : reader(max_request_bytes) {}

  // Forgets the client, for a transport that reuses the object.
  void Reset(size_t max_request_bytes);

  // ---- The request and its deadline (docs/protocol.md#limits) ----

  // The request deadline runs from now (a no-op without a limit). Returns
  // whether a deadline was set.
  bool StartRequestClock(int64_t now, uint32_t timeout_ms);
  // True when the deadline should start now: a limit, and none running
  // (a new connection, or a peer just allowed).
  bool RequestClockStopped(uint32_t timeout_ms) const { return timeout_ms > 0 && deadline == 0; }
  // The application decides on the peer: the clock pauses, since the time
  // it takes to decide is not the client's.
  void BeginPeerCheck();
  // The peer was allowed: reading begins, and the request's time starts
  // anew with the transport's next StartRequestClock.
  void AllowRead();
  // The request is overdue: still being read (or its first byte awaited)
  // at or past a running deadline. Never during the peer check.
  bool RequestExpired(int64_t now) const;
  static Status TimeoutStatus(uint32_t timeout_ms);

  // ---- Why a client or a conversation was dropped (the same codes on
  // every transport) ----

  // Over maxConnections: closed at once (OnClientError).
  static Status TooManyConnectionsStatus(uint32_t max_connections);
  // The client hung up while the application had the conversation.
  static Status ClientLeftStatus();
  // The client stopped reading its response (WriteStalled).
  static Status WriteStalledStatus();
  // The stop grace ran out before the handler finished.
  static Status GraceOverStatus();

  // ---- Reading the request ----

  // `len` bytes arrived.
  ReadVerdict Feed(const uint8_t* data, size_t len, size_t max_request_bytes);
  // The client closed its side: a probe if nothing came, else truncated.
  ReadVerdict EndOfInput() const;
  // The read failed with `why`: reported only once a request had begun.
  ReadVerdict ReadFailed(Status why) const;
  // After kComplete: the request, moved out; the conversation is the
  // application's from now on and the deadline no longer applies.
  ByteBuffer TakeRequest();

  // ---- Replies ----

  // Reply(id, chunk) applies: the request was handed over and the last
  // chunk has not been queued yet.
  bool TakesReplies() const { return phase == ConversationPhase::kHandling && !ended; }
  // A chunk sent from the caller's memory when it cannot be written at
  // once (docs/design.md#memory).
  static bool Borrows(const ReplyChunk& chunk) {
    return chunk.may_borrow && chunk.token != 0 && chunk.len >= kBorrowThreshold;
  }
  // The pkt-line framed copy of a chunk that is not borrowed (empty for
  // one that is): may be made before taking the lock.
  static std::vector<uint8_t> FrameCopy(const ReplyChunk& chunk);
  // The write mark (docs/design.md#memory): a copied chunk that
  // leaves at most this many framed bytes queued is done for the caller
  // at once (kBuffered), as a Node stream's write() is under its
  // highWaterMark. Why it exists: a Unix socket charges each small send
  // far more than its bytes, so a writer of small chunks fills the
  // socket after a few hundred of them; without a mark every later
  // awaited chunk would wait for a serving thread's write and its hop
  // back to the application's thread. 64 KiB: Node's default
  // highWaterMark for streams (since Node 22), small beside the socket's own buffer
  // (about 200 KiB on Linux), and the borrow threshold, so a borrowed
  // chunk (which must stay pinned until its token comes back) is never
  // under it. An awaiting writer holds at most the mark plus the one
  // chunk it waits for.
  static constexpr size_t kWriteMark = 64 * 1024;
  // Queues `chunk` (`framed` is FrameCopy(chunk)), of which `already_sent`
  // framed bytes went out at once. Returns kBorrowed, kBuffered (copied,
  // and the queue stays within kWriteMark: the token is not kept) or
  // kQueued.
  ReplyOutcome Queue(const ReplyChunk& chunk, std::vector<uint8_t>&& framed, size_t already_sent);
  // The last chunk is on its way: close once it is out (and quit).
  void MarkLast(const ReplyChunk& chunk);
  // `bytes` of the queue reached the peer; completed tokens to `written`.
  void Wrote(size_t bytes, std::vector<uint64_t>* written) { out.Consume(bytes, written); }

  // ---- Writes that wait for the peer ----

  // Queued bytes wait for the peer to read (the write-stall clock runs).
  void WaitForPeer(int64_t now) {
    write_waiting = true;
    write_waiting_since = now;
  }
  // A client that stopped reading its response gets as long as a request.
  bool WriteStalled(int64_t now, uint32_t timeout_ms) const {
    return timeout_ms > 0 && write_waiting && now - write_waiting_since > static_cast<int64_t>(timeout_ms);
  }

  // ---- The end ----

  // Ends without the flush: nothing more is written. Returns true the
  // first time.
  bool Abort();
  // Drops what is queued; the tokens of borrowed entries go to `released`.
  void DropQueued(std::vector<uint64_t>* released) {
    if (!out.empty()) out.Clear(released);
  }

  ConnId id = 0;
  PeerInfo peer;
  ConversationPhase phase = ConversationPhase::kReading;
  pkt::Reader reader;
  ByteBuffer request;
  int64_t deadline = 0;  // the request must be complete by then (0: none running)
  OutputQueue out;
  bool ended = false;    // the last chunk is queued (or the conversation aborted)
  bool quit = false;     // ...and then stop the server
  bool aborted = false;  // close without writing what is queued
  bool write_waiting = false;       // queued bytes wait for the peer
  int64_t write_waiting_since = 0;  // since then

 private:
  // The first `already_sent` framed bytes of the chunk just queued went
  // out at once.
  void DropSent(size_t already_sent);
};

}  // namespace sipc
