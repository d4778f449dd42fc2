// ClientWrap: the asynchronous and synchronous clients for one JS
// environment (main thread or worker), exported as plain functions
// (clientStart, clientConnect, clientSend, clientCancel, clientPause,
// clientResume, sendCommandSync, getActiveState[Sync]).
//
// Threads: every method is called on the JS thread, except the
// ClientDelegate callbacks, which come from the AsyncClient's I/O thread
// (or from the JS thread itself, inside a Start() call, when an exchange
// ends at once) and only queue an event. Events reach JS in batches, one
// thread-safe-function call per batch, so a completion always settles its
// promise asynchronously, never inside the call that started it.
// Exchanges that finish on the JS thread's side (POSIX,
// docs/design.md#client) are completed by a uv_poll_t callback on the JS
// loop and delivered right there, without the queue: a loop turn after
// the call that started them, never inside it.
#pragma once

#include <napi.h>

#include <memory>
#include <vector>

#include "../core/client.h"
#include "event_queue.h"

namespace sipc {

class ClientWrap : public ClientDelegate {
 public:
  explicit ClientWrap(Napi::Env env);
  ~ClientWrap() override;
  ClientWrap(const ClientWrap&) = delete;
  ClientWrap& operator=(const ClientWrap&) = delete;

  // JS thread: adds the client functions to `exports`.
  void Export(Napi::Object exports);

  // ClientDelegate: I/O thread (or the JS thread inside Start()).
  void OnChunk(uint64_t id, ByteBuffer&& chunk, const std::shared_ptr<StreamLedger>& ledger) override;
  void OnConnected(uint64_t id) override;
  void OnComplete(uint64_t id, const ClientResult& result, ByteBuffer&& response) override;

 private:
  struct Event {
    enum Type { kChunk, kConnected, kComplete };
    Event(Type t, uint64_t i) : type(t), id(i) {}
    Type type;
    uint64_t id;
    ByteBuffer data;  // chunk or whole response
    std::shared_ptr<StreamLedger> ledger;  // kChunk: told when JS has taken it
    ClientResult result;
  };

  static void CallJs(Napi::Env env, Napi::Function, ClientWrap* self, std::nullptr_t*);
  using Tsfn = Napi::TypedThreadSafeFunction<ClientWrap, std::nullptr_t, &ClientWrap::CallJs>;

  void Post(Event&& e);
  void Drain(Napi::Env env);
  bool Deliver(Napi::Env env, Event& e);
  bool DeliverChunk(Napi::Env env, Event& e);
  void EnsureStarted(Napi::Env env);
  static void CleanupHook(void* arg);
  void Shutdown();
  void ExchangeStarted();
  void ExchangeEnded();
  void WatchCallerSide(Napi::Env env);
  void StopWatchingCallerSide();
  void CompleteOnCaller();
  void DeliverCompletions();

  Napi::Value SetCallbacks(const Napi::CallbackInfo& info);
  Napi::Value Start(const Napi::CallbackInfo& info);
  Napi::Value Connect(const Napi::CallbackInfo& info);
  Napi::Value Send(const Napi::CallbackInfo& info);
  Napi::Value Cancel(const Napi::CallbackInfo& info);
  Napi::Value Pause(const Napi::CallbackInfo& info);
  Napi::Value Resume(const Napi::CallbackInfo& info);
  Napi::Value SendSync(const Napi::CallbackInfo& info);
  Napi::Value GetActiveStateSync(const Napi::CallbackInfo& info);
  Napi::Value GetActiveStateAsync(const Napi::CallbackInfo& info);

  Napi::Env env_;
  std::unique_ptr<AsyncClient> client_;  // JS thread; null until first use
  Tsfn tsfn_;
  EventQueue<Event> events_;
  size_t outstanding_ = 0;  // exchanges started, not yet reported complete
  bool hook_added_ = false;
  bool in_cleanup_hook_ = false;
  Napi::FunctionReference on_chunk_, on_connected_, on_complete_;
  // JS thread: the uv_poll_t (a uv_poll_t*, opaque here) on the client's
  // caller_fd(), and the async context its deliveries run in.
  void* caller_watch_ = nullptr;
  std::unique_ptr<Napi::AsyncContext> caller_context_;
  std::vector<AsyncClient::Completion> completions_;  // JS thread: reused by CompleteOnCaller()
};

}  // namespace sipc
