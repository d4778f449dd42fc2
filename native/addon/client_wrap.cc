#include "client_wrap.h"

#include <string>
#include <utility>

#ifndef _WIN32
#include <uv.h>
#endif

#include "../core/byte_buffer.h"
#include "errors.h"
#include "js_bytes.h"
#include "js_callback.h"
#include "promise_work.h"

namespace sipc {

namespace {

ClientOptions ParseClientOptions(const Napi::Value& value) {
  ClientOptions options;
  if (!value.IsObject()) return options;
  Napi::Object obj = value.As<Napi::Object>();
  options.wait_if_busy = obj.Get("waitIfBusy").ToBoolean();
  options.wait_if_not_found = obj.Get("waitIfNotFound").ToBoolean();
  options.connect_timeout_ms = obj.Get("connectTimeoutMs").As<Napi::Number>().Uint32Value();
  Napi::Value timeout = obj.Get("timeoutMs");
  options.timeout_ms = timeout.IsNumber() ? timeout.As<Napi::Number>().Int64Value() : -1;
  // Checked by lib/options.ts: a safe integer, 'self' or a uid.
  Napi::Value max_response = obj.Get("maxResponseBytes");
  if (max_response.IsNumber()) options.max_response_bytes = static_cast<uint64_t>(max_response.As<Napi::Number>().Int64Value());
  Napi::Value server_uid = obj.Get("serverUid");
  if (server_uid.IsString()) {
    options.server_identity = ServerIdentity::kSelf;
  } else if (server_uid.IsNumber()) {
    options.server_identity = ServerIdentity::kUid;
    options.server_uid = server_uid.As<Napi::Number>().Uint32Value();
  }
  return options;
}

uint64_t IdArg(const Napi::Value& value) { return static_cast<uint64_t>(value.As<Napi::Number>().Int64Value()); }

}  // namespace

ClientWrap::ClientWrap(Napi::Env env) : env_(env) {}

ClientWrap::~ClientWrap() { Shutdown(); }

void ClientWrap::Export(Napi::Object exports) {
  Napi::Env env = exports.Env();
  auto bind = [&](const char* name, Napi::Value (ClientWrap::*method)(const Napi::CallbackInfo&)) {
    exports.Set(name, Napi::Function::New(
                          env, [this, method](const Napi::CallbackInfo& info) { return (this->*method)(info); }, name));
  };
  bind("setClientCallbacks", &ClientWrap::SetCallbacks);
  bind("clientStart", &ClientWrap::Start);
  bind("clientConnect", &ClientWrap::Connect);
  bind("clientSend", &ClientWrap::Send);
  bind("clientCancel", &ClientWrap::Cancel);
  bind("clientPause", &ClientWrap::Pause);
  bind("clientResume", &ClientWrap::Resume);
  bind("sendCommandSync", &ClientWrap::SendSync);
  bind("getActiveStateSync", &ClientWrap::GetActiveStateSync);
  bind("getActiveState", &ClientWrap::GetActiveStateAsync);
  exports.Set("borrowThreshold", Napi::Number::New(env, static_cast<double>(kBorrowThreshold)));
}

// ---- events from the I/O thread ---------------------------------------------

void ClientWrap::OnChunk(uint64_t id, ByteBuffer&& chunk, const std::shared_ptr<StreamLedger>& ledger) {
  Event e(Event::kChunk, id);
  e.data = std::move(chunk);
  e.ledger = ledger;
  Post(std::move(e));
}

void ClientWrap::OnConnected(uint64_t id) { Post(Event(Event::kConnected, id)); }

void ClientWrap::OnComplete(uint64_t id, const ClientResult& result, ByteBuffer&& response) {
  Event e(Event::kComplete, id);
  e.data = std::move(response);
  e.result = result;
  Post(std::move(e));
}

void ClientWrap::Post(Event&& e) {
  events_.Push(std::move(e), [this] { tsfn_.NonBlockingCall(); });
}

void ClientWrap::CallJs(Napi::Env env, Napi::Function, ClientWrap* self, std::nullptr_t*) {
  if (env == nullptr || self == nullptr) return;
  self->Drain(env);
}

// JS thread: delivers every queued event, in order.
void ClientWrap::Drain(Napi::Env env) {
  std::vector<Event> batch;
  events_.TakeAll(&batch);
  for (size_t next = 0; next < batch.size(); next++) {
    Napi::HandleScope scope(env);
    if (Deliver(env, batch[next])) continue;
    // The environment is going away (a callback that throws does not get
    // here: CallJsCallback reports it as an uncaught exception and the
    // drain goes on): keep the rest for the next drain, in order.
    std::vector<Event> rest;
    for (size_t k = next + 1; k < batch.size(); k++) rest.push_back(std::move(batch[k]));
    events_.PutBack(std::move(rest), [this] { tsfn_.NonBlockingCall(); });
    return;
  }
}

// JS thread. False when JS did not run the callback to its end.
bool ClientWrap::Deliver(Napi::Env env, Event& e) {
  Napi::Number id = Napi::Number::New(env, static_cast<double>(e.id));
  napi_value recv = env.Undefined();
  switch (e.type) {
    case Event::kChunk:
      return DeliverChunk(env, e);
    case Event::kConnected:
      return CallJsCallback(env, on_connected_, recv, {id});
    case Event::kComplete:
      ExchangeEnded();
      if (e.result.status.ok()) {
        return CallJsCallback(env, on_complete_, recv, {id, env.Null(), ToJsBuffer(env, std::move(e.data))});
      }
      return CallJsCallback(env, on_complete_, recv,
                            {id, ClientResultToError(env, e.result, e.result.address).Value()});
  }
  return true;
}

// JS thread. Once JS has the chunk (lib/client.ts queues it and applies its
// own pause from there), it no longer counts towards the exchange's
// hand-over bound; the exchange is woken if it stopped for that bound.
bool ClientWrap::DeliverChunk(Napi::Env env, Event& e) {
  size_t size = e.data.size();
  bool ran = CallJsCallback(env, on_chunk_, env.Undefined(),
                            {Napi::Number::New(env, static_cast<double>(e.id)), ToJsBuffer(env, std::move(e.data))});
  if (e.ledger->Taken(size) && client_) client_->ChunksTaken(e.id);
  return ran;
}

// ---- the JS thread's side (POSIX) -------------------------------------------

// JS thread, once per client: one uv_poll_t on the client's caller_fd(),
// unreferenced (outstanding exchanges keep the loop alive through the
// thread-safe function's reference). If it cannot be set up, the client
// never uses that side and every exchange finishes on the I/O thread.
void ClientWrap::WatchCallerSide(Napi::Env env) {
#ifndef _WIN32
  int fd = client_->caller_fd();
  if (fd < 0) return;
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) return;
  auto* watch = new uv_poll_t;
  if (uv_poll_init(loop, watch, fd) != 0) {
    delete watch;  // never initialized: nothing to close
    return;
  }
  watch->data = this;
  caller_context_.reset(new Napi::AsyncContext(env, "simple-ipc client"));
  uv_poll_start(watch, UV_READABLE, [](uv_poll_t* handle, int, int) {
    static_cast<ClientWrap*>(handle->data)->CompleteOnCaller();
  });
  uv_unref(reinterpret_cast<uv_handle_t*>(watch));
  caller_watch_ = watch;
  client_->UseCallerSide();
#else
  (void)env;
#endif
}

// JS thread: before the client shuts down. The handle's memory goes in
// its close callback.
void ClientWrap::StopWatchingCallerSide() {
#ifndef _WIN32
  if (caller_watch_ == nullptr) return;
  auto* watch = static_cast<uv_poll_t*>(caller_watch_);
  caller_watch_ = nullptr;
  uv_poll_stop(watch);
  uv_close(reinterpret_cast<uv_handle_t*>(watch), [](uv_handle_t* handle) { delete reinterpret_cast<uv_poll_t*>(handle); });
#endif
}

// JS thread (uv_poll callback): finishes the exchanges whose responses
// are in and settles their promises here, in one callback scope, so that
// promise reactions run once after the batch, as after a drain. Outside
// any JS call, so nothing may throw out of here: when the environment
// cannot run JS any more (a worker being terminated, teardown), the
// scopes do not open and the completions are dropped with it.
void ClientWrap::CompleteOnCaller() {
  if (!client_) return;
  completions_.clear();
  client_->CompleteOnCaller(&completions_);
  if (completions_.empty()) return;
  napi_handle_scope handle_scope;
  if (napi_open_handle_scope(env_, &handle_scope) != napi_ok) return;
  napi_value resource;
  napi_callback_scope callback_scope;
  if (napi_create_object(env_, &resource) == napi_ok &&
      napi_open_callback_scope(env_, resource, *caller_context_, &callback_scope) == napi_ok) {
    DeliverCompletions();
    napi_close_callback_scope(env_, callback_scope);
  }
  napi_close_handle_scope(env_, handle_scope);
  completions_.clear();
}

// Inside CompleteOnCaller()'s scopes.
void ClientWrap::DeliverCompletions() {
  try {
    for (AsyncClient::Completion& c : completions_) {
      Event e(Event::kComplete, c.id);
      e.data = std::move(c.response);
      e.result = std::move(c.result);
      Napi::HandleScope event_scope(env_);
      if (!Deliver(env_, e)) return;  // the environment is going away
    }
  } catch (const Napi::Error&) {
    // A value could not be made: JS cannot run any more (see above).
    bool pending = false;
    napi_is_exception_pending(env_, &pending);
    napi_value ignored;
    if (pending) napi_get_and_clear_last_exception(env_, &ignored);
  }
}

// ---- lifetime -----------------------------------------------------------------

// JS thread: starts the I/O thread on first use.
void ClientWrap::EnsureStarted(Napi::Env env) {
  if (client_) return;
  if (on_complete_.IsEmpty()) throw Napi::Error::New(env, "setClientCallbacks() must be called first");
  tsfn_ = Tsfn::New(env, Napi::Function(), "simple-ipc client", 0, 1, this);
  tsfn_.Unref(env);  // only outstanding exchanges keep the loop alive
  client_ = CreateAsyncClient(this);
  if (!client_) {
    tsfn_.Release();
    tsfn_ = Tsfn();
    throw Napi::Error::New(env, "could not start the simple-ipc client thread");
  }
  WatchCallerSide(env);
  // Added after the thread-safe function's own hook, so it runs first
  // (hooks run in reverse order): the I/O thread is joined while the
  // function is still valid.
  if (!hook_added_) {
    napi_add_env_cleanup_hook(env, &ClientWrap::CleanupHook, this);
    hook_added_ = true;
  }
}

void ClientWrap::CleanupHook(void* arg) {
  auto* self = static_cast<ClientWrap*>(arg);
  self->in_cleanup_hook_ = true;
  self->Shutdown();
}

// JS thread: environment teardown (cleanup hook) or the addon's end,
// whichever comes first. Idempotent. No delegate call after it.
void ClientWrap::Shutdown() {
  if (hook_added_ && !in_cleanup_hook_) napi_remove_env_cleanup_hook(env_, &ClientWrap::CleanupHook, this);
  hook_added_ = false;
  if (!client_) return;
  StopWatchingCallerSide();
  client_->Shutdown();
  client_.reset();
  caller_context_.reset();
  events_.Close();
  tsfn_.Release();
  tsfn_ = Tsfn();
}

void ClientWrap::ExchangeStarted() {
  if (outstanding_++ == 0) tsfn_.Ref(env_);
}

void ClientWrap::ExchangeEnded() {
  if (outstanding_ > 0 && --outstanding_ == 0) tsfn_.Unref(env_);
}

// ---- the JS surface ---------------------------------------------------------

Napi::Value ClientWrap::SetCallbacks(const Napi::CallbackInfo& info) {
  Napi::Object cb = info[0].As<Napi::Object>();
  on_chunk_ = Napi::Persistent(cb.Get("onChunk").As<Napi::Function>());
  on_connected_ = Napi::Persistent(cb.Get("onConnected").As<Napi::Function>());
  on_complete_ = Napi::Persistent(cb.Get("onComplete").As<Napi::Function>());
  return info.Env().Undefined();
}

// clientStart(id, path, request, options, stream). A request of
// borrowThreshold bytes and more is sent from its own memory, without a
// copy: the JS side keeps it referenced until the exchange completes (as
// fs.write does). A smaller one is sent from its memory during this call
// when the kernel takes it at once, and copied only otherwise.
Napi::Value ClientWrap::Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  EnsureStarted(env);
  uint64_t id = IdArg(info[0]);
  std::string path = info[1].As<Napi::String>().Utf8Value();
  JsBytes request(info[2], "request");
  ClientOptions options = ParseClientOptions(info[3]);
  bool stream = info[4].ToBoolean();
  ExchangeStarted();
  bool borrowed = request.borrowed() && request.size() >= kBorrowThreshold;
  client_->Start(id, path,
                 borrowed ? ClientRequest::Borrowed(request.data(), request.size())
                          : ClientRequest::Transient(request.data(), request.size()),
                 options, stream);
  return env.Undefined();
}

// clientConnect(id, path, options)
Napi::Value ClientWrap::Connect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  EnsureStarted(env);
  uint64_t id = IdArg(info[0]);
  ExchangeStarted();
  client_->Start(id, info[1].As<Napi::String>().Utf8Value(), ClientRequest::None(), ParseClientOptions(info[2]), false);
  return env.Undefined();
}

// clientSend(id, request): the request of a clientConnect exchange (never
// a stream).
Napi::Value ClientWrap::Send(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  EnsureStarted(env);
  JsBytes request(info[1], "request");
  client_->Send(IdArg(info[0]), request.data(), request.size());
  return env.Undefined();
}

// clientCancel(id, reason: 'abort' | 'timeout')
Napi::Value ClientWrap::Cancel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!client_) return env.Undefined();
  std::string reason = info[1].As<Napi::String>().Utf8Value();
  Status why = reason == "timeout" ? Status::Lib(LibCode::kTimeout) : Status::Lib(LibCode::kAborted);
  client_->Cancel(IdArg(info[0]), why);
  return env.Undefined();
}

// clientPause(id): a stream's consumer fell behind.
Napi::Value ClientWrap::Pause(const Napi::CallbackInfo& info) {
  if (client_) client_->Pause(IdArg(info[0]));
  return info.Env().Undefined();
}

// clientResume(id): it caught up.
Napi::Value ClientWrap::Resume(const Napi::CallbackInfo& info) {
  if (client_) client_->Resume(IdArg(info[0]));
  return info.Env().Undefined();
}

// sendCommandSync(path, request, options): Buffer. Blocks the JS thread.
Napi::Value ClientWrap::SendSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  JsBytes request(info[1], "request");
  ByteBuffer response;
  ClientResult result = SendCommandSync(path, request.data(), request.size(), ParseClientOptions(info[2]), &response);
  if (!result.status.ok()) throw ClientResultToError(env, result, path);
  return ToJsBuffer(env, std::move(response));
}

Napi::Value ClientWrap::GetActiveStateSync(const Napi::CallbackInfo& info) {
  std::string path = info[0].As<Napi::String>().Utf8Value();
  return Napi::String::New(info.Env(), ActiveStateName(GetActiveState(path)));
}

Napi::Value ClientWrap::GetActiveStateAsync(const Napi::CallbackInfo& info) {
  std::string path = info[0].As<Napi::String>().Utf8Value();
  return QueuePromiseWork(
      info.Env(), "simple-ipc getActiveState", [path] { return GetActiveState(path); },
      [](Napi::Env env, Napi::Promise::Deferred& deferred, ActiveState state) {
        deferred.Resolve(Napi::String::New(env, ActiveStateName(state)));
      });
}

}  // namespace sipc
