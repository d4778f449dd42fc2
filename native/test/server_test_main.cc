// The server tests' main (every server_*_test.cc links into sipc_server_test).
#include <sys/resource.h>

#include "test_util.h"

int main(int argc, char** argv) {
  // SIGPIPE is left at its default: the library must never raise it.
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4096) {
    rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  return sipc_test::RunAll(argc, argv);
}
