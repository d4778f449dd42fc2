#include "security_win.h"

#include <sddl.h>

#include <cerrno>
#include <cstdlib>
#include <vector>

namespace sipc {
namespace win {

static_assert(((FILE_GENERIC_READ | FILE_GENERIC_WRITE) & ~FILE_CREATE_PIPE_INSTANCE) == 0x12019b,
              "kEveryoneReadWrite is read and write without instance creation");

namespace {

// SID string of the user of `token` (TOKEN_QUERY access).
bool TokenUserSid(HANDLE token, std::string* out) {
  DWORD size = 0;
  GetTokenInformation(token, TokenUser, nullptr, 0, &size);
  if (size == 0) return false;
  std::vector<uint8_t> buffer(size);
  if (!GetTokenInformation(token, TokenUser, buffer.data(), size, &size)) return false;
  LPWSTR text = nullptr;
  if (!ConvertSidToStringSidW(reinterpret_cast<TOKEN_USER*>(buffer.data())->User.Sid, &text)) return false;
  *out = WideToUtf8(text);
  LocalFree(text);
  return true;
}

}  // namespace

PipeSecurity::~PipeSecurity() {
  if (descriptor_ != nullptr) LocalFree(descriptor_);
}

Status PipeSecurity::Init(PipeAccess access, const std::string& sddl) {
  switch (access) {
    case PipeAccess::kCurrentUser: {
      std::string user;
      Status st = CurrentUserSid(&user);
      if (!st.ok()) return st;
      // GENERIC_ALL includes FILE_CREATE_PIPE_INSTANCE, which the server
      // needs for every instance after the first.
      sddl_ = "D:P(A;;GA;;;" + user + ")(A;;GA;;;SY)(A;;GA;;;BA)";
      break;
    }
    case PipeAccess::kEveryone: {
      // Git's openness without its hole (docs/windows.md#the-everyone-dacl):
      // Git grants Everyone GENERIC_READ | GENERIC_WRITE, and for a pipe
      // GENERIC_WRITE includes FILE_CREATE_PIPE_INSTANCE, which lets any
      // local user add instances to the running server's pipe and take
      // some of its clients. Everyone gets read and write without it
      // (kEveryoneReadWrite); only the server's own user (and SYSTEM and
      // Administrators) may create instances. Clients are not asked for
      // that right when they open the pipe, so every client still connects.
      std::string user;
      Status st = CurrentUserSid(&user);
      if (!st.ok()) return st;
      sddl_ = "D:P(A;;GA;;;" + user + ")(A;;GA;;;SY)(A;;GA;;;BA)(A;;" + kEveryoneReadWrite + ";;;WD)";
      break;
    }
    case PipeAccess::kSddl:
      sddl_ = sddl;
      break;
  }
  std::wstring wide;
  if (!Utf8ToWide(sddl_, &wide)) return Status::FromErrno(EINVAL, "ConvertStringSecurityDescriptor", "SDDL is not UTF-8");
  if (!ConvertStringSecurityDescriptorToSecurityDescriptorW(wide.c_str(), SDDL_REVISION_1, &descriptor_, nullptr)) {
    DWORD err = GetLastError();
    return Status::FromErrno(EINVAL, "ConvertStringSecurityDescriptor",
                             "invalid pipeAccess SDDL '" + sddl_ + "' (Win32 error " + std::to_string(err) + ")");
  }
  attributes_.nLength = sizeof(attributes_);
  attributes_.lpSecurityDescriptor = descriptor_;
  attributes_.bInheritHandle = FALSE;
  return Status::Ok();
}

Status CurrentUserSid(std::string* sid) {
  HANDLE raw = nullptr;
  if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &raw)) {
    return StatusFromWin32(GetLastError(), "OpenProcessToken");
  }
  UniqueHandle token(raw);
  if (!TokenUserSid(token.get(), sid)) return StatusFromWin32(GetLastError(), "GetTokenInformation");
  return Status::Ok();
}

PeerInfo GetPipePeer(HANDLE pipe) {
  PeerInfo peer;
  ULONG pid = 0;
  if (GetNamedPipeClientProcessId(pipe, &pid)) peer.pid = pid;

  // The connection's own identity first: impersonate the client just long
  // enough to read its token. Windows may refuse before any data has been
  // read from the pipe (ERROR_CANNOT_IMPERSONATE), or the client may have
  // asked for anonymity; then use the token of the client's process.
  if (ImpersonateNamedPipeClient(pipe)) {
    HANDLE token = nullptr;
    BOOL opened = OpenThreadToken(GetCurrentThread(), TOKEN_QUERY, TRUE, &token);
    // A worker must never go on running as the client.
    if (!RevertToSelf()) std::abort();
    if (opened) {
      UniqueHandle owned(token);
      if (TokenUserSid(owned.get(), &peer.sid)) return peer;
    }
  }
  if (peer.pid >= 0) {
    UniqueHandle process(OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, static_cast<DWORD>(peer.pid)));
    HANDLE token = nullptr;
    if (process.valid() && OpenProcessToken(process.get(), TOKEN_QUERY, &token)) {
      UniqueHandle owned(token);
      TokenUserSid(owned.get(), &peer.sid);
    }
  }
  return peer;
}

std::string PipeServerUserSid(HANDLE pipe) {
  std::string sid;
  ULONG pid = 0;
  if (!GetNamedPipeServerProcessId(pipe, &pid)) return sid;
  UniqueHandle process(OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, pid));
  HANDLE token = nullptr;
  if (process.valid() && OpenProcessToken(process.get(), TOKEN_QUERY, &token)) {
    UniqueHandle owned(token);
    TokenUserSid(owned.get(), &sid);
  }
  return sid;
}

}  // namespace win
}  // namespace sipc
