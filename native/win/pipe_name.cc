#include "pipe_name.h"

#include <cerrno>
#include <cstring>
#include <cwctype>
#include <vector>

#include "win_util.h"
// After <windows.h> (win_util.h), which it needs.
#include <winioctl.h>

namespace sipc {
namespace win {

namespace {

const wchar_t kPipePrefix[] = L"\\\\.\\pipe\\";
constexpr size_t kPipePrefixLen = 9;
// Links followed in one resolution before giving up with ELOOP (Git's
// limit too).
constexpr int kMaxLinks = 32;

bool IsSlash(wchar_t c) { return c == L'\\' || c == L'/'; }

bool HasDrive(const std::wstring& p) { return p.size() >= 2 && p[1] == L':' && iswalpha(p[0]); }

// `\\.\pipe\`, `//./pipe/`, `\\?\pipe\`, any case and mix of slashes.
bool HasPipePrefix(const std::wstring& p) {
  if (p.size() < kPipePrefixLen) return false;
  if (!IsSlash(p[0]) || !IsSlash(p[1]) || (p[2] != L'.' && p[2] != L'?') || !IsSlash(p[3])) return false;
  const wchar_t* word = L"pipe";
  for (int i = 0; i < 4; i++) {
    if (towlower(p[4 + i]) != word[i]) return false;
  }
  return IsSlash(p[8]);
}

// Length of the root of `p`, kept as written: `C:\` (3), `C:` (2, a
// drive-relative path continues from the drive's root), `\\server\share\`,
// `\` (1); 0 for a relative path.
size_t RootLength(const std::wstring& p) {
  size_t pos = 0;
  if (HasDrive(p)) {
    pos = 2;
  } else if (p.size() >= 2 && IsSlash(p[0]) && IsSlash(p[1])) {
    // \\server\share: the server, then the share name.
    size_t server_end = p.find_first_of(L"\\/", 2);
    if (server_end == std::wstring::npos) return p.size();
    pos = server_end + 1;
    while (pos < p.size() && !IsSlash(p[pos])) pos++;
  }
  return pos < p.size() && IsSlash(p[pos]) ? pos + 1 : pos;
}

// Removes the first component of `remaining` (and the separators before
// it) and returns it; empty when only separators were left.
std::wstring TakeComponent(std::wstring* remaining) {
  size_t start = 0;
  while (start < remaining->size() && IsSlash((*remaining)[start])) start++;
  size_t end = start;
  while (end < remaining->size() && !IsSlash((*remaining)[end])) end++;
  std::wstring component = remaining->substr(start, end - start);
  remaining->erase(0, end);
  return component;
}

// `..`: drops the last component of `resolved`, never its root.
void DropLastComponent(std::wstring* resolved) {
  size_t root = RootLength(*resolved);
  size_t len = resolved->size();
  while (len > root && !IsSlash((*resolved)[len - 1])) len--;
  while (len > root && IsSlash((*resolved)[len - 1])) len--;
  resolved->resize(len);
}

// An NT-namespace spelling (`\??\C:\x`, `\\?\C:\x`, `\??\UNC\srv\share`)
// as a Win32 path (`C:\x`, `\\srv\share`).
std::wstring StripNtPrefix(std::wstring p) {
  if (p.compare(0, 4, L"\\??\\") == 0 || p.compare(0, 4, L"\\\\?\\") == 0) {
    p.erase(0, 4);
    if (p.size() >= 4 && _wcsnicmp(p.c_str(), L"UNC\\", 4) == 0) p.replace(0, 4, L"\\\\");
  }
  return p;
}

// The target of a symbolic link or junction, as the link spells it. False
// for any other file, including other kinds of reparse points.
bool ReadLinkTarget(const std::wstring& path, std::wstring* target) {
  UniqueHandle h(CreateFileW(path.c_str(), 0, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, nullptr,
                             OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT, nullptr));
  if (!h.valid()) return false;
  std::vector<uint8_t> buffer(MAXIMUM_REPARSE_DATA_BUFFER_SIZE);
  DWORD got = 0;
  if (!DeviceIoControl(h.get(), FSCTL_GET_REPARSE_POINT, nullptr, 0, buffer.data(), static_cast<DWORD>(buffer.size()),
                       &got, nullptr)) {
    return false;
  }
  // REPARSE_DATA_BUFFER (a kernel-mode header): tag, data length, reserved,
  // then substitute-name offset and length, print-name offset and length
  // (bytes, from the path buffer), and for symbolic links a flags word
  // before the path buffer.
  DWORD tag;
  uint16_t name_offset;
  uint16_t name_length;
  if (got < 16) return false;
  std::memcpy(&tag, buffer.data(), sizeof tag);
  std::memcpy(&name_offset, buffer.data() + 8, sizeof name_offset);
  std::memcpy(&name_length, buffer.data() + 10, sizeof name_length);
  size_t path_buffer;
  if (tag == IO_REPARSE_TAG_SYMLINK) {
    path_buffer = 20;
  } else if (tag == IO_REPARSE_TAG_MOUNT_POINT) {
    path_buffer = 16;
  } else {
    return false;
  }
  size_t begin = path_buffer + name_offset;
  if (begin + name_length > got || name_length % 2 != 0) return false;
  std::wstring name(name_length / 2, L'\0');
  std::memcpy(&name[0], buffer.data() + begin, name_length);
  *target = StripNtPrefix(name);
  return !target->empty();
}

// The current directory's final path (as the volume names it; Git starts
// relative paths there), or as GetCurrentDirectoryW spells it when the
// directory cannot be opened.
DWORD CurrentDirectory(std::wstring* out) {
  DWORD n = GetCurrentDirectoryW(0, nullptr);
  if (n == 0) return GetLastError();
  std::wstring cwd(n, L'\0');
  n = GetCurrentDirectoryW(n, &cwd[0]);
  if (n == 0 || n >= cwd.size()) return n == 0 ? GetLastError() : ERROR_BUFFER_OVERFLOW;
  cwd.resize(n);
  UniqueHandle h(CreateFileW(cwd.c_str(), 0, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, nullptr,
                             OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS, nullptr));
  if (!h.valid()) {
    if (GetFileAttributesW(cwd.c_str()) == INVALID_FILE_ATTRIBUTES) return GetLastError();
    *out = cwd;
    return ERROR_SUCCESS;
  }
  std::vector<wchar_t> buffer(MAX_PATH + 1);
  for (;;) {
    n = GetFinalPathNameByHandleW(h.get(), buffer.data(), static_cast<DWORD>(buffer.size()),
                                  FILE_NAME_NORMALIZED | VOLUME_NAME_DOS);
    if (n == 0) return GetLastError();
    if (n < buffer.size()) break;
    buffer.resize(n + 1);
  }
  *out = StripNtPrefix(std::wstring(buffer.data(), n));
  return ERROR_SUCCESS;
}

// Errors of a missing last component that still fail the resolution
// (anything else there means "does not exist yet", which is fine).
bool IsHardError(DWORD error) {
  switch (error) {
    case ERROR_ACCESS_DENIED:
    case ERROR_SHARING_VIOLATION:
    case ERROR_LOCK_VIOLATION:
    case ERROR_BUFFER_OVERFLOW:
    case ERROR_NOT_ENOUGH_MEMORY:
      return true;
    default:
      return false;
  }
}

// Git's real path of `path` (see pipe_name.h).
Status RealPath(const std::wstring& path, const std::string& shown, std::wstring* out) {
  std::wstring remaining = path;
  size_t root = RootLength(remaining);
  std::wstring resolved = remaining.substr(0, root);
  remaining.erase(0, root);
  if (resolved.empty()) {
    DWORD err = CurrentDirectory(&resolved);
    if (err != ERROR_SUCCESS) return StatusFromWin32(err, "realpath", "current directory");
  }
  int links = 0;
  while (!remaining.empty()) {
    std::wstring next = TakeComponent(&remaining);
    if (next.empty() || next == L".") continue;
    if (next == L"..") {
      DropLastComponent(&resolved);
      continue;
    }
    if (!resolved.empty() && !IsSlash(resolved.back())) resolved += L'\\';
    resolved += next;
    DWORD attributes = GetFileAttributesW(resolved.c_str());
    if (attributes == INVALID_FILE_ATTRIBUTES) {
      DWORD err = GetLastError();
      if (!remaining.empty() || IsHardError(err)) {
        return StatusFromWin32(err, "realpath", "'" + shown + "' at '" + WideToUtf8(resolved) + "'");
      }
      continue;  // the last component may be missing
    }
    std::wstring target;
    if ((attributes & FILE_ATTRIBUTE_REPARSE_POINT) == 0 || !ReadLinkTarget(resolved, &target)) continue;
    if (++links > kMaxLinks) return Status::FromErrno(ELOOP, "realpath", "'" + shown + "'");
    size_t target_root = RootLength(target);
    if (target_root > 0) {
      resolved = target.substr(0, target_root);
      target.erase(0, target_root);
    } else {
      DropLastComponent(&resolved);
    }
    // What is left of the path continues from the link's target.
    remaining = target + L'\\' + remaining;
  }
  *out = resolved;
  return Status::Ok();
}

}  // namespace

Status PipeNameForPath(const std::string& path, std::wstring* pipe_name) {
  std::wstring wide;
  if (!Utf8ToWide(path, &wide) || wide.empty()) {
    return Status::FromErrno(EINVAL, "realpath", "'" + path + "' is not a valid path");
  }
  if (HasPipePrefix(wide)) {
    if (wide.size() == kPipePrefixLen) return Status::FromErrno(EINVAL, "realpath", "empty pipe name");
    *pipe_name = kPipePrefix + wide.substr(kPipePrefixLen);
  } else {
    std::wstring real;
    Status st = RealPath(wide, path, &real);
    if (!st.ok()) return st;
    if (HasDrive(real)) real[1] = L'_';
    for (wchar_t& c : real) {
      if (c == L'/') c = L'\\';
    }
    *pipe_name = kPipePrefix + real;
  }
  if (pipe_name->size() > kMaxPipeNameChars) {
    return Status::FromErrno(ENAMETOOLONG, "realpath",
                             "pipe name for '" + path + "' has " + std::to_string(pipe_name->size()) +
                                 " characters (at most " + std::to_string(kMaxPipeNameChars) + ")");
  }
  return Status::Ok();
}

}  // namespace win
}  // namespace sipc
