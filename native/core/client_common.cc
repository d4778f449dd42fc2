#include "client.h"
#include "enum_names.h"


namespace sipc {

// What getActiveState resolves to, indexed by ActiveState.
constexpr const char* kActiveStateNames[] = {"listening", "not-listening", "invalid-path", "path-not-found",
                                             "other-error"};

const char* ActiveStateName(ActiveState state) { return NameOf<ActiveState::kOtherError>(state, kActiveStateNames); }

}  // namespace sipc
