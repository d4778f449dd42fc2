// Helpers for handing native data to JS.
//
// CopyToJs: Electron forbids external buffers, so every byte that
// reaches JS is copied once, into a new JS-owned Buffer.
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>

namespace sipc {

inline Napi::Buffer<uint8_t> CopyToJs(Napi::Env env, const uint8_t* data, size_t len) {
  if (len == 0) return Napi::Buffer<uint8_t>::New(env, 0);
  return Napi::Buffer<uint8_t>::Copy(env, data, len);
}

// Calls a JS callback from a thread-safe function's callback. Returns
// false when JS did not run it to the end: it threw (the exception stays
// pending and becomes an uncaught exception, as for any callback), or the
// environment is shutting down (worker.terminate(), process exit). Unlike
// Napi::FunctionReference::Call this never aborts the process in that
// second case.
inline bool CallJsCallback(Napi::Env env, const Napi::FunctionReference& fn, napi_value recv,
                           std::initializer_list<napi_value> args) {
  napi_value result;
  napi_status status =
      napi_call_function(env, recv, fn.Value(), args.size(), args.size() ? args.begin() : nullptr, &result);
  return status == napi_ok;
}

}  // namespace sipc
