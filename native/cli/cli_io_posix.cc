// cli_io.h for POSIX: plain read()/write() on the standard descriptors.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "cli_io.h"

namespace sipc {
namespace cli {

namespace {

bool ReadAll(int fd, std::vector<uint8_t>* out, std::string* error) {
  constexpr size_t kChunk = 64 * 1024;
  for (;;) {
    size_t used = out->size();
    out->resize(used + kChunk);
    ssize_t n = read(fd, out->data() + used, kChunk);
    if (n < 0 && errno == EINTR) {
      out->resize(used);
      continue;
    }
    out->resize(used + (n > 0 ? static_cast<size_t>(n) : 0));
    if (n == 0) return true;
    if (n < 0) {
      *error = std::strerror(errno);
      return false;
    }
  }
}

bool WriteAll(int fd, const uint8_t* data, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, data, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

std::vector<std::string> Utf8Arguments(int argc, char** argv) { return std::vector<std::string>(argv, argv + argc); }

bool ReadStdin(std::vector<uint8_t>* out, std::string* error) { return ReadAll(STDIN_FILENO, out, error); }

bool ReadWholeFile(const std::string& path, std::vector<uint8_t>* out, std::string* error) {
  int fd;
  do {
    fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    *error = std::strerror(errno);
    return false;
  }
  bool ok = ReadAll(fd, out, error);
  close(fd);
  return ok;
}

bool WriteStdout(const uint8_t* data, size_t len) { return WriteAll(STDOUT_FILENO, data, len); }

void WriteStderr(const std::string& text) {
  WriteAll(STDERR_FILENO, reinterpret_cast<const uint8_t*>(text.data()), text.size());
}

}  // namespace cli
}  // namespace sipc
