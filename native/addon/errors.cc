#include "errors.h"


namespace sipc {

Napi::Error StatusToError(Napi::Env env, const Status& status, const std::string& address) {
  const char* code = StatusCodeName(status);
  // The code is in err.code; the message says it once in words (never
  // "ENOENT: ..." or "ERR_IPC_TIMEOUT: ...": docs/api.md#conventions).
  std::string message;
  if (status.syscall != nullptr) {
    message += status.syscall;
    message += ": ";
  }
  message += StatusMessage(status);
  if (status.is_errno() && status.detail.empty() && !address.empty()) message += ": " + address;
  Napi::Error error = Napi::Error::New(env, message);
  Napi::Object obj = error.Value();
  obj.Set("code", Napi::String::New(env, code));
  if (status.is_errno()) obj.Set("errno", Napi::Number::New(env, -status.code));
  if (status.syscall != nullptr) obj.Set("syscall", Napi::String::New(env, status.syscall));
  if (!address.empty()) obj.Set("address", Napi::String::New(env, address));
  return error;
}

Napi::Error ClientResultToError(Napi::Env env, const ClientResult& result, const std::string& address) {
  Napi::Error error = StatusToError(env, result.status, address);
  if (!result.connected) {
    error.Value().Set("state", Napi::String::New(env, ActiveStateName(result.connect_state)));
  }
  return error;
}

}  // namespace sipc
