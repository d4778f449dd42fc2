#include "stale_lock.h"

namespace sipc {

int64_t LockOwnerPid(const std::string& content) {
  int64_t pid = 0;
  size_t i = 0;
  for (; i < content.size() && content[i] >= '0' && content[i] <= '9'; i++) {
    if (pid > (INT64_C(1) << 40)) return -1;  // not a pid
    pid = pid * 10 + (content[i] - '0');
  }
  if (i == 0 || pid <= 0) return -1;
  // Only a line break may follow the digits.
  if (i < content.size() && content[i] != '\n') return -1;
  return pid;
}

std::string LockContentFor(int64_t pid) { return std::to_string(pid) + "\n"; }

}  // namespace sipc
