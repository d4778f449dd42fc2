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

// The socket is staged in a private directory and linked to the path with
// its mode (docs/security.md#the-socket-file): exact whatever the umask,
// and nothing is left beside the path.
TEST(socket_mode_is_exact_under_any_umask_and_leaves_nothing_beside) {
  for (mode_t mask : {mode_t{0}, mode_t{077}}) {
    mode_t old = umask(mask);
    {
      ServerOptions options;
      options.socket_mode = 0666;
      Harness h(options);
      REQUIRE(h.start_status.ok());
      umask(old);
      struct stat sb;
      REQUIRE(lstat(h.path.c_str(), &sb) == 0);
      CHECK(S_ISSOCK(sb.st_mode));
      CHECK_EQ(sb.st_mode & 07777, mode_t{0666});
      CHECK_EQ(sb.st_nlink, nlink_t{1});
      std::string response;
      CHECK(Send(h.path, "ping", &response).status.ok());
      std::vector<std::string> entries = ListDir(h.dir);
      CHECK_EQ(entries.size(), size_t{1});
      CHECK(!entries.empty() && entries[0] == "s.ipc");
    }
    umask(old);
  }
}

// `replace` stages the same way: `<path>.new` is never used, whoever's it is.
TEST(take_over_leaves_a_file_at_path_new_alone) {
  Harness h;
  REQUIRE(h.start_status.ok());
  std::string planted = h.path + ".new";
  int fd = open(planted.c_str(), O_WRONLY | O_CREAT, 0600);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, "data", 4) == 4);
  close(fd);
  TestDelegate second;
  std::unique_ptr<Server> server2;
  ServerOptions options;
  options.path = h.path;
  options.take_over = true;
  options.socket_mode = 0600;
  Status st = StartServer(options, &second, &server2);
  REQUIRE(st.ok());
  second.SetServer(server2.get());
  struct stat sb;
  CHECK(lstat(planted.c_str(), &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size == 4);
  CHECK(lstat(h.path.c_str(), &sb) == 0 && (sb.st_mode & 07777) == 0600);
  CHECK_EQ(ListDir(h.dir).size(), size_t{2});  // the socket and the planted file
  std::string response;
  CHECK(Send(h.path, "ping", &response).status.ok());
  server2->Stop(0);
  CHECK(second.WaitStopped());
  server2->Join();
  second.StopResponder();
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

// Neither a FIFO (which would block an open) nor a symlink at the lock is
// opened as a lock; both are left alone with ERR_IPC_UNSAFE_FILE.
TEST(fifo_or_symlink_lock_is_refused_without_waiting) {
  std::string dir = MakeTempDir();
  std::string path = dir + "/s.ipc";
  std::string lock = path + ".lock";
  ServerOptions options;
  options.path = path;
  for (int kind = 0; kind < 2; kind++) {
    if (kind == 0) {
      REQUIRE(mkfifo(lock.c_str(), 0600) == 0);
    } else {
      REQUIRE(symlink((dir + "/elsewhere").c_str(), lock.c_str()) == 0);
    }
    TestDelegate delegate;
    std::unique_ptr<Server> server;
    int64_t start = NowMs();
    Status st = StartServer(options, &delegate, &server);
    CHECK(st.is(LibCode::kUnsafeFile));
    CHECK(NowMs() - start < 5000);
    struct stat sb;
    CHECK(lstat(lock.c_str(), &sb) == 0 && (kind == 0 ? S_ISFIFO(sb.st_mode) : S_ISLNK(sb.st_mode)));
    CHECK(lstat((dir + "/elsewhere").c_str(), &sb) < 0);
    delegate.StopResponder();
    unlink(lock.c_str());
  }
  RemoveTree(dir);
}

// Another user's lock is never stale to us, however old (needs root to
// make one; skipped otherwise).
TEST(old_lock_of_another_user_is_left_alone) {
  if (geteuid() != 0) {
    std::fprintf(stderr, "    SKIPPED: needs root to chown a lock to another user\n");
    return;
  }
  std::string dir = MakeTempDir();
  std::string path = dir + "/s.ipc";
  std::string lock = WriteLock(path, "", 60);
  REQUIRE(chown(lock.c_str(), 65534, 65534) == 0);
  TestDelegate delegate;
  ServerOptions options;
  options.path = path;
  std::unique_ptr<Server> server;
  Status st = StartServer(options, &delegate, &server);
  CHECK(st.is(LibCode::kUnsafeFile));
  struct stat sb;
  CHECK(lstat(lock.c_str(), &sb) == 0 && sb.st_uid == 65534);
  delegate.StopResponder();
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
