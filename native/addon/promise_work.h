// QueuePromiseWork: the one way the addon runs blocking work off the JS
// thread and settles a promise with its result.
//
//   Napi::Promise p = QueuePromiseWork(env, "simple-ipc getActiveState",
//       [path] { return GetActiveState(path); },                  // pool thread
//       [](Napi::Env env, Napi::Promise::Deferred& d, ActiveState s) {  // JS thread
//         d.Resolve(Napi::String::New(env, ActiveStateName(s)));
//       });
//
// Threads: `work` runs on a libuv pool thread and must not touch JS
// values; `settle` runs on the JS thread afterwards and must resolve or
// reject the deferred. A JS exception thrown by `settle` rejects the
// promise instead of escaping as an uncaught exception; so does a C++
// exception thrown by `work` (as an Error with its what()).
#pragma once

#include <napi.h>

#include <exception>
#include <type_traits>
#include <utility>

namespace sipc {

namespace detail {

template <typename Work, typename Settle>
class PromiseWorker : public Napi::AsyncWorker {
 public:
  using Result = std::decay_t<std::invoke_result_t<Work&>>;

  PromiseWorker(Napi::Env env, const char* name, Work&& work, Settle&& settle)
      : Napi::AsyncWorker(env, name),
        work_(std::forward<Work>(work)),
        settle_(std::forward<Settle>(settle)),
        deferred_(Napi::Promise::Deferred::New(env)) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  // Pool thread.
  void Execute() override {
    try {
      result_ = work_();
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }

  // JS thread.
  void OnOK() override {
    Napi::Env env = Env();
    try {
      settle_(env, deferred_, std::move(result_));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }

  // JS thread: `work` threw.
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  std::decay_t<Work> work_;
  std::decay_t<Settle> settle_;
  Napi::Promise::Deferred deferred_;
  Result result_{};
};

}  // namespace detail

// JS thread. Queues `work` on libuv's pool; the returned promise settles
// through `settle(env, deferred, result)`. The worker deletes itself.
template <typename Work, typename Settle>
Napi::Promise QueuePromiseWork(Napi::Env env, const char* name, Work&& work, Settle&& settle) {
  auto* worker = new detail::PromiseWorker<Work, Settle>(env, name, std::forward<Work>(work),
                                                         std::forward<Settle>(settle));
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

}  // namespace sipc
