#include "win_util.h"

#include <cerrno>

namespace sipc {
namespace win {

int Win32ToErrno(DWORD error) {
  switch (error) {
    case ERROR_SUCCESS:
      return 0;
    case ERROR_FILE_NOT_FOUND:
    case ERROR_PATH_NOT_FOUND:
    case ERROR_INVALID_DRIVE:
    case ERROR_BAD_NETPATH:
    case ERROR_BAD_NET_NAME:
      return ENOENT;
    case ERROR_ACCESS_DENIED:
    case ERROR_SHARING_VIOLATION:
    case ERROR_CANNOT_IMPERSONATE:
      return EACCES;
    case ERROR_PRIVILEGE_NOT_HELD:
      return EPERM;
    case ERROR_PIPE_BUSY:
      return EBUSY;
    case ERROR_SEM_TIMEOUT:
    case WAIT_TIMEOUT:
      return ETIMEDOUT;
    case ERROR_BROKEN_PIPE:
    case ERROR_NO_DATA:  // "the pipe is being closed"
    case ERROR_PIPE_NOT_CONNECTED:
      return EPIPE;
    case ERROR_NETNAME_DELETED:
      return ECONNRESET;
    case ERROR_CONNECTION_REFUSED:
      return ECONNREFUSED;
    case ERROR_OPERATION_ABORTED:
      return ECANCELED;
    case ERROR_FILENAME_EXCED_RANGE:
    case ERROR_BUFFER_OVERFLOW:
      return ENAMETOOLONG;
    case ERROR_INVALID_NAME:
    case ERROR_BAD_PATHNAME:
    case ERROR_INVALID_PARAMETER:
    case ERROR_NO_UNICODE_TRANSLATION:
    case ERROR_INVALID_SECURITY_DESCR:
    case ERROR_INVALID_ACL:
    case ERROR_INVALID_SID:
    case ERROR_NONE_MAPPED:
    case ERROR_BAD_PIPE:
      return EINVAL;
    case ERROR_INVALID_HANDLE:
      return EBADF;
    case ERROR_TOO_MANY_OPEN_FILES:
      return EMFILE;
    case ERROR_NOT_ENOUGH_MEMORY:
    case ERROR_OUTOFMEMORY:
    case ERROR_NO_SYSTEM_RESOURCES:
    case ERROR_NOT_ENOUGH_QUOTA:
      return ENOMEM;
    case ERROR_ALREADY_EXISTS:
    case ERROR_FILE_EXISTS:
      return EEXIST;
    case ERROR_DIRECTORY:
      return ENOTDIR;
    case ERROR_NOT_SUPPORTED:
    case ERROR_CALL_NOT_IMPLEMENTED:
      return ENOTSUP;
    default:
      return EIO;
  }
}

Status StatusFromWin32(DWORD error, const char* syscall, const std::string& detail) {
  std::string text = detail;
  if (!text.empty()) text += ' ';
  text += "(Win32 error " + std::to_string(error) + ")";
  return Status::FromErrno(Win32ToErrno(error), syscall, std::move(text));
}

bool Utf8ToWide(const std::string& in, std::wstring* out) {
  out->clear();
  if (in.empty()) return true;
  if (in.size() > 0x7fffffff) return false;
  int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, in.data(), static_cast<int>(in.size()), nullptr, 0);
  if (n <= 0) return false;
  out->resize(static_cast<size_t>(n));
  MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, in.data(), static_cast<int>(in.size()), &(*out)[0], n);
  return true;
}

std::string WideToUtf8(const std::wstring& in) {
  if (in.empty()) return {};
  int n = WideCharToMultiByte(CP_UTF8, 0, in.data(), static_cast<int>(in.size()), nullptr, 0, nullptr, nullptr);
  if (n <= 0) return {};
  std::string out(static_cast<size_t>(n), '\0');
  WideCharToMultiByte(CP_UTF8, 0, in.data(), static_cast<int>(in.size()), &out[0], n, nullptr, nullptr);
  return out;
}

}  // namespace win
}  // namespace sipc
