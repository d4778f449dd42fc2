#include "client.h"


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

}  // namespace sipc
