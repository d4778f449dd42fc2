// Copies native bytes into a new JS-owned Buffer. Electron forbids
// external buffers, so every byte that reaches JS is copied once here.
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>

namespace sipc {

inline Napi::Buffer<uint8_t> CopyToJs(Napi::Env env, const uint8_t* data, size_t len) {
  if (len == 0) return Napi::Buffer<uint8_t>::New(env, 0);
  return Napi::Buffer<uint8_t>::Copy(env, data, len);
}

}  // namespace sipc
