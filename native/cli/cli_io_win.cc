// cli_io.h for Windows: the UTF-16 command line, and ReadFile/WriteFile on
// the standard handles (no C runtime text mode: bytes pass unchanged).
#include "../win/win_util.h"  // windows.h first: shellapi.h needs it
// clang-format off
#include <shellapi.h>
// clang-format on

#include "cli_io.h"

namespace sipc {
namespace cli {

namespace {

std::string LastErrorText() {
  return StatusMessage(win::StatusFromWin32(GetLastError(), nullptr));
}

bool ReadAll(HANDLE h, std::vector<uint8_t>* out, std::string* error) {
  constexpr DWORD kChunk = 64 * 1024;
  for (;;) {
    size_t used = out->size();
    out->resize(used + kChunk);
    DWORD n = 0;
    BOOL ok = ReadFile(h, out->data() + used, kChunk, &n, nullptr);
    out->resize(used + n);
    if (!ok) {
      // The writer of a pipe closing its end is the end of input.
      if (GetLastError() == ERROR_BROKEN_PIPE) return true;
      *error = LastErrorText();
      return false;
    }
    if (n == 0) return true;
  }
}

bool WriteAll(HANDLE h, const uint8_t* data, size_t len) {
  while (len > 0) {
    DWORD piece = len > (1u << 20) ? (1u << 20) : static_cast<DWORD>(len);
    DWORD n = 0;
    if (!WriteFile(h, data, piece, &n, nullptr)) return false;
    data += n;
    len -= n;
  }
  return true;
}

}  // namespace

std::vector<std::string> Utf8Arguments(int argc, char** argv) {
  int count = 0;
  LPWSTR* wide = CommandLineToArgvW(GetCommandLineW(), &count);
  if (wide == nullptr) return std::vector<std::string>(argv, argv + argc);
  std::vector<std::string> args;
  for (int i = 0; i < count; i++) args.push_back(win::WideToUtf8(wide[i]));
  LocalFree(wide);
  return args;
}

bool ReadStdin(std::vector<uint8_t>* out, std::string* error) {
  return ReadAll(GetStdHandle(STD_INPUT_HANDLE), out, error);
}

bool ReadWholeFile(const std::string& path, std::vector<uint8_t>* out, std::string* error) {
  std::wstring wide;
  if (!win::Utf8ToWide(path, &wide)) {
    *error = "not valid UTF-8";
    return false;
  }
  HANDLE h = CreateFileW(wide.c_str(), GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE, nullptr, OPEN_EXISTING,
                         FILE_ATTRIBUTE_NORMAL, nullptr);
  if (h == INVALID_HANDLE_VALUE) {
    *error = LastErrorText();
    return false;
  }
  win::UniqueHandle file(h);
  return ReadAll(file.get(), out, error);
}

bool WriteStdout(const uint8_t* data, size_t len) { return WriteAll(GetStdHandle(STD_OUTPUT_HANDLE), data, len); }

void WriteStderr(const std::string& text) {
  WriteAll(GetStdHandle(STD_ERROR_HANDLE), reinterpret_cast<const uint8_t*>(text.data()), text.size());
}

}  // namespace cli
}  // namespace sipc
