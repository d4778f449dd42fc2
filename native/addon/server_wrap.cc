// ServerWrap: the JS face of a native Server.
//
// Server threads report through ServerDelegate; the calls become events
// in an EventQueue that the JS thread drains from a thread-safe function
// callback, requests in batches (one JS call per run of requests). The JS
// thread answers with reply(), which writes on the JS thread when the
// kernel takes the bytes at once and otherwise leaves them to the
// server's threads (docs/design.md#the-posix-server); it never blocks.
//
// Lifetime: while the server runs, the wrapper holds a strong reference
// to itself (no GC) and the thread-safe function keeps the loop alive
// unless unref()'d. After OnStopped has been delivered, the server
// thread is joined and both are released. An environment cleanup hook
// stops the server when the environment (process or worker thread) ends.
#include "server_wrap.h"

#include <cstring>

#include <optional>

#ifndef _WIN32
#include <unistd.h>
#include <uv.h>
#endif

#include "errors.h"
#include "js_bytes.h"
#include "js_callback.h"
#include "promise_work.h"
#include "../core/enum_names.h"

namespace sipc {

namespace {

enum class EventType { kRequest, kPeerCheck, kWritten, kReleased, kLost, kClientError, kStopped };

// What `closed` resolves to, indexed by StopReason.
constexpr const char* kStopReasonNames[] = {"closed", "quit", "stolen", "idle", "listener-failed"};

const char* StopReasonName(StopReason reason) { return NameOf<StopReason::kListenerFailed>(reason, kStopReasonNames); }

// A peer's fields for the flat request batch: pid, uid, gid (null where
// unknown), sid (undefined off Windows). A deferred peer (not read yet)
// has pid undefined: JS asks peer(id) when it needs it.
void AppendPeer(Napi::Env env, const PeerInfo& peer, napi_value* out) {
  if (peer.deferred) {
    out[0] = out[1] = out[2] = out[3] = env.Undefined();
    return;
  }
  auto id = [&](int64_t v) -> napi_value {
    return v >= 0 ? Napi::Number::New(env, static_cast<double>(v)) : env.Null();
  };
  out[0] = id(peer.pid);
  out[1] = id(peer.uid);
  out[2] = id(peer.gid);
  out[3] = peer.sid.empty() ? env.Undefined() : Napi::String::New(env, peer.sid);
}

// One request's fields in the flat batch of onRequests.
void AppendRequest(Napi::Env env, Napi::Array& flat, uint32_t* k, ConnId id, ByteBuffer&& data,
                   const PeerInfo& peer) {
  constexpr uint32_t kFields = 6;
  napi_value fields[kFields];
  fields[0] = Napi::Number::New(env, static_cast<double>(id));
  fields[1] = ToJsBuffer(env, std::move(data));
  AppendPeer(env, peer, fields + 2);
  for (uint32_t f = 0; f < kFields; f++) flat.Set((*k)++, fields[f]);
}
constexpr uint32_t kRequestFields = 6;  // AppendRequest's kFields

Napi::Value PeerToJs(Napi::Env env, const PeerInfo& peer) {
  Napi::Object obj = Napi::Object::New(env);
  obj.Set("pid", peer.pid >= 0 ? Napi::Number::New(env, static_cast<double>(peer.pid)) : env.Null());
  obj.Set("uid", peer.uid >= 0 ? Napi::Number::New(env, static_cast<double>(peer.uid)) : env.Null());
  obj.Set("gid", peer.gid >= 0 ? Napi::Number::New(env, static_cast<double>(peer.gid)) : env.Null());
  if (!peer.sid.empty()) obj.Set("sid", Napi::String::New(env, peer.sid));
  return obj;
}

}  // namespace

struct ServerWrap::Event {
  explicit Event(EventType t, ConnId conn = 0) : type(t), id(conn) {}
  // kWritten, kReleased: the tokens of the borrowed chunks the server is
  // done with (JS may let go of those chunks).
  static Event Tokens(EventType t, ConnId conn, const std::vector<uint64_t>& done) {
    Event e(t, conn);
    e.tokens = done;
    return e;
  }
  EventType type;
  ConnId id = 0;
  ByteBuffer data;
  PeerInfo peer;
  std::vector<uint64_t> tokens;
  Status status;
  StopReason reason = StopReason::kClosed;
};

Napi::Function ServerWrap::Init(Napi::Env env) {
  return DefineClass(env, "NativeServer",
                     {
                         InstanceMethod<&ServerWrap::Start>("start"),
                         InstanceMethod<&ServerWrap::ReplyCall>("reply"),
                         InstanceMethod<&ServerWrap::WatchCall>("watch"),
                         InstanceMethod<&ServerWrap::StatsCall>("stats"),
                         InstanceMethod<&ServerWrap::AbortConversation>("abort"),
                         InstanceMethod<&ServerWrap::AllowPeerCall>("allowPeer"),
                         InstanceMethod<&ServerWrap::PeerCall>("peer"),
                         InstanceMethod<&ServerWrap::StopCall>("stop"),
                         InstanceMethod<&ServerWrap::RefCall>("ref"),
                         InstanceMethod<&ServerWrap::UnrefCall>("unref"),
                         InstanceMethod<&ServerWrap::StopNowCall>("stopNow"),
                     });
}

// new NativeServer(options, callbacks)
ServerWrap::ServerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ServerWrap>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsObject()) {
    throw Napi::TypeError::New(env, "NativeServer(options, callbacks)");
  }
  Napi::Object opts = info[0].As<Napi::Object>();
  Napi::Object callbacks = info[1].As<Napi::Object>();
  options_.path = opts.Get("path").As<Napi::String>().Utf8Value();
  options_.threads = opts.Get("threads").As<Napi::Number>().Int32Value();
  double max_request = opts.Get("maxRequestBytes").As<Napi::Number>().DoubleValue();
  options_.max_request_bytes = max_request >= 9.007199254740991e15 ? SIZE_MAX : static_cast<size_t>(max_request);
  double max_buffered = opts.Get("maxBufferedRequestBytes").As<Napi::Number>().DoubleValue();
  options_.max_buffered_request_bytes = max_buffered >= 9.007199254740991e15 ? SIZE_MAX : static_cast<size_t>(max_buffered);
  options_.request_timeout_ms = opts.Get("requestTimeoutMs").As<Napi::Number>().Uint32Value();
  options_.max_connections = opts.Get("maxConnections").As<Napi::Number>().Uint32Value();
  options_.quit_grace_ms = opts.Get("quitGraceMs").As<Napi::Number>().Uint32Value();
  options_.idle_timeout_ms = opts.Get("idleTimeoutMs").As<Napi::Number>().Uint32Value();
  options_.socket_mode = opts.Get("socketMode").As<Napi::Number>().Int32Value();
  options_.check_peer = opts.Get("checkPeer").ToBoolean();
  Napi::Value listen_fd = opts.Get("listenFd");
  options_.listen_fd = listen_fd.IsNumber() ? listen_fd.As<Napi::Number>().Int32Value() : -1;
  options_.take_over = opts.Get("takeOver").ToBoolean();
  std::string access = opts.Get("pipeAccess").As<Napi::String>().Utf8Value();
  options_.pipe_access = access == "everyone" ? PipeAccess::kEveryone
                         : access == "sddl"   ? PipeAccess::kSddl
                                              : PipeAccess::kCurrentUser;
  options_.sddl = opts.Get("sddl").As<Napi::String>().Utf8Value();

  on_requests_ = Napi::Persistent(callbacks.Get("onRequests").As<Napi::Function>());
  on_peer_check_ = Napi::Persistent(callbacks.Get("onPeerCheck").As<Napi::Function>());
  on_written_ = Napi::Persistent(callbacks.Get("onWritten").As<Napi::Function>());
  on_released_ = Napi::Persistent(callbacks.Get("onReleased").As<Napi::Function>());
  on_lost_ = Napi::Persistent(callbacks.Get("onLost").As<Napi::Function>());
  on_client_error_ = Napi::Persistent(callbacks.Get("onClientError").As<Napi::Function>());
  on_stopped_ = Napi::Persistent(callbacks.Get("onStopped").As<Napi::Function>());
}

ServerWrap::~ServerWrap() {
  // Only reached once the server is stopped (a running server holds a
  // reference to its wrapper), or at environment teardown.
  Teardown();
}

// JS thread. Blocking start (lock file, probe, bind) runs on a worker.
Napi::Value ServerWrap::Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (state_ != State::kNew) throw Napi::Error::New(env, "server already started");
  // start(takeOver): decided at start time by the `version` option
  // (lib/replace.ts), which first looks at what runs at the path.
  if (info.Length() > 0 && info[0].IsBoolean()) options_.take_over = info[0].As<Napi::Boolean>().Value();
  state_ = State::kStarting;
  tsfn_ = Tsfn::New(env, Napi::Function(), "simple-ipc server", 0, 1, this);
  self_ref_ = Napi::Persistent(Value());
  napi_add_env_cleanup_hook(env, &ServerWrap::CleanupHook, this);
  cleanup_hook_added_ = true;

  struct Started {
    Status status;
    std::unique_ptr<Server> server;
  };
  return QueuePromiseWork(
      env, "simple-ipc start",
      // Pool thread: lock file, probe, bind (blocking for up to ~100 ms).
      [this] {
        Started started;
        started.status = StartServer(options_, this, &started.server);
        return started;
      },
      // JS thread.
      [this](Napi::Env env, Napi::Promise::Deferred& deferred, Started started) {
        if (!started.status.ok()) {
          state_ = State::kStopped;
          Teardown();
          deferred.Reject(StatusToError(env, started.status, options_.path).Value());
          return;
        }
        server_ = std::move(started.server);
        if (state_ == State::kStopping) {
          server_->Stop(pending_grace_ms_);  // stop() was called while starting
        } else {
          state_ = State::kRunning;
          StartCallerAccept(env);
        }
        // Events that came before server_ was set (a client that connected
        // while the server started) were left queued by Drain().
        Drain(env);
        deferred.Resolve(env.Undefined());
      });
}

// reply(id, chunk, flags, token): a ReplyOutcome (0 sent, 1 queued,
// 2 borrowed: keep `chunk` referenced until `token` comes back through
// onWritten or onReleased, 3 gone, 4 buffered: queued under the write
// mark, nothing follows). flags: 1 end, 2 quit.
Napi::Value ServerWrap::ReplyCall(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!server_) return Napi::Number::New(env, static_cast<double>(ReplyOutcome::kGone));
  uint32_t flags = info[2].As<Napi::Number>().Uint32Value();
  ReplyChunk chunk;
  std::optional<JsBytes> bytes;  // undefined: the last chunk carries no data
  if (!info[1].IsUndefined()) {
    bytes.emplace(info[1], "chunk");
    chunk.data = bytes->data();
    chunk.len = bytes->size();
    chunk.may_borrow = bytes->borrowed();
  }
  chunk.end = (flags & 1) != 0;
  chunk.quit = (flags & 2) != 0;
  chunk.token = static_cast<uint64_t>(info[3].As<Napi::Number>().Int64Value());
  ReplyOutcome outcome = server_->Reply(static_cast<ConnId>(info[0].As<Napi::Number>().Int64Value()), chunk);
  return Napi::Number::New(env, static_cast<double>(outcome));
}

// watch(ids): conversations the application keeps past its first turn.
Napi::Value ServerWrap::WatchCall(const Napi::CallbackInfo& info) {
  if (server_ && info[0].IsArray()) {
    Napi::Array ids = info[0].As<Napi::Array>();
    for (uint32_t i = 0; i < ids.Length(); i++) {
      server_->Watch(static_cast<ConnId>(ids.Get(i).As<Napi::Number>().Int64Value()));
    }
  }
  return info.Env().Undefined();
}

// stats(): the transport's counters (zeros once stopped).
Napi::Value ServerWrap::StatsCall(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ServerStats st = server_ ? server_->Stats() : final_stats_;
  Napi::Object out = Napi::Object::New(env);
  auto set = [&](const char* name, uint64_t v) { out.Set(name, Napi::Number::New(env, static_cast<double>(v))); };
  set("connectionsReading", st.connections_reading);
  set("connectionsPeerCheck", st.connections_peer_check);
  set("connectionsHandling", st.connections_handling);
  set("requests", st.requests);
  set("droppedProtocol", st.dropped_protocol);
  set("droppedTooLarge", st.dropped_too_large);
  set("droppedTimeout", st.dropped_timeout);
  set("droppedTooManyConnections", st.dropped_too_many);
  set("bytesIn", st.bytes_in);
  set("bytesOut", st.bytes_out);
  return out;
}

Napi::Value ServerWrap::AbortConversation(const Napi::CallbackInfo& info) {
  if (server_) server_->Abort(static_cast<ConnId>(info[0].As<Napi::Number>().Int64Value()));
  return info.Env().Undefined();
}

Napi::Value ServerWrap::AllowPeerCall(const Napi::CallbackInfo& info) {
  if (server_) server_->AllowPeer(static_cast<ConnId>(info[0].As<Napi::Number>().Int64Value()), info[1].ToBoolean());
  return info.Env().Undefined();
}

// peer(id): a deferred peer, read now (one non-blocking getsockopt);
// null once the connection is closed.
Napi::Value ServerWrap::PeerCall(const Napi::CallbackInfo& info) {
  PeerInfo peer;
  if (!server_ || !server_->PeerOf(static_cast<ConnId>(info[0].As<Napi::Number>().Int64Value()), &peer)) {
    return info.Env().Null();
  }
  return PeerToJs(info.Env(), peer);
}

// stop(graceMs)
Napi::Value ServerWrap::StopCall(const Napi::CallbackInfo& info) {
  uint32_t grace = info[0].As<Napi::Number>().Uint32Value();
  if (state_ == State::kStarting) {
    state_ = State::kStopping;
    pending_grace_ms_ = grace;
  } else if (state_ == State::kRunning || state_ == State::kStopping) {
    state_ = State::kStopping;
    server_->Stop(grace);
  }
  return info.Env().Undefined();
}

// stopNow(): stops at once and synchronously (for process 'exit', where
// Node runs no environment cleanup): drops every conversation, joins the
// threads, removes the socket file. No event follows.
Napi::Value ServerWrap::StopNowCall(const Napi::CallbackInfo& info) {
  state_ = State::kStopped;
  Teardown();
  return info.Env().Undefined();
}

Napi::Value ServerWrap::RefCall(const Napi::CallbackInfo& info) {
  if (tsfn_) tsfn_.Ref(info.Env());
  return info.Env().Undefined();
}

Napi::Value ServerWrap::UnrefCall(const Napi::CallbackInfo& info) {
  if (tsfn_) tsfn_.Unref(info.Env());
  return info.Env().Undefined();
}

// ---- ServerDelegate (server threads) ----

void ServerWrap::Post(Event&& event) {
  events_.Push(std::move(event), [this] {
    // napi_closing: the environment is going away; the cleanup hook
    // stops the server, nothing to deliver.
    tsfn_.NonBlockingCall();
  });
}

void ServerWrap::OnRequest(ConnId id, ByteBuffer&& request, const PeerInfo& peer) {
  Event e(EventType::kRequest);
  e.id = id;
  e.data = std::move(request);
  e.peer = peer;
  Post(std::move(e));
}

void ServerWrap::OnPeerCheck(ConnId id, const PeerInfo& peer) {
  Event e(EventType::kPeerCheck);
  e.id = id;
  e.peer = peer;
  Post(std::move(e));
}

void ServerWrap::OnWritten(ConnId id, const std::vector<uint64_t>& tokens) {
  Post(Event::Tokens(EventType::kWritten, id, tokens));
}

void ServerWrap::OnReleased(ConnId id, const std::vector<uint64_t>& tokens) {
  Post(Event::Tokens(EventType::kReleased, id, tokens));
}

void ServerWrap::OnConversationLost(ConnId id, const Status& why) {
  Event e(EventType::kLost);
  e.id = id;
  e.status = why;
  Post(std::move(e));
}

void ServerWrap::OnClientError(const Status& why, const PeerInfo& peer) {
  Event e(EventType::kClientError);
  e.status = why;
  e.peer = peer;
  Post(std::move(e));
}

void ServerWrap::OnStopped(StopReason reason) {
  Event e(EventType::kStopped);
  e.reason = reason;
  Post(std::move(e));
}

// ---- JS thread ----

void ServerWrap::CallJs(Napi::Env env, Napi::Function, ServerWrap* wrap, std::nullptr_t*) {
  if (env == nullptr || wrap == nullptr) return;
  wrap->Drain(env);
}

void ServerWrap::Drain(Napi::Env env) {
  // The server's threads run before StartServer has returned to the JS
  // thread: until server_ is set, reply() would be lost, so leave the
  // events queued; Start's completion drains them.
  if (!server_) return;
  std::vector<Event> batch;
  events_.TakeAll(&batch);
  size_t next = 0;
  while (next < batch.size()) {
    Napi::HandleScope scope(env);
    bool delivered;
    if (batch[next].type == EventType::kRequest) {
      delivered = DeliverRequests(env, batch, &next);
    } else {
      Event& e = batch[next++];
      if (e.type == EventType::kStopped) {
        // The server thread is about to exit: join it, then let go.
        state_ = State::kStopped;
        if (server_) {
          server_->Join();
          final_stats_ = server_->Stats();
        }
        server_.reset();
        Napi::Value reason = Napi::String::New(env, StopReasonName(e.reason));
        Teardown();
        CallJsCallback(env, on_stopped_, Value(), {reason});
        return;  // nothing can follow OnStopped
      }
      delivered = DeliverOne(env, e);
    }
    if (!delivered) {
      // The environment is going away: nothing more runs.
      return;
    }
  }
}

// A run of consecutive requests, in one call: onRequests([id, request,
// pid, uid, gid, sid, id, request, ...]). Advances `next` past the run.
bool ServerWrap::DeliverRequests(Napi::Env env, std::vector<Event>& batch, size_t* next) {
  size_t end = *next;
  while (end < batch.size() && batch[end].type == EventType::kRequest) end++;
  Napi::Array flat = Napi::Array::New(env, (end - *next) * kRequestFields);
  uint32_t k = 0;
  for (size_t i = *next; i < end; i++) {
    Event& e = batch[i];
    AppendRequest(env, flat, &k, e.id, std::move(e.data), e.peer);
  }
  *next = end;
  return CallJsCallback(env, on_requests_, Value(), {flat});
}

bool ServerWrap::DeliverOne(Napi::Env env, Event& e) {
  Napi::Object self = Value();
  Napi::Number id = Napi::Number::New(env, static_cast<double>(e.id));
  switch (e.type) {
    case EventType::kPeerCheck:
      return CallJsCallback(env, on_peer_check_, self, {id, PeerToJs(env, e.peer)});
    case EventType::kWritten:
    case EventType::kReleased: {
      Napi::Array tokens = Napi::Array::New(env, e.tokens.size());
      for (size_t i = 0; i < e.tokens.size(); i++) {
        tokens.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(e.tokens[i])));
      }
      Napi::FunctionReference& callback = e.type == EventType::kWritten ? on_written_ : on_released_;
      return CallJsCallback(env, callback, self, {id, tokens});
    }
    case EventType::kLost:
      return CallJsCallback(env, on_lost_, self, {id, StatusToError(env, e.status, options_.path).Value()});
    case EventType::kClientError:
      return CallJsCallback(env, on_client_error_, self,
                            {StatusToError(env, e.status, options_.path).Value(), PeerToJs(env, e.peer)});
    case EventType::kRequest:
    case EventType::kStopped:
      break;  // handled by Drain
  }
  return true;
}

// Releases the thread-safe function, the self reference and the cleanup
// hook. JS thread; idempotent. The server must be stopped (or never
// started).
void ServerWrap::Teardown() {
  StopCallerAccept();  // before the server closes the listener
  if (server_) {
    server_->Stop(0);
    server_->Join();
    server_.reset();
  }
  events_.Close();
  if (tsfn_) {
    tsfn_.Release();
    tsfn_ = Tsfn();
  }
  if (cleanup_hook_added_) {
    napi_remove_env_cleanup_hook(Env(), &ServerWrap::CleanupHook, this);
    cleanup_hook_added_ = false;
  }
  if (!self_ref_.IsEmpty()) self_ref_.Reset();
}

// ---- Accepting on the JS thread (docs/design.md#accepting-on-the-js-thread) ----

#ifndef _WIN32
namespace {
// Connections accepted per wake-up of the listener: a level-triggered
// watch comes back at once for the rest.
constexpr int kCallerAcceptsPerWakeUp = 4;
}  // namespace

// libuv's handles on the server's copy of the listener. Freed once both are
// closed, which may be after the wrapper is gone (`wrap` is then null).
struct ServerWrap::CallerLoop {
  ServerWrap* wrap = nullptr;
  int fd = -1;
  bool watching = false;
  int open_handles = 2;
  uv_poll_t poll;
  uv_prepare_t prepare;
  std::optional<Napi::AsyncContext> context;  // while `wrap` is set
};

void ServerWrap::StartCallerAccept(Napi::Env env) {
  int fd = server_->CallerListener();
  if (fd < 0) return;
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
    close(fd);
    return;
  }
  CallerLoop* caller = new CallerLoop();
  try {
    caller->context.emplace(env, "simple-ipc server", Value());
  } catch (const Napi::Error&) {
    // The environment is going away (a worker terminated): its cleanup
    // hook stops the server; the serving threads keep the listener.
    close(fd);
    delete caller;
    return;
  }
  caller->wrap = this;
  caller->fd = fd;
  if (uv_poll_init(loop, &caller->poll, fd) != 0) {
    close(fd);
    delete caller;
    return;  // the serving threads keep the listener
  }
  caller->poll.data = caller;
  uv_prepare_init(loop, &caller->prepare);
  caller->prepare.data = caller;
  // Neither keeps the loop alive: the thread-safe function does (ref/unref).
  uv_unref(reinterpret_cast<uv_handle_t*>(&caller->poll));
  uv_unref(reinterpret_cast<uv_handle_t*>(&caller->prepare));
  // Each turn of the loop, before it waits: is the listener ours?
  uv_prepare_start(&caller->prepare, [](uv_prepare_t* handle) {
    CallerLoop* c = static_cast<CallerLoop*>(handle->data);
    if (c->wrap != nullptr && c->wrap->server_) c->wrap->ApplyTurn(c->wrap->server_->CallerIdle());
  });
  caller_loop_ = caller;
}

void ServerWrap::ApplyTurn(ListenerTurn turn) {
  CallerLoop* c = caller_loop_;
  if (c == nullptr) return;
  if (turn == ListenerTurn::kLeave) {
    StopCallerAccept();
  } else if (turn == ListenerTurn::kWatch && !c->watching) {
    c->watching = uv_poll_start(&c->poll, UV_READABLE, [](uv_poll_t* handle, int, int) {
                    CallerLoop* loop = static_cast<CallerLoop*>(handle->data);
                    if (loop->wrap != nullptr) loop->wrap->AcceptReady();
                  }) == 0;
  } else if (turn == ListenerTurn::kPause && c->watching) {
    uv_poll_stop(&c->poll);
    c->watching = false;
  }
}

// The listener is readable: accept and read on this thread; complete
// requests go to the handlers now, inside a callback scope (microtasks and
// nextTicks run after, as for any I/O callback).
void ServerWrap::AcceptReady() {
  if (!server_) return;
  std::vector<CallerRequest> requests;
  ListenerTurn turn = server_->AcceptOnCaller(kCallerAcceptsPerWakeUp, &requests);
  if (!requests.empty()) {
    try {
      DeliverCallerRequests(requests);
    } catch (const Napi::Error&) {
      // JS cannot run any more (a worker terminated): the cleanup hook
      // stops the server, which drops these conversations.
    }
  }
  if (server_) ApplyTurn(turn);  // a handler may have torn the server down
}

void ServerWrap::DeliverCallerRequests(std::vector<CallerRequest>& requests) {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  Napi::CallbackScope callback_scope(env, *caller_loop_->context);
  Napi::Array flat = Napi::Array::New(env, requests.size() * kRequestFields);
  uint32_t k = 0;
  for (CallerRequest& r : requests) AppendRequest(env, flat, &k, r.id, std::move(r.request), r.peer);
  CallJsCallback(env, on_requests_, Value(), {flat});
}

// Stops watching and closes the copy of the listener; the handles close
// on the loop's next turn.
void ServerWrap::StopCallerAccept() {
  CallerLoop* c = caller_loop_;
  if (c == nullptr) return;
  caller_loop_ = nullptr;
  c->wrap = nullptr;
  c->context.reset();
  if (c->watching) uv_poll_stop(&c->poll);  // removes it from libuv's epoll set now
  uv_prepare_stop(&c->prepare);
  close(c->fd);
  auto closed = [](uv_handle_t* handle) {
    CallerLoop* loop = static_cast<CallerLoop*>(handle->data);
    if (--loop->open_handles == 0) delete loop;
  };
  uv_close(reinterpret_cast<uv_handle_t*>(&c->poll), closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&c->prepare), closed);
}
#else
void ServerWrap::StartCallerAccept(Napi::Env) {}
void ServerWrap::StopCallerAccept() {}
void ServerWrap::ApplyTurn(ListenerTurn) {}
void ServerWrap::AcceptReady() {}
void ServerWrap::DeliverCallerRequests(std::vector<CallerRequest>&) {}
#endif

// Environment teardown (process exit, worker thread exit): stop at once,
// without waiting for handlers that will never run again. The hook is
// being run, so Teardown must not remove it.
void ServerWrap::CleanupHook(void* arg) {
  ServerWrap* wrap = static_cast<ServerWrap*>(arg);
  wrap->cleanup_hook_added_ = false;
  wrap->state_ = State::kStopped;
  wrap->Teardown();
}

}  // namespace sipc
