// Who may open the pipe (the DACL of its first instance), and who opened
// it (the peer's process id and user SID).
#pragma once

#include <string>

#include "../core/server.h"
#include "win_util.h"

namespace sipc {
namespace win {

// FILE_GENERIC_READ | FILE_GENERIC_WRITE without FILE_CREATE_PIPE_INSTANCE
// (0x4, the same bit as FILE_APPEND_DATA): what 'everyone' grants others.
constexpr const char* kEveryoneReadWrite = "0x12019b";

// The security attributes every instance is created with. Only the first
// instance's descriptor counts: Windows keeps one per pipe name.
class PipeSecurity {
 public:
  PipeSecurity() = default;
  ~PipeSecurity();
  PipeSecurity(const PipeSecurity&) = delete;
  PipeSecurity& operator=(const PipeSecurity&) = delete;

  // kCurrentUser: D:P(A;;GA;;;<current user>)(A;;GA;;;SY)(A;;GA;;;BA)
  // kEveryone:    D:P(A;;GA;;;<current user>)(A;;GA;;;SY)(A;;GA;;;BA)
  //               (A;;0x12019b;;;WD): Everyone reads and writes, as with
  //               Git's D:(A;;GRGW;;;WD), but cannot create instances.
  // kSddl:        `sddl` as given; EINVAL if Windows cannot parse it.
  Status Init(PipeAccess access, const std::string& sddl);

  SECURITY_ATTRIBUTES* attributes() { return &attributes_; }
  const std::string& sddl() const { return sddl_; }

 private:
  PSECURITY_DESCRIPTOR descriptor_ = nullptr;  // LocalAlloc'ed
  SECURITY_ATTRIBUTES attributes_{};
  std::string sddl_;
};

// The user SID of this process, in string form ("S-1-5-21-...").
Status CurrentUserSid(std::string* sid);

// pid (GetNamedPipeClientProcessId) and user SID of the client connected
// to the server end `pipe`. Fields stay -1 / empty when Windows cannot
// tell. Worker thread (may impersonate the client for a moment).
PeerInfo GetPipePeer(HANDLE pipe);

// The user SID of the process serving the pipe a client opened
// (GetNamedPipeServerProcessId, then its token); empty when it cannot be
// learned. The client's serverUid check.
std::string PipeServerUserSid(HANDLE pipe);

}  // namespace win
}  // namespace sipc
