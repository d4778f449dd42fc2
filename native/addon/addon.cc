// Module entry point. Context-aware: every environment (main thread,
// worker thread) gets its own instance, with its own client (and client
// I/O thread) and its own servers.
#include <napi.h>

#include "../core/pkt_line.h"
#include "client_wrap.h"
#include "server_wrap.h"

namespace sipc {

namespace {

class Addon : public Napi::Addon<Addon> {
 public:
  Addon(Napi::Env env, Napi::Object exports) : client_(env) {
    client_.Export(exports);
    exports.Set("NativeServer", ServerWrap::Init(env));
    exports.Set("maxPayload", Napi::Number::New(env, static_cast<double>(pkt::kMaxPayload)));
  }

 private:
  ClientWrap client_;
};

}  // namespace

}  // namespace sipc

using SimpleIpcAddon = sipc::Addon;
NODE_API_ADDON(SimpleIpcAddon)
