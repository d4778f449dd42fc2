#include "pipe_name.h"

#include <cerrno>
#include <cwctype>
#include <vector>

#include "win_util.h"

namespace sipc {
namespace win {

namespace {

const wchar_t kPipePrefix[] = L"\\\\.\\pipe\\";
constexpr size_t kPipePrefixLen = 9;

bool IsSlash(wchar_t c) { return c == L'\\' || c == L'/'; }

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

// The final path of an existing file or directory (symbolic links and
// junctions resolved, true case), without the `\\?\` prefix. Returns the
// Win32 error of the open on failure.
DWORD FinalPath(const std::wstring& path, std::wstring* out) {
  UniqueHandle h(CreateFileW(path.c_str(), 0, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, nullptr,
                             OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS, nullptr));
  if (!h.valid()) return GetLastError();
  std::vector<wchar_t> buffer(MAX_PATH + 1);
  for (;;) {
    DWORD n = GetFinalPathNameByHandleW(h.get(), buffer.data(), static_cast<DWORD>(buffer.size()),
                                        FILE_NAME_NORMALIZED | VOLUME_NAME_DOS);
    if (n == 0) return GetLastError();
    if (n < buffer.size()) {
      out->assign(buffer.data(), n);
      break;
    }
    buffer.resize(n + 1);
  }
  if (out->compare(0, 8, L"\\\\?\\UNC\\") == 0) {
    out->replace(0, 8, L"\\\\");
  } else if (out->compare(0, 4, L"\\\\?\\") == 0) {
    out->erase(0, 4);
  }
  return ERROR_SUCCESS;
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
    DWORD n = GetFullPathNameW(wide.c_str(), 0, nullptr, nullptr);
    if (n == 0) return StatusFromWin32(GetLastError(), "realpath", "'" + path + "'");
    std::wstring full(n, L'\0');
    n = GetFullPathNameW(wide.c_str(), n, &full[0], nullptr);
    if (n == 0 || n >= full.size()) return StatusFromWin32(GetLastError(), "realpath", "'" + path + "'");
    full.resize(n);

    std::wstring real;
    DWORD err = FinalPath(full, &real);
    if (err == ERROR_FILE_NOT_FOUND) {
      // Only the last component may be missing (the server has not
      // created anything there yet): resolve its directory.
      size_t cut = full.find_last_of(L"\\/");
      std::wstring leaf = cut == std::wstring::npos ? std::wstring() : full.substr(cut + 1);
      if (leaf.empty()) return Status::FromErrno(ENOENT, "realpath", "'" + path + "'");
      std::wstring dir = full.substr(0, cut + 1);
      std::wstring real_dir;
      DWORD dir_err = FinalPath(dir, &real_dir);
      if (dir_err == ERROR_FILE_NOT_FOUND || dir_err == ERROR_PATH_NOT_FOUND) {
        return StatusFromWin32(dir_err, "realpath", "directory of '" + path + "'");
      }
      if (dir_err != ERROR_SUCCESS) real_dir = dir;  // cannot open it: take it as it is
      if (real_dir.empty() || !IsSlash(real_dir.back())) real_dir += L'\\';
      real = real_dir + leaf;
    } else if (err == ERROR_PATH_NOT_FOUND) {
      return StatusFromWin32(err, "realpath", "directory of '" + path + "'");
    } else if (err != ERROR_SUCCESS) {
      real = full;  // exists but cannot be opened: no links to resolve through
    }

    if (real.size() >= 2 && real[1] == L':') real[1] = L'_';
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
