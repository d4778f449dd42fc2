// Bytes between JS and native code, in both directions.
//
//  - JsBytes: the bytes of a JS string or Uint8Array (Buffer). A typed
//    array is read in place, never copied; a string is encoded to UTF-8
//    once, into an inline buffer when small (no heap allocation).
//  - ToJsBuffer: a received message as a JS Buffer. Messages of
//    kExternalThreshold bytes and more become an external Buffer over the
//    native memory (no second pass over 50 MB); smaller ones, and every
//    message in builds with NODE_API_NO_EXTERNAL_BUFFERS_ALLOWED (Electron
//    forbids external buffers), are copied into JS-owned memory.
//
// All of it: JS thread only.
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "../core/byte_buffer.h"

namespace sipc {

// Received messages of kBorrowThreshold bytes and more (the one threshold,
// defined in core/byte_buffer.h) are handed to JS without a copy; below
// it a copy costs less than the bookkeeping.
constexpr size_t kExternalThreshold = kBorrowThreshold;

class JsBytes {
 public:
  // Throws a TypeError naming `what` unless `value` is a string or a
  // Uint8Array (Buffer included).
  JsBytes(const Napi::Value& value, const char* what) {
    napi_env env = value.Env();
    if (value.IsTypedArray()) {
      Napi::TypedArray array = value.As<Napi::TypedArray>();
      if (array.TypedArrayType() != napi_uint8_array) ThrowNotBytes(value, what);
      Napi::Uint8Array u8 = value.As<Napi::Uint8Array>();
      data_ = u8.Data();
      size_ = u8.ByteLength();
      borrowed_ = true;
      return;
    }
    if (!value.IsString()) ThrowNotBytes(value, what);
    // Most strings fit the inline buffer: one encoding pass. V8 never cuts
    // a character in two, so a result shorter than the buffer by more
    // than the longest UTF-8 sequence is the whole string.
    size_t written = 0;
    NAPI_THROW_IF_FAILED_VOID(env, napi_get_value_string_utf8(env, value, inline_, sizeof(inline_), &written));
    if (written + 4 < sizeof(inline_)) {
      data_ = reinterpret_cast<const uint8_t*>(inline_);
      size_ = written;
      return;
    }
    size_t length = 0;
    NAPI_THROW_IF_FAILED_VOID(env, napi_get_value_string_utf8(env, value, nullptr, 0, &length));
    heap_.resize(length + 1);
    NAPI_THROW_IF_FAILED_VOID(env, napi_get_value_string_utf8(env, value, &heap_[0], heap_.size(), &written));
    heap_.resize(written);
    data_ = reinterpret_cast<const uint8_t*>(heap_.data());
    size_ = written;
  }
  JsBytes(const JsBytes&) = delete;
  JsBytes& operator=(const JsBytes&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  // True when data() points into the JS typed array itself: valid only
  // while that array is alive and unchanged (keep a reference).
  bool borrowed() const { return borrowed_; }

 private:
  [[noreturn]] static void ThrowNotBytes(const Napi::Value& value, const char* what) {
    throw Napi::TypeError::New(value.Env(), std::string(what) + " must be a string or Uint8Array");
  }

  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  bool borrowed_ = false;
  char inline_[256];
  std::string heap_;
};

inline Napi::Buffer<uint8_t> CopyToJs(Napi::Env env, const uint8_t* data, size_t len) {
  if (len == 0) return Napi::Buffer<uint8_t>::New(env, 0);
  return Napi::Buffer<uint8_t>::Copy(env, data, len);
}

namespace detail {

#ifndef NODE_API_NO_EXTERNAL_BUFFERS_ALLOWED
// Finalizer of an external Buffer (JS thread, at GC or teardown): frees
// the native memory and tells V8 it is gone.
inline void FreeExternalBytes(napi_env env, void* /*data*/, void* hint) {
  auto* bytes = static_cast<ByteBuffer*>(hint);
  int64_t size = static_cast<int64_t>(bytes->size());
  delete bytes;
  int64_t total = 0;
  napi_adjust_external_memory(env, -size, &total);
}
#endif

}  // namespace detail

// Hands `bytes` to JS as a Buffer; `bytes` is left empty. An external
// Buffer counts as external memory for V8 (napi_adjust_external_memory,
// undone by its finalizer), so GC pressure reflects it. This is what
// Napi::Buffer::NewOrCopy does, written out with the C API because the
// accounting must know whether the runtime took the memory or copied it.
inline Napi::Buffer<uint8_t> ToJsBuffer(Napi::Env env, ByteBuffer&& bytes) {
#ifndef NODE_API_NO_EXTERNAL_BUFFERS_ALLOWED
  if (bytes.size() >= kExternalThreshold) {
    size_t size = bytes.size();
    auto* owned = new ByteBuffer(std::move(bytes));
    napi_value value = nullptr;
    napi_status status =
        napi_create_external_buffer(env, size, owned->data(), &detail::FreeExternalBytes, owned, &value);
    if (status == napi_ok) {
      int64_t total = 0;
      napi_adjust_external_memory(env, static_cast<int64_t>(size), &total);
      return Napi::Buffer<uint8_t>(env, value);
    }
    // The runtime refuses external buffers (napi_no_external_buffers_allowed,
    // as in Electron): copy after all.
    bytes = std::move(*owned);
    delete owned;
  }
#endif
  Napi::Buffer<uint8_t> copy = CopyToJs(env, bytes.data(), bytes.size());
  bytes.Reset();
  return copy;
}

}  // namespace sipc
