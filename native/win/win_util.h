// Small Windows helpers shared by the named-pipe transport: Win32 error ->
// errno translation (the one place it happens), UTF-8 <-> UTF-16, and an
// owning HANDLE.
#pragma once

#ifndef NOMINMAX
#define NOMINMAX
#endif
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#include <string>

#include "../core/status.h"

namespace sipc {
namespace win {

// The errno value (POSIX numbering, as in status.h) for a Win32 error.
// Unknown errors become EIO; the Win32 number is kept in the detail text
// by StatusFromWin32.
int Win32ToErrno(DWORD error);

// Status for a failed Win32 call: errno code, `syscall`, and a detail that
// ends with the Win32 error number ("... (Win32 error 231)").
Status StatusFromWin32(DWORD error, const char* syscall, const std::string& detail = {});

// UTF-8 -> UTF-16. False on invalid UTF-8.
bool Utf8ToWide(const std::string& in, std::wstring* out);
std::string WideToUtf8(const std::wstring& in);

class UniqueHandle {
 public:
  UniqueHandle() = default;
  explicit UniqueHandle(HANDLE h) : h_(h) {}
  ~UniqueHandle() { reset(); }
  UniqueHandle(const UniqueHandle&) = delete;
  UniqueHandle& operator=(const UniqueHandle&) = delete;
  UniqueHandle(UniqueHandle&& o) noexcept : h_(o.release()) {}
  UniqueHandle& operator=(UniqueHandle&& o) noexcept {
    if (this != &o) {
      reset();
      h_ = o.release();
    }
    return *this;
  }
  HANDLE get() const { return h_; }
  bool valid() const { return h_ != nullptr && h_ != INVALID_HANDLE_VALUE; }
  HANDLE release() {
    HANDLE h = h_;
    h_ = nullptr;
    return h;
  }
  void reset(HANDLE h = nullptr) {
    if (valid()) CloseHandle(h_);
    h_ = h;
  }

 private:
  HANDLE h_ = nullptr;
};

}  // namespace win
}  // namespace sipc
