// ServerWrap: the JS face of a native Server.
//
// Server threads report through ServerDelegate; the calls become events
// in an EventQueue that the JS thread drains from a thread-safe function
// callback. The JS thread answers with write/end/abort, which only queue
// bytes for the server's workers and never block.
//
// Lifetime: while the server runs, the wrapper holds a strong reference
// to itself (no GC) and the thread-safe function keeps the loop alive
// unless unref()'d. After OnStopped has been delivered, the server
// thread is joined and both are released. An environment cleanup hook
// stops the server when the environment (process or worker thread) ends.
#include "server_wrap.h"

#include <cstring>

#include "errors.h"
#include "js_bytes.h"

namespace sipc {

namespace {

enum class EventType { kRequest, kPeerCheck, kWritten, kReleased, kLost, kClientError, kStopped };

const char* StopReasonName(StopReason reason) {
  switch (reason) {
    case StopReason::kClosed:
      return "closed";
    case StopReason::kQuit:
      return "quit";
    case StopReason::kStolen:
      return "stolen";
    case StopReason::kError:
      return "error";
  }
  return "closed";
}

Napi::Value PeerToJs(Napi::Env env, const PeerInfo& peer) {
  Napi::Object obj = Napi::Object::New(env);
  obj.Set("pid", peer.pid >= 0 ? Napi::Number::New(env, static_cast<double>(peer.pid)) : env.Null());
  obj.Set("uid", peer.uid >= 0 ? Napi::Number::New(env, static_cast<double>(peer.uid)) : env.Null());
  obj.Set("gid", peer.gid >= 0 ? Napi::Number::New(env, static_cast<double>(peer.gid)) : env.Null());
  if (!peer.sid.empty()) obj.Set("sid", Napi::String::New(env, peer.sid));
  return obj;
}

// Bytes of a JS string, Buffer or Uint8Array argument, without copying
// typed arrays. `storage` keeps string bytes alive.
bool GetBytes(const Napi::Value& value, std::string* storage, const uint8_t** data, size_t* len) {
  if (value.IsUndefined() || value.IsNull()) {
    *data = nullptr;
    *len = 0;
    return true;
  }
  if (value.IsString()) {
    *storage = value.As<Napi::String>().Utf8Value();
    *data = reinterpret_cast<const uint8_t*>(storage->data());
    *len = storage->size();
    return true;
  }
  if (value.IsTypedArray()) {
    Napi::TypedArray ta = value.As<Napi::TypedArray>();
    if (ta.TypedArrayType() != napi_uint8_array) return false;
    Napi::Uint8Array u8 = value.As<Napi::Uint8Array>();
    *data = u8.Data();
    *len = u8.ByteLength();
    return true;
  }
  return false;
}

}  // namespace

struct ServerWrap::Event {
  explicit Event(EventType t) : type(t) {}
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
                         InstanceMethod<&ServerWrap::WriteChunk>("write"),
                         InstanceMethod<&ServerWrap::EndConversation>("end"),
                         InstanceMethod<&ServerWrap::WriteBorrowedCall>("writeBorrowed"),
                         InstanceMethod<&ServerWrap::EndBorrowedCall>("endBorrowed"),
                         InstanceMethod<&ServerWrap::AbortConversation>("abort"),
                         InstanceMethod<&ServerWrap::AllowPeerCall>("allowPeer"),
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
  options_.request_timeout_ms = opts.Get("requestTimeoutMs").As<Napi::Number>().Uint32Value();
  options_.max_connections = opts.Get("maxConnections").As<Napi::Number>().Uint32Value();
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

  on_request_ = Napi::Persistent(callbacks.Get("onRequest").As<Napi::Function>());
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
  state_ = State::kStarting;
  tsfn_ = Tsfn::New(env, Napi::Function(), "simple-ipc server", 0, 1, this);
  self_ref_ = Napi::Persistent(Value());
  napi_add_env_cleanup_hook(env, &ServerWrap::CleanupHook, this);
  cleanup_hook_added_ = true;

  class StartWorker : public Napi::AsyncWorker {
   public:
    StartWorker(Napi::Env env, ServerWrap* wrap)
        : Napi::AsyncWorker(env, "simple-ipc start"), wrap_(wrap), deferred_(Napi::Promise::Deferred::New(env)) {}
    void Execute() override { status_ = StartServer(wrap_->options_, wrap_, &server_); }
    void OnOK() override {
      Napi::Env env = Env();
      if (!status_.ok()) {
        wrap_->state_ = State::kStopped;
        wrap_->Teardown();
        deferred_.Reject(StatusToError(env, status_, wrap_->options_.path).Value());
        return;
      }
      wrap_->server_ = std::move(server_);
      if (wrap_->state_ == State::kStopping) {
        // stop() was called while starting.
        wrap_->server_->Stop(wrap_->pending_grace_ms_);
      } else {
        wrap_->state_ = State::kRunning;
      }
      // Events that came before server_ was set (a client that connected
      // while the server started) were left queued by Drain().
      wrap_->Drain(env);
      deferred_.Resolve(env.Undefined());
    }
    Napi::Promise Promise() { return deferred_.Promise(); }

   private:
    ServerWrap* wrap_;
    Napi::Promise::Deferred deferred_;
    Status status_;
    std::unique_ptr<Server> server_;
  };
  auto* worker = new StartWorker(env, this);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// write(id, chunk, token)
Napi::Value ServerWrap::WriteChunk(const Napi::CallbackInfo& info) {
  if (!server_) return info.Env().Undefined();
  std::string storage;
  const uint8_t* data;
  size_t len;
  if (!GetBytes(info[1], &storage, &data, &len)) throw Napi::TypeError::New(info.Env(), "chunk must be a string or Uint8Array");
  ConnId id = static_cast<ConnId>(info[0].As<Napi::Number>().Int64Value());
  uint64_t token = static_cast<uint64_t>(info[2].As<Napi::Number>().Int64Value());
  server_->Write(id, data, len, token);
  return info.Env().Undefined();
}

// end(id, lastChunk?, quit)
Napi::Value ServerWrap::EndConversation(const Napi::CallbackInfo& info) {
  if (!server_) return info.Env().Undefined();
  std::string storage;
  const uint8_t* data;
  size_t len;
  if (!GetBytes(info[1], &storage, &data, &len)) throw Napi::TypeError::New(info.Env(), "chunk must be a string or Uint8Array");
  ConnId id = static_cast<ConnId>(info[0].As<Napi::Number>().Int64Value());
  server_->End(id, data, len, info[2].ToBoolean());
  return info.Env().Undefined();
}

// writeBorrowed(id, u8, token) / endBorrowed(id, u8, quit, token): true
// when the server sends `u8` from its own memory; the JS side then keeps
// it referenced until `token` comes back through onWritten or onReleased.
Napi::Value ServerWrap::WriteBorrowedCall(const Napi::CallbackInfo& info) { return Borrow(info, false); }

Napi::Value ServerWrap::EndBorrowedCall(const Napi::CallbackInfo& info) { return Borrow(info, true); }

Napi::Value ServerWrap::Borrow(const Napi::CallbackInfo& info, bool end) {
  Napi::Env env = info.Env();
  if (!server_ || !info[1].IsTypedArray()) return Napi::Boolean::New(env, false);
  Napi::Uint8Array u8 = info[1].As<Napi::Uint8Array>();
  ConnId id = static_cast<ConnId>(info[0].As<Napi::Number>().Int64Value());
  uint64_t token = static_cast<uint64_t>(info[end ? 3 : 2].As<Napi::Number>().Int64Value());
  bool borrowed = end ? server_->EndBorrowed(id, u8.Data(), u8.ByteLength(), info[2].ToBoolean(), token)
                      : server_->WriteBorrowed(id, u8.Data(), u8.ByteLength(), token);
  return Napi::Boolean::New(env, borrowed);
}

Napi::Value ServerWrap::AbortConversation(const Napi::CallbackInfo& info) {
  if (server_) server_->Abort(static_cast<ConnId>(info[0].As<Napi::Number>().Int64Value()));
  return info.Env().Undefined();
}

Napi::Value ServerWrap::AllowPeerCall(const Napi::CallbackInfo& info) {
  if (server_) server_->AllowPeer(static_cast<ConnId>(info[0].As<Napi::Number>().Int64Value()), info[1].ToBoolean());
  return info.Env().Undefined();
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
  Event e(EventType::kWritten);
  e.id = id;
  e.tokens = tokens;
  Post(std::move(e));
}

void ServerWrap::OnReleased(ConnId id, const std::vector<uint64_t>& tokens) {
  Event e(EventType::kReleased);
  e.id = id;
  e.tokens = tokens;
  Post(std::move(e));
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

void ServerWrap::OnStopped(StopReason reason, const Status& error) {
  Event e(EventType::kStopped);
  e.reason = reason;
  e.status = error;
  Post(std::move(e));
}

// ---- JS thread ----

void ServerWrap::CallJs(Napi::Env env, Napi::Function, ServerWrap* wrap, std::nullptr_t*) {
  if (env == nullptr || wrap == nullptr) return;
  wrap->Drain(env);
}

void ServerWrap::Drain(Napi::Env env) {
  // The server's threads run before StartServer has returned to the JS
  // thread: until server_ is set, end()/write() would be lost, so leave
  // the events queued; Start's completion drains them.
  if (!server_) return;
  std::vector<Event> batch;
  events_.TakeAll(&batch);
  Napi::Object self = Value();
  for (size_t next = 0; next < batch.size(); next++) {
    Event& e = batch[next];
    Napi::HandleScope scope(env);
    bool delivered = true;
    switch (e.type) {
      case EventType::kRequest: {
        Napi::Buffer<uint8_t> request = CopyToJs(env, e.data.data(), e.data.size());
        e.data.Reset();
        delivered = CallJsCallback(env, on_request_, self,
                                   {Napi::Number::New(env, static_cast<double>(e.id)), request, PeerToJs(env, e.peer)});
        break;
      }
      case EventType::kPeerCheck:
        delivered = CallJsCallback(env, on_peer_check_, self,
                                   {Napi::Number::New(env, static_cast<double>(e.id)), PeerToJs(env, e.peer)});
        break;
      case EventType::kWritten:
      case EventType::kReleased: {
        Napi::Array tokens = Napi::Array::New(env, e.tokens.size());
        for (size_t i = 0; i < e.tokens.size(); i++) {
          tokens.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(e.tokens[i])));
        }
        Napi::FunctionReference& callback = e.type == EventType::kWritten ? on_written_ : on_released_;
        delivered = CallJsCallback(env, callback, self, {Napi::Number::New(env, static_cast<double>(e.id)), tokens});
        break;
      }
      case EventType::kLost:
        delivered = CallJsCallback(env, on_lost_, self,
                                   {Napi::Number::New(env, static_cast<double>(e.id)),
                                    StatusToError(env, e.status, options_.path).Value()});
        break;
      case EventType::kClientError:
        delivered = CallJsCallback(env, on_client_error_, self,
                                   {StatusToError(env, e.status, options_.path).Value(), PeerToJs(env, e.peer)});
        break;
      case EventType::kStopped: {
        // The server thread is about to exit: join it, then let go.
        state_ = State::kStopped;
        if (server_) server_->Join();
        server_.reset();
        Napi::Value reason = Napi::String::New(env, StopReasonName(e.reason));
        Teardown();
        CallJsCallback(env, on_stopped_, self, {reason});
        return;  // nothing can follow OnStopped
      }
    }
    if (!delivered) {
      // A callback threw (now an uncaught exception), or the environment is
      // going away. Keep the rest for the next drain, in order.
      std::vector<Event> rest;
      for (size_t k = next + 1; k < batch.size(); k++) rest.push_back(std::move(batch[k]));
      events_.PutBack(std::move(rest), [this] { tsfn_.NonBlockingCall(); });
      return;
    }
  }
}

// Releases the thread-safe function, the self reference and the cleanup
// hook. JS thread; idempotent. The server must be stopped (or never
// started).
void ServerWrap::Teardown() {
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

// Environment teardown (process exit, worker thread exit): stop at once,
// without waiting for handlers that will never run again.
void ServerWrap::CleanupHook(void* arg) {
  ServerWrap* wrap = static_cast<ServerWrap*>(arg);
  wrap->cleanup_hook_added_ = false;
  if (wrap->server_) {
    wrap->server_->Stop(0);
    wrap->server_->Join();
    wrap->server_.reset();
  }
  wrap->events_.Close();
  if (wrap->tsfn_) {
    wrap->tsfn_.Release();
    wrap->tsfn_ = Tsfn();
  }
  wrap->state_ = State::kStopped;
}

}  // namespace sipc
