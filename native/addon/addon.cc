// Module entry point. Context-aware: every environment (main thread,
// worker thread) gets its own instance, with its own async client thread.
#include <napi.h>

#include <memory>
#include <unordered_map>

#include "../core/client.h"
#include "../core/pkt_line.h"
#include "errors.h"
#include "event_queue.h"
#include "js_bytes.h"
#include "server_wrap.h"

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
  return options;
}

// Raw request bytes from a string or Uint8Array, framed as a message.
std::vector<uint8_t> FramedRequest(const Napi::Value& value) {
  std::vector<uint8_t> framed;
  if (value.IsString()) {
    std::string s = value.As<Napi::String>().Utf8Value();
    pkt::AppendMessage(reinterpret_cast<const uint8_t*>(s.data()), s.size(), &framed);
  } else if (value.IsTypedArray()) {
    Napi::Uint8Array u8 = value.As<Napi::Uint8Array>();
    pkt::AppendMessage(u8.Data(), u8.ByteLength(), &framed);
  } else {
    throw Napi::TypeError::New(value.Env(), "request must be a string or Uint8Array");
  }
  return framed;
}

struct ClientEvent {
  enum Type { kChunk, kConnected, kComplete };
  ClientEvent(Type t, uint64_t i) : type(t), id(i) {}
  Type type;
  uint64_t id;
  ByteBuffer data;
  ClientResult result;
  std::vector<uint8_t> chunk;
};

class Addon : public Napi::Addon<Addon>, public ClientDelegate {
 public:
  Addon(Napi::Env env, Napi::Object exports) {
    DefineAddon(exports, {
                             InstanceMethod<&Addon::SendCommandSync>("sendCommandSync"),
                             InstanceMethod<&Addon::GetActiveStateSync>("getActiveStateSync"),
                             InstanceMethod<&Addon::GetActiveStateAsync>("getActiveState"),
                             InstanceMethod<&Addon::SetClientCallbacks>("setClientCallbacks"),
                             InstanceMethod<&Addon::ClientStart>("clientStart"),
                             InstanceMethod<&Addon::ClientConnect>("clientConnect"),
                             InstanceMethod<&Addon::ClientSend>("clientSend"),
                             InstanceMethod<&Addon::ClientCancel>("clientCancel"),
                         });
    exports.Set("NativeServer", ServerWrap::Init(env));
    exports.Set("maxPayload", Napi::Number::New(env, static_cast<double>(pkt::kMaxPayload)));
  }

  ~Addon() override { ShutdownClient(); }

  // ClientDelegate: client I/O thread.
  void OnChunk(uint64_t id, std::vector<uint8_t>&& chunk) override {
    ClientEvent e(ClientEvent::kChunk, id);
    e.chunk = std::move(chunk);
    PostClient(std::move(e));
  }
  void OnConnected(uint64_t id) override { PostClient(ClientEvent(ClientEvent::kConnected, id)); }
  void OnComplete(uint64_t id, const ClientResult& result, ByteBuffer&& response) override {
    ClientEvent e(ClientEvent::kComplete, id);
    e.data = std::move(response);
    e.result = result;
    PostClient(std::move(e));
  }

 private:
  static void CallJs(Napi::Env env, Napi::Function, Addon* addon, std::nullptr_t*) {
    if (env == nullptr || addon == nullptr) return;
    addon->DrainClient(env);
  }
  using Tsfn = Napi::TypedThreadSafeFunction<Addon, std::nullptr_t, &Addon::CallJs>;

  void PostClient(ClientEvent&& e) {
    client_events_.Push(std::move(e), [this] { tsfn_.NonBlockingCall(); });
  }

  // JS thread.
  void DrainClient(Napi::Env env) {
    std::vector<ClientEvent> batch;
    client_events_.TakeAll(&batch);
    Napi::Value recv = env.Undefined();
    for (size_t next = 0; next < batch.size(); next++) {
      ClientEvent& e = batch[next];
      Napi::HandleScope scope(env);
      Napi::Number id = Napi::Number::New(env, static_cast<double>(e.id));
      bool delivered = true;
      switch (e.type) {
        case ClientEvent::kChunk:
          delivered = CallJsCallback(env, on_chunk_, recv, {id, CopyToJs(env, e.chunk.data(), e.chunk.size())});
          break;
        case ClientEvent::kConnected:
          delivered = CallJsCallback(env, on_connected_, recv, {id});
          break;
        case ClientEvent::kComplete: {
          auto it = paths_.find(e.id);
          std::string path;
          if (it != paths_.end()) {
            path = std::move(it->second);
            paths_.erase(it);
          }
          ExchangeEnded(env);
          if (e.result.status.ok()) {
            Napi::Buffer<uint8_t> response = CopyToJs(env, e.data.data(), e.data.size());
            e.data.Reset();
            delivered = CallJsCallback(env, on_complete_, recv, {id, env.Null(), response});
          } else {
            delivered = CallJsCallback(env, on_complete_, recv, {id, ClientResultToError(env, e.result, path).Value()});
          }
          break;
        }
      }
      if (!delivered) {
        // A callback threw (now an uncaught exception), or the environment
        // is going away: keep the rest for the next drain, in order.
        std::vector<ClientEvent> rest;
        for (size_t k = next + 1; k < batch.size(); k++) rest.push_back(std::move(batch[k]));
        client_events_.PutBack(std::move(rest), [this] { tsfn_.NonBlockingCall(); });
        return;
      }
    }
  }

  void EnsureClient(Napi::Env env) {
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
    // Added after the thread-safe function's own hook, so it runs first
    // (hooks run in reverse order): the client thread is joined while the
    // function is still valid.
    napi_add_env_cleanup_hook(env, &Addon::CleanupHook, this);
  }

  static void CleanupHook(void* arg) { static_cast<Addon*>(arg)->ShutdownClient(); }

  // Environment teardown. Idempotent.
  void ShutdownClient() {
    if (!client_) return;
    client_->Shutdown();
    client_.reset();
    client_events_.Close();
    tsfn_.Release();
    tsfn_ = Tsfn();
  }

  void ExchangeStarted(Napi::Env env) {
    if (outstanding_++ == 0) tsfn_.Ref(env);
  }
  void ExchangeEnded(Napi::Env env) {
    if (outstanding_ > 0 && --outstanding_ == 0) tsfn_.Unref(env);
  }

  Napi::Value SetClientCallbacks(const Napi::CallbackInfo& info) {
    Napi::Object cb = info[0].As<Napi::Object>();
    on_chunk_ = Napi::Persistent(cb.Get("onChunk").As<Napi::Function>());
    on_connected_ = Napi::Persistent(cb.Get("onConnected").As<Napi::Function>());
    on_complete_ = Napi::Persistent(cb.Get("onComplete").As<Napi::Function>());
    return info.Env().Undefined();
  }

  // clientStart(id, path, request, options, stream). A large Uint8Array
  // is sent from its own memory, without a copy: the JS side keeps it
  // referenced until the exchange completes (as fs.write does).
  Napi::Value ClientStart(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    EnsureClient(env);
    uint64_t id = static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value());
    std::string path = info[1].As<Napi::String>().Utf8Value();
    ClientOptions options = ParseClientOptions(info[3]);
    bool stream = info[4].ToBoolean();
    if (info[2].IsTypedArray() && info[2].As<Napi::Uint8Array>().ByteLength() >= kBorrowThreshold) {
      Napi::Uint8Array u8 = info[2].As<Napi::Uint8Array>();
      paths_[id] = path;
      ExchangeStarted(env);
      client_->StartBorrowed(id, path, u8.Data(), u8.ByteLength(), options, stream);
      return env.Undefined();
    }
    std::vector<uint8_t> framed = FramedRequest(info[2]);
    paths_[id] = path;
    ExchangeStarted(env);
    client_->Start(id, path, std::move(framed), options, stream);
    return env.Undefined();
  }

  // Below this a copy costs less than the bookkeeping of borrowing.
  static constexpr size_t kBorrowThreshold = 64 * 1024;

  // clientConnect(id, path, options)
  Napi::Value ClientConnect(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    EnsureClient(env);
    uint64_t id = static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value());
    std::string path = info[1].As<Napi::String>().Utf8Value();
    paths_[id] = path;
    ExchangeStarted(env);
    client_->StartConnect(id, path, ParseClientOptions(info[2]));
    return env.Undefined();
  }

  // clientSend(id, request, stream)
  Napi::Value ClientSend(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    EnsureClient(env);
    uint64_t id = static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value());
    client_->Send(id, FramedRequest(info[1]), info[2].ToBoolean());
    return env.Undefined();
  }

  // clientCancel(id, reason: 'abort' | 'timeout')
  Napi::Value ClientCancel(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!client_) return env.Undefined();
    uint64_t id = static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value());
    std::string reason = info[1].As<Napi::String>().Utf8Value();
    Status why = reason == "timeout" ? Status::Lib(LibCode::kTimeout) : Status::Lib(LibCode::kAborted, "cancelled");
    client_->Cancel(id, why);
    return env.Undefined();
  }

  // sendCommandSync(path, request, options): Buffer
  Napi::Value SendCommandSync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string path = info[0].As<Napi::String>().Utf8Value();
    std::string storage;
    const uint8_t* data = nullptr;
    size_t len = 0;
    if (info[1].IsString()) {
      storage = info[1].As<Napi::String>().Utf8Value();
      data = reinterpret_cast<const uint8_t*>(storage.data());
      len = storage.size();
    } else if (info[1].IsTypedArray()) {
      Napi::Uint8Array u8 = info[1].As<Napi::Uint8Array>();
      data = u8.Data();
      len = u8.ByteLength();
    } else {
      throw Napi::TypeError::New(env, "request must be a string or Uint8Array");
    }
    ByteBuffer response;
    ClientResult result = sipc::SendCommandSync(path, data, len, ParseClientOptions(info[2]), &response);
    if (!result.status.ok()) throw ClientResultToError(env, result, path);
    return CopyToJs(env, response.data(), response.size());
  }

  Napi::Value GetActiveStateSync(const Napi::CallbackInfo& info) {
    std::string path = info[0].As<Napi::String>().Utf8Value();
    return Napi::String::New(info.Env(), ActiveStateName(GetActiveState(path)));
  }

  Napi::Value GetActiveStateAsync(const Napi::CallbackInfo& info) {
    class Worker : public Napi::AsyncWorker {
     public:
      Worker(Napi::Env env, std::string path)
          : Napi::AsyncWorker(env, "simple-ipc getActiveState"),
            path_(std::move(path)),
            deferred_(Napi::Promise::Deferred::New(env)) {}
      void Execute() override { state_ = GetActiveState(path_); }
      void OnOK() override { deferred_.Resolve(Napi::String::New(Env(), ActiveStateName(state_))); }
      Napi::Promise Promise() { return deferred_.Promise(); }

     private:
      std::string path_;
      Napi::Promise::Deferred deferred_;
      ActiveState state_ = ActiveState::kOtherError;
    };
    auto* worker = new Worker(info.Env(), info[0].As<Napi::String>().Utf8Value());
    Napi::Promise promise = worker->Promise();
    worker->Queue();
    return promise;
  }

  std::unique_ptr<AsyncClient> client_;
  Tsfn tsfn_;
  EventQueue<ClientEvent> client_events_;
  size_t outstanding_ = 0;
  std::unordered_map<uint64_t, std::string> paths_;  // for error `address`
  Napi::FunctionReference on_chunk_, on_connected_, on_complete_;
};

}  // namespace

}  // namespace sipc

using SimpleIpcAddon = sipc::Addon;
NODE_API_ADDON(SimpleIpcAddon)
