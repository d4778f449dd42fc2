// CallJsCallback: a JS callback call from a thread-safe function's
// callback that survives environment teardown. JS thread only.
#pragma once

#include <napi.h>

#include <initializer_list>

namespace sipc {

// Calls a JS callback from a thread-safe function's callback. An exception
// the callback throws becomes an uncaught exception, as it would for any
// EventEmitter listener ('uncaughtException', or the process ends);
// Node-API would otherwise swallow it with only a warning. Returns false
// only when the environment is shutting down (worker.terminate(), process
// exit): then JS cannot run, and nothing more should be delivered. Unlike
// Napi::FunctionReference::Call this never aborts the process.
inline bool CallJsCallback(Napi::Env env, const Napi::FunctionReference& fn, napi_value recv,
                           std::initializer_list<napi_value> args) {
  napi_value result;
  napi_status status =
      napi_call_function(env, recv, fn.Value(), args.size(), args.size() ? args.begin() : nullptr, &result);
  if (status == napi_ok) return true;
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) return false;  // the environment is going away
  napi_value error;
  napi_get_and_clear_last_exception(env, &error);
  napi_fatal_exception(env, error);
  return true;
}

}  // namespace sipc
