// Server tests: finding and keeping the socket path: socket mode, long paths, a live or stale server at the path, a stolen path, and the lock file.
// Helpers: server_test_util.h.
#include "server_test_util.h"

namespace {

TEST(socket_mode_is_applied_and_umask_untouched) {
  mode_t old = umask(022);
  {
    ServerOptions options;
    options.socket_mode = 0600;
    Harness h(options);
    REQUIRE(h.start_status.ok());
    struct stat sb;
    REQUIRE(lstat(h.path.c_str(), &sb) == 0);
    CHECK_EQ(sb.st_mode & 07777, mode_t{0600});
    mode_t now = umask(022);
    CHECK_EQ(now, mode_t{022});
  }
  umask(old);
}

TEST(long_socket_path_beyond_sun_path) {
  std::string name(60, 'n');
  std::string dir = MakeTempDir();
  std::string sub = dir + "/" + std::string(60, 'd');
  REQUIRE(mkdir(sub.c_str(), 0700) == 0);
  std::string rel = std::string(60, 'd') + "/" + name;
  REQUIRE((dir + "/" + rel).size() > sizeof(sockaddr_un{}.sun_path));
  {
    ServerOptions options;
    TestDelegate delegate;
    std::unique_ptr<Server> server;
    options.path = dir + "/" + rel;
    Status st = StartServer(options, &delegate, &server);
    REQUIRE(st.ok());
    delegate.SetServer(server.get());
    std::string response;
    CHECK(Send(options.path, "ping", &response).status.ok());
    CHECK_EQ(response, std::string("pong"));
    server->Stop(0);
    CHECK(delegate.WaitStopped());
    server->Join();
    struct stat sb;
    CHECK(lstat(options.path.c_str(), &sb) < 0);
    delegate.StopResponder();
  }
  RemoveTree(dir);
}

// ---- rendezvous ----

TEST(live_server_path_is_refused_and_stale_socket_replaced) {
  Harness h;
  REQUIRE(h.start_status.ok());
  TestDelegate other;
  std::unique_ptr<Server> second;
  ServerOptions options;
  options.path = h.path;
  Status st = StartServer(options, &other, &second);
  CHECK_EQ(st.code, EADDRINUSE);
  other.StopResponder();

  // A stale socket (bound, never listening, closed) is replaced.
  std::string stale = h.dir + "/stale.ipc";
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, stale.c_str(), sizeof(addr.sun_path) - 1);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  close(fd);
  TestDelegate third;
  std::unique_ptr<Server> server3;
  options.path = stale;
  st = StartServer(options, &third, &server3);
  REQUIRE(st.ok());
  third.SetServer(server3.get());
  std::string response;
  CHECK(Send(stale, "ping", &response).status.ok());
  server3->Stop(0);
  CHECK(third.WaitStopped());
  server3->Join();
  third.StopResponder();
}

TEST(non_socket_at_path_is_left_alone) {
  std::string dir = MakeTempDir();
  std::string path = dir + "/file.ipc";
  int fd = open(path.c_str(), O_WRONLY | O_CREAT, 0600);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, "data", 4) == 4);
  close(fd);
  TestDelegate delegate;
  std::unique_ptr<Server> server;
  ServerOptions options;
  options.path = path;
  Status st = StartServer(options, &delegate, &server);
  CHECK(st.is(LibCode::kNotSocket));
  struct stat sb;
  CHECK(lstat(path.c_str(), &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size == 4);
  delegate.StopResponder();
  RemoveTree(dir);
}

TEST(stolen_path_removed_stops_the_server) {
  Harness h;
  REQUIRE(h.start_status.ok());
  REQUIRE(unlink(h.path.c_str()) == 0);
  int64_t start = NowMs();
  CHECK(h.delegate.WaitStopped());
  CHECK(h.delegate.stop_reason() == StopReason::kStolen);
  std::fprintf(stderr, "    stopped %lld ms after the unlink\n", static_cast<long long>(NowMs() - start));
}

TEST(stolen_path_replaced_stops_and_keeps_the_new_socket) {
  Harness h;
  REQUIRE(h.start_status.ok());
  REQUIRE(unlink(h.path.c_str()) == 0);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, h.path.c_str(), sizeof(addr.sun_path) - 1);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  REQUIRE(listen(fd, 5) == 0);
  CHECK(h.delegate.WaitStopped());
  CHECK(h.delegate.stop_reason() == StopReason::kStolen);
  h.server->Join();
  struct stat sb;
  CHECK(lstat(h.path.c_str(), &sb) == 0 && S_ISSOCK(sb.st_mode));
  close(fd);
}

// ---- lock files ----

std::string WriteLock(const std::string& path, const std::string& content, int age_s) {
  std::string lock = path + ".lock";
  int fd = open(lock.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd >= 0) {
    if (!content.empty() && write(fd, content.data(), content.size()) < 0) {
    }
    close(fd);
  }
  if (age_s > 0) {
    struct timeval times[2];
    gettimeofday(&times[0], nullptr);
    times[0].tv_sec -= age_s;
    times[1] = times[0];
    utimes(lock.c_str(), times);
  }
  return lock;
}

// A pid that is certainly dead: a child that has exited and been reaped.
pid_t DeadPid() {
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  int status;
  waitpid(pid, &status, 0);
  return pid;
}

TEST(stale_lock_of_a_dead_process_is_taken_over) {
  std::string dir = MakeTempDir();
  std::string path = dir + "/s.ipc";
  std::string lock = WriteLock(path, std::to_string(DeadPid()) + "\n", 0);
  TestDelegate delegate;
  ServerOptions options;
  options.path = path;
  std::unique_ptr<Server> server;
  Status st = StartServer(options, &delegate, &server);
  CHECK(st.ok());
  struct stat sb;
  CHECK(lstat(lock.c_str(), &sb) < 0);  // released after the start, as always
  if (server) {
    server->Stop(0);
    delegate.WaitStopped();
    server->Join();
  }
  delegate.StopResponder();
  RemoveTree(dir);
}

TEST(old_empty_lock_is_taken_over_but_a_fresh_one_is_not) {
  std::string dir = MakeTempDir();
  std::string path = dir + "/s.ipc";
  ServerOptions options;
  options.path = path;
  {
    // Git's empty lock, left by a Git killed 10 s ago.
    std::string lock = WriteLock(path, "", 10);
    TestDelegate delegate;
    std::unique_ptr<Server> server;
    CHECK(StartServer(options, &delegate, &server).ok());
    if (server) {
      server->Stop(0);
      delegate.WaitStopped();
      server->Join();
    }
    delegate.StopResponder();
  }
  {
    // An empty lock just created: someone is starting right now.
    std::string lock = WriteLock(path, "", 0);
    TestDelegate delegate;
    std::unique_ptr<Server> server;
    Status st = StartServer(options, &delegate, &server);
    CHECK_EQ(st.code, EEXIST);
    struct stat sb;
    CHECK(lstat(lock.c_str(), &sb) == 0);  // left alone
    delegate.StopResponder();
  }
  RemoveTree(dir);
}

TEST(lock_of_a_live_process_is_never_taken) {
  std::string dir = MakeTempDir();
  std::string path = dir + "/s.ipc";
  // Our own pid: alive, however old the lock.
  std::string lock = WriteLock(path, std::to_string(getpid()) + "\n", 60);
  TestDelegate delegate;
  ServerOptions options;
  options.path = path;
  std::unique_ptr<Server> server;
  Status st = StartServer(options, &delegate, &server);
  CHECK_EQ(st.code, EEXIST);
  struct stat sb;
  CHECK(lstat(lock.c_str(), &sb) == 0);
  delegate.StopResponder();
  RemoveTree(dir);
}

}  // namespace
