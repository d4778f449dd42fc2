#include "client.h"

#include "pkt_line.h"

namespace sipc {

const char* ActiveStateName(ActiveState state) {
  switch (state) {
    case ActiveState::kListening:
      return "listening";
    case ActiveState::kNotListening:
      return "not-listening";
    case ActiveState::kInvalidPath:
      return "invalid-path";
    case ActiveState::kPathNotFound:
      return "path-not-found";
    case ActiveState::kOtherError:
      return "other-error";
  }
  return "other-error";
}

void AsyncClient::StartTransient(uint64_t id, const std::string& path, const uint8_t* request, size_t len,
                                 const ClientOptions& options, bool stream) {
  std::vector<uint8_t> framed;
  pkt::AppendMessage(request, len, &framed);
  Start(id, path, std::move(framed), options, stream);
}

void AsyncClient::StartBorrowed(uint64_t id, const std::string& path, const uint8_t* request, size_t len,
                                const ClientOptions& options, bool stream) {
  StartTransient(id, path, request, len, options, stream);
}

}  // namespace sipc
