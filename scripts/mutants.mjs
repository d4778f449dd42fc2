#!/usr/bin/env node
// `npm run mutants`: do the tests catch the bugs they are named for?
//
// Each entry of MUTANTS below plants one small bug in a rule that matters
// (pkt-line framing, every server limit and deadline, the lock and
// stale-socket rules, allowPeer and who may hold what, the idle stop, the
// stop grace, the client's checks, the daemon start, closeOnSignals,
// defaultSocketPath, the JS-thread accept, the client's calling-thread
// side, the write mark, the stream hand-over bound, the Windows listener
// occupation), in a
// scratch copy of this tree, rebuilds what it touches and runs the tests
// that claim the rule. A mutant is "killed" when one of those tests fails
// (or hangs past its limit), "survived" when they all pass. Every mutant
// must be killed; the script exits non-zero otherwise.
//
// A mutation names its place by a pattern (a string that must occur once,
// or a regular expression that must match once), never by a line number,
// so that it survives edits around it. A pattern that no longer matches
// is an error ("not applied"): update the entry with the code.
//
// Before the mutants, every claimed test runs once on the unchanged copy
// and must pass; otherwise the verdicts would mean nothing.
//
// Not a CI step (it takes tens of minutes); run it before a release.
// Usage: npm run mutants -- [--only=name,name] [--list] [--check]
//                           [--all-tests] [--scratch=DIR] [--no-baseline]
//   --check      only check that every pattern matches once in this tree
//   --all-tests  run every claimed test of a mutant, not only up to the
//                first that kills it (slower; shows each test's verdict)
//   --scratch    where the copy lives (default: <tmpdir>/simple-ipc-mutants,
//                kept between runs so that rebuilds are incremental)
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

// Tests, by the runner that runs them:
//   native: [binary, name filter] from the CMake build (native/test)
//   vitest: a test file
const core = { native: ['sipc_core_test'] };
const conversation = { native: ['sipc_conversation_test'] };
const exchange = (filter) => ({ native: ['sipc_exchange_test', filter] });
const server = (filter) => ({ native: ['sipc_server_test', filter] });
const client = (filter) => ({ native: ['sipc_client_test', filter] });
const coreOnly = (filter) => ({ native: ['sipc_core_test', filter] });
const conversationOnly = (filter) => ({ native: ['sipc_conversation_test', filter] });
const vitest = (file) => ({ vitest: file });

/** @type {Array<{name: string, rule: string, file: string, find: string | RegExp, replace: string, tests: Array<{native?: string[], vitest?: string}>}>} */
const MUTANTS = [
  // ---- pkt-line framing (docs/protocol.md#pkt-line-reader-rules) ----
  {
    name: 'pkt-length-bound-plus-one',
    rule: 'a packet length above 65520 is a protocol error',
    file: 'native/core/pkt_line.cc',
    find: 'if (total > kMaxPacketSize) {',
    replace: 'if (total > kMaxPacketSize + 1) {',
    tests: [core, vitest('test/framing.test.ts')],
  },
  {
    name: 'pkt-0003-ends-a-message',
    rule: '0003 is a protocol error, not an end packet',
    file: 'native/core/pkt_line.cc',
    find: /case 3:\s*error_text_ = "invalid packet length 0003";\s*state_ = State::kProtocolError;/,
    replace: 'case 3:\n      end_ = EndPacket::kFlush;\n      state_ = State::kDone;',
    tests: [core, vitest('test/framing.test.ts')],
  },
  {
    name: 'probe-reported-as-client-error',
    rule: 'a connection that sends nothing and hangs up is a silent liveness probe',
    file: 'native/core/conversation.cc',
    find: /if \(!reader\.started\(\)\) return ReadVerdict::Drop\(false,/,
    replace: 'if (!reader.started()) return ReadVerdict::Drop(true,',
    tests: [vitest('test/framing.test.ts'), vitest('test/client/exchanges.test.ts'), vitest('test/rendezvous.test.ts')],
  },

  // ---- limits and deadlines (docs/protocol.md#limits) ----
  {
    name: 'max-request-bytes-one-over-accepted',
    rule: 'maxRequestBytes: the limit is served, one byte more is dropped',
    file: 'native/core/pkt_line.cc',
    find: 'if (payload_total_ + packet_left_ > max_payload_)',
    replace: 'if (payload_total_ + packet_left_ - 1 > max_payload_)',
    tests: [server('max_request_bytes'), vitest('test/limits.test.ts')],
  },
  {
    name: 'request-timeout-x5',
    rule: 'requestTimeoutMs: a request not whole in time is dropped then',
    file: 'native/posix/server_posix.cc',
    find: /(uint32_t timeout_ms = server_->options\(\)\.request_timeout_ms);/,
    replace: '$1 * 5;',
    tests: [server('request_timeout'), vitest('test/limits.test.ts')],
  },
  {
    name: 'request-clock-restarted-by-every-read',
    rule: 'requestTimeoutMs counts from the accept: a byte now and then does not extend it',
    file: 'native/posix/server_posix.cc',
    find: /if \(conn->conv\.RequestClockStopped\(.*\)\) \{/,
    replace: 'if (true) {',
    tests: [server('request_timeout'), vitest('test/limits.test.ts')],
  },
  {
    name: 'max-connections-plus-one',
    rule: 'maxConnections: the one beyond the limit is closed at once',
    file: 'native/posix/server_posix.cc',
    find: /if \(open < (static_cast<int64_t>\(options_\.max_connections\))\)/,
    replace: 'if (open <= $1)',
    tests: [server('max_connections'), vitest('test/limits.test.ts')],
  },
  {
    name: 'write-stall-never-detected',
    rule: 'a client that stops reading its response is dropped after requestTimeoutMs',
    file: 'native/core/conversation.h',
    find: /(bool WriteStalled\(int64_t now, uint32_t timeout_ms\) const \{)\s*return [^;]*;/,
    replace: '$1\n    (void)now;\n    (void)timeout_ms;\n    return false;',
    tests: [server('client_that_stops_reading'), vitest('test/limits.test.ts')],
  },

  // ---- stopping: the grace, the idle stop (docs/protocol.md#stopping) ----
  {
    name: 'grace-ignored-abort-at-once',
    rule: 'a stop lets running conversations finish within the grace time',
    file: 'native/posix/server_posix.cc',
    find: 'if (now >= grace_deadline && !grace_over()) AbortAllConversations();',
    replace: 'if (!grace_over()) AbortAllConversations();',
    tests: [server('quit'), vitest('test/lifecycle/stopping.test.ts')],
  },
  {
    name: 'grace-never-ends',
    rule: 'the grace time is bounded: hanging handlers are dropped when it ends',
    file: 'native/posix/server_posix.cc',
    find: 'if (now >= grace_deadline && !grace_over()) AbortAllConversations();',
    replace: 'if (false && now >= grace_deadline && !grace_over()) AbortAllConversations();',
    tests: [server('grace'), vitest('test/lifecycle/stopping.test.ts')],
  },
  {
    name: 'idle-stop-ignores-open-connections',
    rule: 'idleTimeoutMs runs only while no connection is open',
    file: 'native/core/conversation.h',
    find: 'if (timeout_ms == 0 || open_connections > 0) return kNever;',
    replace: 'if (timeout_ms == 0) return kNever;',
    tests: [server('idle_timeout'), vitest('test/lifecycle/stopping.test.ts')],
  },
  {
    name: 'idle-clock-not-restarted-by-the-last-close',
    rule: 'the idle clock restarts when the last connection closes',
    file: 'native/posix/server_posix.cc',
    find: /(if \(open_connections_\.fetch_sub\(1, std::memory_order_acq_rel\) != 1\) return;)\s*idle_since_\.store\(NowMs\(\)\);/,
    replace: '$1',
    tests: [server('idle_timeout'), vitest('test/lifecycle/stopping.test.ts')],
  },

  // ---- the socket path: live, stale, stolen (docs/protocol.md#stale-socket) ----
  {
    name: 'live-server-path-taken',
    rule: 'a path a live server listens on is refused (EADDRINUSE)',
    file: 'native/posix/listener_posix.cc',
    find: '} else if (LiveServerAt(address)) {',
    replace: '} else if (false) {',
    tests: [server('live_server_path'), vitest('test/rendezvous.test.ts')],
  },
  {
    name: 'stale-socket-not-cleared',
    rule: 'a socket file with nobody listening is replaced',
    file: 'native/posix/listener_posix.cc',
    find: 'st = ClearStaleSocket(path);',
    replace: 'st = Status::Ok();',
    tests: [server('stale_socket'), vitest('test/faults/killed-server.test.ts')],
  },
  {
    name: 'non-socket-at-path-removed',
    rule: 'what is not a socket is never removed',
    file: 'native/posix/listener_posix.cc',
    find: /if \(!S_ISSOCK\(sb\.st_mode\)\) return Status::Lib\(LibCode::kNotSocket,[^;]*;/,
    replace: '',
    tests: [server('non_socket_at_path'), vitest('test/rendezvous.test.ts')],
  },
  {
    name: 'stolen-path-ignored',
    rule: 'a server whose path was removed or replaced stops',
    file: 'native/posix/server_posix.cc',
    find: /if \(ListenerPathStolen\(options_\.path, listener_\)\) (RequestStop\(StopReason::kStolen,)/,
    replace: 'if (false) $1',
    tests: [server('stolen_path'), vitest('test/rendezvous.test.ts')],
  },

  // ---- the lock file (docs/protocol.md#the-lock-file) ----
  {
    name: 'empty-lock-stale-after-500-ms',
    rule: 'a lock without a pid is stale from 5000 ms, not before',
    file: 'native/core/stale_lock.h',
    find: 'constexpr int64_t kEmptyLockStaleMs = 5000;',
    replace: 'constexpr int64_t kEmptyLockStaleMs = 500;',
    tests: [core, server('lock')],
  },
  {
    name: 'lock-pid-with-trailing-bytes-accepted',
    rule: 'a lock names a pid only as digits then nothing or a line break',
    file: 'native/core/stale_lock.cc',
    find: /if \(i < content\.size\(\) && content\[i\] != '\\n'\) return -1;/,
    replace: '',
    tests: [core, server('lock')],
  },
  {
    name: 'live-pid-lock-taken-after-30-s',
    rule: 'a lock naming a live pid is never stale, however old',
    file: 'native/core/stale_lock.h',
    find: 'if (pid > 0) return !pid_alive(pid);',
    replace: 'if (pid > 0) return !pid_alive(pid) || lock.age_ms >= 30000;',
    tests: [core, server('lock')],
  },
  {
    name: 'dead-pid-lock-kept',
    rule: 'a lock naming a pid that no longer exists is stale',
    file: 'native/core/stale_lock.h',
    find: 'if (pid > 0) return !pid_alive(pid);',
    replace: 'if (pid > 0) return false;',
    tests: [core, server('lock')],
  },

  // ---- allowPeer (docs/api.md, README: anything but true disconnects) ----
  {
    name: 'allow-peer-truthy-verdict-allows',
    rule: 'allowPeer: only true lets the peer in',
    file: 'lib/server.ts',
    find: 'this.nativeServer.allowPeer(id, verdict === true)',
    replace: 'this.nativeServer.allowPeer(id, verdict !== false)',
    tests: [vitest('test/access.test.ts')],
  },
  {
    name: 'allow-peer-truthy-promise-allows',
    rule: 'allowPeer: only a promise of true lets the peer in',
    file: 'lib/server.ts',
    find: /\(ok\) => this\.peerDecided\(id, ok === true\)/,
    replace: '(ok) => this.peerDecided(id, ok !== false)',
    tests: [vitest('test/access.test.ts')],
  },
  {
    name: 'allow-peer-rejection-allows',
    rule: 'allowPeer: a rejected promise refuses the peer',
    file: 'lib/server.ts',
    find: /(\(error: unknown\) => \{\s*this\.peerDecided\(id, )false\);/,
    replace: '$1true);',
    tests: [vitest('test/access.test.ts')],
  },
  {
    name: 'allow-peer-throw-allows',
    rule: 'allowPeer: a throw refuses the peer',
    file: 'lib/server.ts',
    find: /(catch \(error\) \{\s*this\.nativeServer\.allowPeer\(id, )false\);/,
    replace: '$1true);',
    tests: [vitest('test/access.test.ts')],
  },
  {
    name: 'allow-peer-verdict-never-times-out',
    rule: 'allowPeer: a verdict not given within requestTimeoutMs drops the connection',
    file: 'lib/server.ts',
    find: /const timer = limit > 0 \? setTimeout\(\(\) => this\.peerCheckExpired\(id, peer\), limit\)\.unref\(\) : undefined;/,
    replace: 'const timer = undefined;',
    tests: [vitest('test/api-contract.test.ts')],
  },
  {
    name: 'allow-peer-refusal-ignored',
    rule: 'a refused peer is disconnected before its request is read',
    file: 'native/posix/server_posix.cc',
    find: 'if (!allowed || stopping()) {',
    replace: 'if (stopping()) {',
    tests: [server('allow_peer'), vitest('test/access.test.ts')],
  },

  // ---- who may hold what (docs/security.md#refused-and-undecided-peers, docs/security.md#memory) ----
  {
    name: 'undecided-share-plus-one',
    rule: "with allowPeer, another user holds at most a quarter of maxConnections undecided",
    file: 'native/core/admission.h',
    find: 'if (uid != own_uid_ && n >= cap_) {',
    replace: 'if (uid != own_uid_ && n > cap_) {',
    // Not crowding.test.ts: its bound on what the crowd holds allows for root's own connections.
    tests: [core, server('undecided_connections_of_another_user_are_capped')],
  },
  {
    name: 'undecided-own-user-capped',
    rule: "the server's own user is not capped by the undecided share",
    file: 'native/core/admission.h',
    find: 'if (uid != own_uid_ && n >= cap_) {',
    replace: 'if (n >= cap_) {',
    tests: [core],
  },
  {
    name: 'undecided-share-not-enforced',
    rule: 'the transport refuses a connection over its user\'s undecided share at once',
    file: 'native/posix/server_posix.cc',
    find: 'if (options.check_peer && !server_->AdmitUndecided(peer.uid)) {',
    replace: 'if (options.check_peer && !server_->AdmitUndecided(peer.uid) && false) {',
    tests: [server('undecided_connections_of_another_user_are_capped'), vitest('test/security/crowding.test.ts')],
  },
  {
    name: 'silent-peer-never-asked',
    rule: 'a peer silent for kSilentPeerCheckMs is asked about without a byte',
    file: 'native/posix/server_posix.cc',
    find: /(if \(c == nullptr \|\| c->conv\.phase != Phase::kAwaitFirstByte\) continue;\s*\}\s*)StartPeerCheck\(c\);/,
    replace: '$1(void)c;',
    tests: [server('silent_peer_is_asked_without_a_byte')],
  },
  {
    name: 'silent-peer-asked-after-5-s',
    rule: 'a silent peer is asked after 100 ms, not after seconds',
    file: 'native/core/admission.h',
    find: 'constexpr int64_t kSilentPeerCheckMs = 100;',
    replace: 'constexpr int64_t kSilentPeerCheckMs = 5000;',
    tests: [server('silent_peer_is_asked_without_a_byte')],
  },
  {
    name: 'request-memory-one-byte-over-accepted',
    rule: 'maxBufferedRequestBytes: incomplete requests up to the budget are kept, one byte more is not',
    file: 'native/core/admission.h',
    find: 'if (total_ > budget_ || more > budget_ - total_) return false;',
    replace: 'if (total_ > budget_ || more > budget_ - total_ + 1) return false;',
    tests: [core],
  },
  {
    name: 'request-memory-budget-ignored',
    rule: 'maxBufferedRequestBytes: the read that takes the total past the budget drops its connection',
    file: 'native/posix/server_posix.cc',
    find: 'if (server_->ChargeRequest(&conn->buffered, conn->conv.request.size())) continue;',
    replace: 'server_->ChargeRequest(&conn->buffered, conn->conv.request.size());\n      continue;',
    tests: [server('incomplete_requests_share_a_memory_budget'), vitest('test/security/crowding.test.ts')],
  },
  {
    name: 'request-memory-kept-after-handover',
    rule: 'a request handed to the application no longer counts against maxBufferedRequestBytes',
    file: 'native/posix/server_posix.cc',
    find: 'if (conn->buffered > 0) server_->ReleaseRequest(&conn->buffered);  // the application\'s memory now',
    replace: '',
    tests: [server('memory_budget')],
  },
  {
    name: 'request-memory-kept-after-drop',
    rule: 'a connection closed before its request is whole gives its bytes back to maxBufferedRequestBytes',
    file: 'native/posix/server_posix.cc',
    find: /(if \(conn->undecided\) server_->UndecidedDone\(conn->conv\.peer\.uid\);\s*)if \(conn->buffered > 0\) server_->ReleaseRequest\(&conn->buffered\);/,
    replace: '$1',
    tests: [server('memory_budget')],
  },

  // ---- credentials read on first use (docs/design.md#the-posix-server) ----
  {
    name: 'peer-credentials-read-at-every-accept',
    rule: 'without allowPeer no connection costs a getsockopt(SO_PEERCRED) until its peer is asked for',
    file: 'native/posix/server_posix.cc',
    find: 'if (options.check_peer) peer = server_->ReadPeer(fd);',
    replace: 'peer = server_->ReadPeer(fd);',
    tests: [server('peer_credentials')],
  },
  {
    name: 'peer-credentials-never-read',
    rule: 'a deferred peer is read from the socket when it is asked for',
    file: 'native/posix/server_posix.cc',
    find: /(if \(!conn->peer_known\) \{\s*)conn->conv\.peer = server_->ReadPeer\(conn->fd\);/,
    replace: '$1',
    tests: [server('peer_credentials')],
  },

  // ---- the client: whom it talks to, how much it takes (docs/api.md) ----
  {
    name: 'server-uid-not-checked',
    rule: 'serverUid: a server of another user gets no byte of the request (ERR_IPC_SERVER_IDENTITY)',
    file: 'native/posix/socket_exchange.cc',
    find: /identity = CheckServerUid\(options\(\), path\(\), GetPeerInfo\(fd_\)\.uid, static_cast<int64_t>\(geteuid\(\)\)\);/,
    replace: 'identity = Status::Ok();',
    tests: [vitest('test/client/server-identity.test.ts')],
  },
  {
    name: 'server-uid-unknown-user-accepted',
    rule: 'serverUid: a server whose user cannot be read is never a match',
    file: 'native/core/exchange.cc',
    find: 'if (server_uid >= 0 && server_uid == expected) return Status::Ok();',
    replace: 'if (server_uid < 0 || server_uid == expected) return Status::Ok();',
    tests: [exchange('server_uid')],
  },
  {
    name: 'max-response-bytes-one-over-accepted',
    rule: 'maxResponseBytes: a response of the limit is taken, one byte more ends the exchange',
    file: 'native/core/exchange.cc',
    find: 'received_ > options_.max_response_bytes) {',
    replace: 'received_ > options_.max_response_bytes + 1) {',
    tests: [exchange('max_response_bytes'), vitest('test/client/server-identity.test.ts')],
  },

  // ---- the daemon start (docs/daemon.md#one-start) ----
  {
    name: 'start-lock-stale-holder-kept',
    rule: 'a start lock whose holder is dead is taken over',
    file: 'lib/start-lock.ts',
    find: 'if (pid !== undefined) return !processAlive(Number(pid));',
    replace: 'if (pid !== undefined) return false;',
    tests: [vitest('test/daemon.test.ts')],
  },
  {
    name: 'start-lock-live-holder-taken',
    rule: 'a start lock held by a live caller is never taken: one daemon is spawned',
    file: 'lib/start-lock.ts',
    find: 'if (!isStale(lockPath, judged)) return;',
    replace: '',
    tests: [vitest('test/daemon.test.ts')],
  },
  {
    name: 'auto-start-waits-out-a-refusing-socket',
    rule: 'autoStart on Linux: a refused first connect starts the daemon at once, without waiting connectTimeoutMs',
    file: 'lib/auto-start.ts',
    find: "const REFUSED_MEANS_NOBODY = process.platform === 'linux';",
    replace: 'const REFUSED_MEANS_NOBODY = false;',
    tests: [vitest('test/daemon.test.ts')],
  },

  // ---- stopping a replaced server, on signals (docs/protocol.md#stopping, docs/daemon.md#signals) ----
  {
    name: 'replaced-server-drops-what-it-accepted',
    rule: 'a server whose path leads to its replacement serves the connections it accepted before',
    file: 'native/core/conversation.h',
    find: 'return reason == StopReason::kIdle || unreachable; }',
    replace: '(void)unreachable; return reason == StopReason::kIdle; }',
    tests: [conversation, server('quit_after_the_path_moved_on'), vitest('test/lifecycle/replace.test.ts')],
  },
  {
    name: 'close-on-signals-not-raised-again',
    rule: 'closeOnSignals: once closed, the process ends by the signal as it would have without the option',
    file: 'lib/signals.ts',
    find: 'if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);',
    replace: '',
    tests: [vitest('test/lifecycle/signals.test.ts')],
  },
  {
    name: 'close-on-signals-second-signal-waits',
    rule: 'closeOnSignals: a second signal while closing drops what still runs',
    file: 'lib/signals.ts',
    find: 'for (const server of targets) void server.close({ force: true });',
    replace: 'for (const server of targets) void server.close();',
    tests: [vitest('test/lifecycle/signals.test.ts')],
  },

  // ---- defaultSocketPath (docs/daemon.md#where-the-socket-lives) ----
  {
    name: 'socket-dir-of-another-user-taken',
    rule: "defaultSocketPath: a directory under its name that another user owns is refused",
    file: 'lib/socket-path.ts',
    find: 'if (st.uid !== uid) return',
    replace: 'if (false) return',
    tests: [vitest('test/socket-path.test.ts')],
  },
  {
    name: 'socket-dir-open-to-others-taken',
    rule: 'defaultSocketPath: a directory under its name that group or others may enter is refused',
    file: 'lib/socket-path.ts',
    find: 'if ((st.mode & 0o077) !== 0) return',
    replace: 'if (false) return',
    tests: [vitest('test/socket-path.test.ts')],
  },
  // ---- the JS-thread accept (docs/design.md#accepting-on-the-js-thread) ----
  {
    name: 'busy-caller-keeps-the-listener',
    rule: 'the serving threads take the listener from a JS thread that stays busy while a connection waits',
    file: 'native/posix/server_posix.cc',
    find: 'if (!stopping()) TakeListenerFromCallerLocked();',
    replace: 'if (false) TakeListenerFromCallerLocked();',
    tests: [server('busy_caller_loses_the_listener'), vitest('test/faults/busy-server.test.ts')],
  },
  {
    name: 'caller-closes-an-incomplete-request',
    rule: 'a request not complete at the JS thread\'s accept goes to a serving thread, not closed',
    file: 'native/posix/server_posix.cc',
    find: 'void ServingThread::HandOver(std::unique_ptr<Conn> conn, int64_t accepted_at) {',
    replace:
      'void ServingThread::HandOver(std::unique_ptr<Conn> conn, int64_t accepted_at) {\n  if (accepted_at >= 0) {\n    if (conn->buffered > 0) server_->ReleaseRequest(&conn->buffered);\n    close(conn->fd);\n    server_->Closed();\n    return;\n  }',
    tests: [server('request_not_all_there_goes_to_a_serving_thread')],
  },
  {
    name: 'caller-never-takes-the-listener-back',
    rule: 'a JS thread idle again after a take-over takes the listener back',
    file: 'native/posix/server_posix.cc',
    find: /(void PosixServer::TakeListenerFromCallerLocked\(\) \{\s*if \(!caller_owns_\.load\(std::memory_order_relaxed\)\) return;\s*caller_owns_\.store\(false, std::memory_order_release\);)/,
    replace: '$1\n  caller_resume_at_ = int64_t{1} << 62;',
    tests: [server('busy_caller_loses_the_listener')],
  },

  // ---- the client's calling-thread side (docs/design.md#client) ----
  {
    name: 'caller-side-never-hands-over-after-the-wait',
    rule: 'an exchange waiting on the calling thread goes to the I/O thread after CallerSide::kWaitMs',
    file: 'native/core/caller_side.h',
    find: 'int64_t at = since + kWaitMs;',
    replace: 'int64_t at = since + (int64_t{1} << 40);',
    tests: [exchange('takes_over_after_the_wait'), client('while_the_caller_is_busy'), vitest('test/client/busy-caller.test.ts')],
  },
  {
    name: 'caller-side-deadline-ignored',
    rule: 'a deadline earlier than the wait hands the exchange to the I/O thread at the deadline',
    file: 'native/core/caller_side.h',
    find: 'return deadline >= 0 && deadline < at ? deadline : at;',
    replace: '(void)deadline;\n    return at;',
    // Only the unit test: end to end, a deadline under kWaitMs (5 ms) is not measurable.
    tests: [exchange('takes_over_after_the_wait')],
  },
  {
    name: 'caller-side-keeps-an-unfinished-exchange',
    rule: 'an exchange that one step on the calling thread did not finish goes to the I/O thread',
    file: 'native/core/caller_side.h',
    find: 'static bool HandOverAfterStep(const ClientExchange& exchange) { return !exchange.done(); }',
    replace: 'static bool HandOverAfterStep(const ClientExchange& exchange) { (void)exchange; return false; }',
    tests: [exchange('a_step_did_not_finish'), client('larger_than_one_step')],
  },

  // ---- reply.write()'s write mark (docs/design.md#memory) ----
  {
    name: 'write-mark-exact-fill-waits',
    rule: 'a copied chunk that leaves exactly kWriteMark queued resolves at once',
    file: 'native/core/conversation.cc',
    find: 'out.bytes() + (framed.size() - already_sent) <= kWriteMark;',
    replace: 'out.bytes() + (framed.size() - already_sent) < kWriteMark;',
    tests: [conversationOnly('write_mark'), vitest('test/reply-write-mark.test.ts')],
  },
  {
    name: 'write-mark-disabled',
    rule: 'copied chunks under the write mark resolve at once, without waiting for the kernel',
    file: 'native/core/conversation.cc',
    find: 'bool buffered = out.bytes() + (framed.size() - already_sent) <= kWriteMark;',
    replace: 'bool buffered = false;',
    tests: [conversationOnly('write_mark'), vitest('test/reply-write-mark.test.ts')],
  },
  {
    name: 'write-mark-unbounded',
    rule: 'a chunk that takes the queue over the write mark waits for the kernel',
    file: 'native/core/conversation.cc',
    find: 'bool buffered = out.bytes() + (framed.size() - already_sent) <= kWriteMark;',
    replace: 'bool buffered = true;',
    tests: [conversationOnly('write_mark'), vitest('test/reply-write-mark.test.ts')],
  },

  // ---- a stream's hand-over bound (docs/design.md#stream-backpressure) ----
  {
    name: 'stream-hand-over-unbounded',
    rule: 'a stream stops reading once kMaxUntakenStreamBytes are handed to the consumer and not taken',
    file: 'native/core/stream_flow.h',
    find: 'if (untaken_.fetch_add(n) + n < kMaxUntakenStreamBytes) return false;',
    replace: 'untaken_.fetch_add(n);\n    return false;',
    tests: [
      coreOnly('stream_ledger'),
      exchange('hand_over_bound'),
      client('stops_at_the_hand_over_bound'),
      vitest('test/client/large-responses.test.ts'),
    ],
  },
  {
    name: 'stream-wake-never-asked',
    rule: 'a stream stopped at the bound is woken once the consumer takes it under kWakeUntakenStreamBytes',
    file: 'native/core/stream_flow.h',
    find: 'return stopped_.load() && stopped_.exchange(false);',
    replace: 'return false;',
    tests: [coreOnly('stream_ledger'), exchange('hand_over_bound'), client('never_loses_a_wake_up')],
  },

  // ---- the Windows stop's listener occupation (docs/design.md#windows-server; core unit tests) ----
  {
    name: 'occupation-stops-one-short',
    rule: 'the stop takes every instance that listened, then one attempt more must find none',
    file: 'native/core/conversation.cc',
    find: 'return taken_ <= listening_;',
    replace: 'return taken_ < listening_;',
    tests: [conversationOnly('listener_occupation')],
  },
  {
    name: 'occupation-takes-foreign-instances',
    rule: 'the stop never takes more instances than listened (others are not the server\'s)',
    file: 'native/core/conversation.cc',
    find: 'return taken_ <= listening_;',
    replace: 'return true;',
    tests: [conversationOnly('listener_occupation')],
  },
  {
    name: 'occupation-serves-clients-gone-without-a-byte',
    rule: 'during the stop a client gone without a byte is closed unseen, not served',
    file: 'native/core/conversation.h',
    find: 'return arrival == Arrival::kClient || (arrival == Arrival::kNone && connected);',
    replace: 'return arrival != Arrival::kNone || connected;',
    tests: [conversationOnly('draining_stop')],
  },
];

// ---------------------------------------------------------------------------

const args = process.argv.slice(2);
const flag = (name) => args.includes(`--${name}`);
const value = (name) => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const only = value('only')?.split(',');
const scratch = path.resolve(value('scratch') ?? path.join(os.tmpdir(), 'simple-ipc-mutants'));

// --check: only that every pattern matches once in this tree (no copy, no build).
if (flag('check')) {
  let bad = 0;
  for (const m of MUTANTS) {
    const text = fs.readFileSync(path.join(root, m.file), 'utf8');
    const count = typeof m.find === 'string' ? text.split(m.find).length - 1 : [...text.matchAll(new RegExp(m.find.source, 'g'))].length;
    if (count !== 1) bad++;
    console.log(`${count === 1 ? 'ok ' : 'BAD'} ${m.name} (${count} match${count === 1 ? '' : 'es'} in ${m.file})`);
  }
  process.exit(bad === 0 ? 0 : 1);
}
if (flag('list')) {
  for (const m of MUTANTS) console.log(`${m.name.padEnd(44)} ${m.file}: ${m.rule}`);
  process.exit(0);
}
const selected = MUTANTS.filter((m) => !only || only.includes(m.name));
if (only && selected.length !== only.length) {
  const unknown = only.filter((n) => !MUTANTS.some((m) => m.name === n));
  console.error(`unknown mutant(s): ${unknown.join(', ')} (see --list)`);
  process.exit(2);
}

// Child processes start faster without the extra CA file.
const env = { ...process.env };
delete env.NODE_EXTRA_CA_CERTS;
delete env.PREBUILDS_ONLY;
delete env.SIMPLE_IPC_PREBUILD;

// Interrupted: end the running test (its whole process group) and put the mutated file back.
let current = null;
let restoreCurrent = null;
process.on('SIGINT', () => {
  if (current) {
    try {
      process.kill(-current.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  restoreCurrent?.();
  process.exit(130);
});

/** Runs a command in the scratch copy; resolves with {code, output, seconds}. */
function run(cmd, cmdArgs, { timeoutMs = 600000, quiet = true } = {}) {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(cmd, cmdArgs, { cwd: scratch, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    current = child;
    let output = '';
    const collect = (d) => {
      output += d;
      if (output.length > 1 << 20) output = output.slice(-(1 << 19));
      if (!quiet) process.stdout.write(d);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid, 'SIGKILL'); // the runner and everything it started
      } catch {
        // already gone
      }
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      current = null;
      resolve({ code: timedOut ? 'timeout' : code, output, seconds: (Date.now() - started) / 1000 });
    });
  });
}

async function mustRun(what, cmd, cmdArgs, options) {
  const r = await run(cmd, cmdArgs, options);
  if (r.code !== 0) {
    console.error(`${what} failed (${r.code}):\n${r.output.slice(-4000)}`);
    process.exit(1);
  }
  return r;
}

// ---- the scratch copy ----

function sameFile(a, b) {
  try {
    const sa = fs.statSync(a);
    const sb = fs.statSync(b);
    return sa.size === sb.size && fs.readFileSync(a).equals(fs.readFileSync(b));
  } catch {
    return false;
  }
}

/** Copies the tree's files (tracked and untracked, not ignored) into the scratch copy, changed ones only. */
function syncScratch() {
  const listed = spawnSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: root, encoding: 'utf8' });
  if (listed.status !== 0) throw new Error(`git ls-files failed: ${listed.stderr}`);
  const files = listed.stdout.split('\0').filter((f) => f && fs.existsSync(path.join(root, f)) && fs.statSync(path.join(root, f)).isFile());
  fs.mkdirSync(scratch, { recursive: true });
  const manifest = path.join(scratch, '.mutants-files.json');
  const before = fs.existsSync(manifest) ? JSON.parse(fs.readFileSync(manifest, 'utf8')) : [];
  const now = new Set(files);
  for (const f of before) if (!now.has(f)) fs.rmSync(path.join(scratch, f), { force: true });
  let copied = 0;
  for (const f of files) {
    const from = path.join(root, f);
    const to = path.join(scratch, f);
    if (sameFile(from, to)) continue;
    fs.mkdirSync(path.dirname(to), { recursive: true });
    fs.copyFileSync(from, to);
    copied++;
  }
  fs.writeFileSync(manifest, JSON.stringify(files));
  const modules = path.join(scratch, 'node_modules');
  if (!fs.existsSync(modules)) fs.symlinkSync(path.join(root, 'node_modules'), modules, 'dir');
  console.log(`scratch copy: ${scratch} (${files.length} files, ${copied} copied)`);
}

// ---- building what a mutant touches ----

let tsDirty = true;
let addonDirty = true;
const nativeBuild = 'native/test/build/mutants';

async function buildTs() {
  if (!tsDirty) return;
  await mustRun('tsc', process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json']);
  tsDirty = false;
}

async function buildAddon() {
  if (!addonDirty) return;
  // Through npx: node-gyp then gets the npm configuration (nodedir, ...) as `npm install` gives it.
  const gyp = ['--no-install', 'node-gyp'];
  if (!fs.existsSync(path.join(scratch, 'build', 'Makefile'))) await mustRun('node-gyp configure', 'npx', [...gyp, 'configure']);
  await mustRun('node-gyp build', 'npx', [...gyp, 'build', '-j', '2']);
  addonDirty = false;
}

async function buildNative(target) {
  const dir = path.join(scratch, nativeBuild);
  if (!fs.existsSync(path.join(dir, 'CMakeCache.txt'))) {
    const generator = spawnSync('ninja', ['--version']).status === 0 ? ['-G', 'Ninja'] : [];
    const compiler = spawnSync('clang++', ['--version']).status === 0 ? ['-DCMAKE_CXX_COMPILER=clang++'] : [];
    await mustRun('cmake configure', 'cmake', ['-S', '.', '-B', nativeBuild, ...generator, ...compiler, '-DCMAKE_BUILD_TYPE=RelWithDebInfo']);
  }
  const r = await run('cmake', ['--build', nativeBuild, '-j', '2', '--target', target]);
  return r.code === 0 ? null : r.output.slice(-3000);
}

/** Runs one claimed test; {passed, what, seconds, output}. A build failure counts as a kill (the mutant does not compile). */
async function runTest(test) {
  if (test.native) {
    const [binary, filter] = test.native;
    const what = `${binary}${filter ? ` ${filter}` : ''}`;
    const buildError = await buildNative(binary);
    if (buildError !== null) return { passed: false, what: `${what} (does not build)`, seconds: 0, output: buildError };
    const r = await run(path.join(nativeBuild, binary), filter ? [filter] : [], { timeoutMs: 300000 });
    // The runner ends with "N passed, M failed" and fails when nothing ran.
    return { passed: r.code === 0, what, seconds: r.seconds, output: r.output, code: r.code };
  }
  await buildTs();
  await buildAddon();
  const r = await run(process.execPath, ['node_modules/vitest/vitest.mjs', 'run', '--bail=1', test.vitest], { timeoutMs: 600000 });
  const ran = /Tests\s+.*?(\d+) passed/.exec(r.output.replace(/\x1b\[[0-9;]*m/g, ''));
  return { passed: r.code === 0 && ran !== null && Number(ran[1]) > 0, what: test.vitest, seconds: r.seconds, output: r.output, code: r.code };
}

// ---- mutating ----

function applyMutation(m) {
  const file = path.join(scratch, m.file);
  const original = fs.readFileSync(file, 'utf8');
  let count;
  let mutated;
  if (typeof m.find === 'string') {
    count = original.split(m.find).length - 1;
    mutated = original.replace(m.find, () => m.replace);
  } else {
    const global = new RegExp(m.find.source, m.find.flags.includes('g') ? m.find.flags : `${m.find.flags}g`);
    count = [...original.matchAll(global)].length;
    mutated = original.replace(m.find, m.replace);
  }
  if (count !== 1) return { error: `the pattern matches ${count} times in ${m.file} (must be once): update the entry` };
  fs.writeFileSync(file, mutated);
  markDirty(m.file);
  return {
    restore: () => {
      fs.writeFileSync(file, original);
      markDirty(m.file);
    },
  };
}

function markDirty(file) {
  if (file.startsWith('lib/')) tsDirty = true;
  if (file.startsWith('native/')) addonDirty = true;
}

function testKey(t) {
  return t.native ? `native:${t.native.join(' ')}` : `vitest:${t.vitest}`;
}

// ---- main ----

syncScratch();
const results = [];
const startedAll = Date.now();

if (!flag('no-baseline')) {
  const claimed = new Map();
  for (const m of selected) for (const t of m.tests) claimed.set(testKey(t), t);
  console.log(`\nbaseline: the ${claimed.size} claimed test runs on the unchanged copy`);
  let bad = 0;
  for (const t of claimed.values()) {
    const r = await runTest(t);
    console.log(`  ${r.passed ? 'pass' : 'FAIL'} ${r.what} (${r.seconds.toFixed(1)} s)`);
    if (!r.passed) {
      bad++;
      console.log(r.output.slice(-3000));
    }
  }
  if (bad > 0) {
    console.error(`\nbaseline: ${bad} claimed test run(s) fail without any mutation; fix them first`);
    process.exit(1);
  }
}

for (const m of selected) {
  console.log(`\n== ${m.name}: ${m.rule}\n   ${m.file}`);
  const applied = applyMutation(m);
  if (applied.error) {
    console.log(`   NOT APPLIED: ${applied.error}`);
    results.push({ m, verdict: 'not applied', by: applied.error });
    continue;
  }
  const verdicts = [];
  restoreCurrent = applied.restore;
  try {
    for (const t of m.tests) {
      const r = await runTest(t);
      verdicts.push(r);
      console.log(`   ${r.passed ? 'passed' : `FAILED${r.code === 'timeout' ? ' (timeout)' : ''}`} ${r.what} (${r.seconds.toFixed(1)} s)`);
      if (!r.passed) {
        const lines = r.output.replace(/\x1b\[[0-9;]*m/g, '').split('\n');
        const telling = lines.filter((l) => /FAIL|CHECK|REQUIRE|AssertionError|expected|Error:/.test(l)).slice(0, 6);
        for (const l of telling) console.log(`     | ${l.trim().slice(0, 200)}`);
        if (!flag('all-tests')) break;
      }
    }
  } finally {
    applied.restore();
    restoreCurrent = null;
  }
  const killers = verdicts.filter((v) => !v.passed).map((v) => v.what);
  results.push({ m, verdict: killers.length > 0 ? 'killed' : 'SURVIVED', by: killers.join(', ') });
  console.log(`   => ${killers.length > 0 ? 'killed' : 'SURVIVED'}`);
}

// Leave the copy built from the unchanged sources for the next run.
if (addonDirty || tsDirty) console.log('\n(the scratch copy is rebuilt from the unchanged sources on the next run)');

console.log(`\n| mutation | rule | result | killed by |\n| --- | --- | --- | --- |`);
for (const { m, verdict, by } of results) console.log(`| ${m.name} | ${m.rule} | ${verdict} | ${verdict === 'killed' ? by : by || '-'} |`);
const killed = results.filter((r) => r.verdict === 'killed').length;
console.log(`\nmutants: ${killed} killed, ${results.length - killed} not killed, of ${results.length} (${((Date.now() - startedAll) / 60000).toFixed(1)} min)`);
process.exitCode = killed === results.length ? 0 : 1;
