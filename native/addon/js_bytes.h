// Moving bytes between native code and JS.
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <string>

#include "../core/byte_buffer.h"

namespace sipc {

inline Napi::Buffer<uint8_t> CopyToJs(Napi::Env env, const uint8_t* data, size_t len) {
  if (len == 0) return Napi::Buffer<uint8_t>::New(env, 0);
  return Napi::Buffer<uint8_t>::Copy(env, data, len);
}

// Messages this large reach JS in their own native memory (no second pass
// over fresh pages); smaller ones are copied, which costs less than a
// finalizer.
constexpr size_t kExternalBufferThreshold = 64 * 1024;

namespace detail {
inline void FreeExternal(napi_env env, void* data, void* hint) {
  std::free(data);
  int64_t adjusted;
  napi_adjust_external_memory(env, -static_cast<int64_t>(reinterpret_cast<uintptr_t>(hint)), &adjusted);
}
}  // namespace detail

// Hands a whole message to JS. Where the runtime refuses external buffers
// (Electron), or the build forbids them (NODE_API_NO_EXTERNAL_BUFFERS_ALLOWED),
// the bytes are copied. V8 is told about external memory, so that it
// collects in time.
inline Napi::Value MessageToJs(Napi::Env env, ByteBuffer&& message) {
  size_t len = message.size();
  if (len < kExternalBufferThreshold) {
    Napi::Buffer<uint8_t> copy = CopyToJs(env, message.data(), len);
    message.Reset();
    return copy;
  }
#if defined(NODE_API_NO_EXTERNAL_BUFFERS_ALLOWED)
  Napi::Buffer<uint8_t> copy = CopyToJs(env, message.data(), len);
  message.Reset();
  return copy;
#else
  uint8_t* bytes = message.Release();
  napi_value result;
  void* hint = reinterpret_cast<void*>(static_cast<uintptr_t>(len));
  if (napi_create_external_buffer(env, len, bytes, detail::FreeExternal, hint, &result) == napi_ok) {
    int64_t adjusted;
    napi_adjust_external_memory(env, static_cast<int64_t>(len), &adjusted);
    return Napi::Value(env, result);
  }
  // napi_no_external_buffers_allowed (Electron's V8 sandbox): copy.
  Napi::Buffer<uint8_t> copy = CopyToJs(env, bytes, len);
  std::free(bytes);
  return copy;
#endif
}

// The bytes of a string or Uint8Array argument: typed arrays are used in
// place, strings are encoded as UTF-8 (on the stack when short).
// undefined and null are empty.
class JsBytes {
 public:
  // False if `value` is of another type.
  bool From(const Napi::Value& value) {
    if (value.IsUndefined() || value.IsNull()) return true;
    if (value.IsTypedArray()) {
      Napi::TypedArray ta = value.As<Napi::TypedArray>();
      if (ta.TypedArrayType() != napi_uint8_array) return false;
      Napi::Uint8Array u8 = value.As<Napi::Uint8Array>();
      data_ = u8.Data();
      size_ = u8.ByteLength();
      in_place_ = true;
      return true;
    }
    if (!value.IsString()) return false;
    size_t copied = 0;
    napi_get_value_string_utf8(value.Env(), value, small_, sizeof(small_), &copied);
    if (copied + 1 < sizeof(small_)) {
      data_ = reinterpret_cast<const uint8_t*>(small_);
      size_ = copied;
      return true;
    }
    large_ = value.As<Napi::String>().Utf8Value();
    data_ = reinterpret_cast<const uint8_t*>(large_.data());
    size_ = large_.size();
    return true;
  }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  // True when data() points into the JS value's own memory.
  bool in_place() const { return in_place_; }

 private:
  char small_[512];
  std::string large_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  bool in_place_ = false;
};

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
