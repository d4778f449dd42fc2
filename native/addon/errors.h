// Status -> JS Error, shaped like Node's `net` errors: `code`, `errno`
// (negative, as libuv reports it), `syscall`, `address`.
#pragma once

#include <napi.h>

#include <string>

#include "../core/client.h"
#include "../core/status.h"

namespace sipc {

Napi::Error StatusToError(Napi::Env env, const Status& status, const std::string& address = {});

// A failed client exchange; also sets `state` when the connect failed.
Napi::Error ClientResultToError(Napi::Env env, const ClientResult& result, const std::string& address);

}  // namespace sipc
