#pragma once

#include <napi.h>

#include <memory>
#include <vector>

#include "../core/server.h"
#include "event_queue.h"

namespace sipc {

class ServerWrap : public Napi::ObjectWrap<ServerWrap>, public ServerDelegate {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit ServerWrap(const Napi::CallbackInfo& info);
  ~ServerWrap() override;

  // ServerDelegate: server threads.
  void OnRequest(ConnId id, ByteBuffer&& request, const PeerInfo& peer) override;
  void OnPeerCheck(ConnId id, const PeerInfo& peer) override;
  void OnWritten(ConnId id, const std::vector<uint64_t>& tokens) override;
  void OnReleased(ConnId id, const std::vector<uint64_t>& tokens) override;
  void OnConversationLost(ConnId id, const Status& why) override;
  void OnClientError(const Status& why, const PeerInfo& peer) override;
  void OnStopped(StopReason reason) override;

 private:
  struct Event;
  static void CallJs(Napi::Env env, Napi::Function, ServerWrap* wrap, std::nullptr_t*);
  using Tsfn = Napi::TypedThreadSafeFunction<ServerWrap, std::nullptr_t, &ServerWrap::CallJs>;
  enum class State { kNew, kStarting, kRunning, kStopping, kStopped };

  // JS thread only.
  Napi::Value Start(const Napi::CallbackInfo& info);
  Napi::Value ReplyCall(const Napi::CallbackInfo& info);
  Napi::Value WatchCall(const Napi::CallbackInfo& info);
  Napi::Value StatsCall(const Napi::CallbackInfo& info);
  Napi::Value AbortConversation(const Napi::CallbackInfo& info);
  Napi::Value AllowPeerCall(const Napi::CallbackInfo& info);
  Napi::Value PeerCall(const Napi::CallbackInfo& info);
  Napi::Value StopCall(const Napi::CallbackInfo& info);
  Napi::Value RefCall(const Napi::CallbackInfo& info);
  Napi::Value UnrefCall(const Napi::CallbackInfo& info);
  Napi::Value StopNowCall(const Napi::CallbackInfo& info);
  void Drain(Napi::Env env);
  bool DeliverRequests(Napi::Env env, std::vector<Event>& batch, size_t* next);
  bool DeliverOne(Napi::Env env, Event& e);
  void Teardown();
  static void CleanupHook(void* arg);

  // Accepting on the JS thread while it is idle
  // (docs/design.md#accepting-on-the-js-thread): libuv watches the
  // server's copy of the listener; serving threads take it over while the
  // JS thread is busy. JS thread only.
  struct CallerLoop;
  void StartCallerAccept(Napi::Env env);
  void StopCallerAccept();
  void ApplyTurn(ListenerTurn turn);
  void AcceptReady();
  void DeliverCallerRequests(std::vector<CallerRequest>& requests);
  CallerLoop* caller_loop_ = nullptr;

  // Any thread.
  void Post(Event&& event);

  ServerOptions options_;
  std::unique_ptr<Server> server_;  // JS thread
  State state_ = State::kNew;       // JS thread
  uint32_t pending_grace_ms_ = 0;
  ServerStats final_stats_;  // what stats() reports once stopped
  Tsfn tsfn_;
  EventQueue<Event> events_;
  Napi::ObjectReference self_ref_;
  bool cleanup_hook_added_ = false;
  Napi::FunctionReference on_requests_, on_peer_check_, on_written_, on_released_, on_lost_, on_client_error_,
      on_stopped_;
};

}  // namespace sipc
