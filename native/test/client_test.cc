// Tests of the POSIX AsyncClient against a small raw server written here
// (blocking sockets on a thread of its own), so that the client's paths
// can be driven exactly: exchanges started from a thread that is not the
// I/O thread (as the JS thread does: connect and send happen there),
// completions on the starting thread, the timer heap, cancel, connect-only
// then Send, requests copied only when not sent at once, pause/resume of
// a stream, a full listen backlog, the poller's registration of a
// reused descriptor number, and the calling thread's side with each of its
// hand-over rules (core/caller_side.h). Built under
// ASan+UBSan and TSan by test step 20.
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../core/client.h"
#include "../core/clock.h"
#include "../core/pkt_line.h"
#include "../posix/poller.h"
#include "test_util.h"

using namespace sipc;

namespace {

// Generous: bounds a test that would otherwise hang, never measures speed.
constexpr int64_t kWaitMs = 20000;

std::vector<uint8_t> Framed(const std::string& payload) {
  std::vector<uint8_t> out;
  pkt::AppendMessage(reinterpret_cast<const uint8_t*>(payload.data()), payload.size(), &out);
  return out;
}

// A request whose bytes are the caller's only during Start().
ClientRequest Transient(const std::string& payload) {
  return ClientRequest::Transient(reinterpret_cast<const uint8_t*>(payload.data()), payload.size());
}

std::string TempSocketPath() {
  char tmpl[] = "/tmp/sipc-client-XXXXXX";
  char* dir = mkdtemp(tmpl);
  return std::string(dir != nullptr ? dir : "/tmp") + "/c.ipc";
}

// A server on blocking sockets, one connection at a time. Requests:
//   "hang"       -> never answered (until the server stops)
//   "stream:N"   -> N bytes of 'a'..'z' framed, written with blocking sends
//   anything else -> echoed.
// With `accepting` false it listens (backlog 1) but accepts no one until
// StartAccepting().
class RawServer {
 public:
  explicit RawServer(bool accepting = true) : path_(TempSocketPath()), accepting_(accepting) {
    listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
    bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    listen(listen_fd_, accepting ? 128 : 1);
    thread_ = std::thread([this] { Run(); });
  }
  ~RawServer() {
    stop_ = true;
    {
      // Unblocks a send to a paused client.
      std::lock_guard<std::mutex> lock(fd_mutex_);
      if (current_fd_ >= 0) shutdown(current_fd_, SHUT_RDWR);
    }
    thread_.join();
    close(listen_fd_);
    unlink(path_.c_str());
    rmdir(path_.substr(0, path_.rfind('/')).c_str());
  }
  const std::string& path() const { return path_; }
  void StartAccepting() { accepting_ = true; }
  // Makes the "stream:N" response ahead, so that it is answered at once.
  static void Prepare(size_t size) { FramedPattern(size); }

 private:
  void Run() {
    while (!stop_) {
      pollfd pfd{listen_fd_, POLLIN, 0};
      if (!accepting_ || poll(&pfd, 1, 20) <= 0) {
        if (!accepting_) std::this_thread::sleep_for(std::chrono::milliseconds(5));
        continue;
      }
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      {
        std::lock_guard<std::mutex> lock(fd_mutex_);
        current_fd_ = fd;
      }
      Serve(fd);
      std::lock_guard<std::mutex> lock(fd_mutex_);
      current_fd_ = -1;
      close(fd);
    }
  }

  void Serve(int fd) {
    std::string request;
    std::vector<uint8_t> payload;
    pkt::Reader reader;
    ByteBuffer got;
    char buf[4096];
    while (reader.state() == pkt::Reader::State::kNeedMore) {
      ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) return;  // a probe, or the client left
      reader.Feed(reinterpret_cast<uint8_t*>(buf), static_cast<size_t>(n), &got);
    }
    request.assign(reinterpret_cast<const char*>(got.data()), got.size());
    if (request == "hang") {
      while (!stop_) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      return;
    }
    std::vector<uint8_t> echo;
    const std::vector<uint8_t>* framed = &echo;
    if (request.rfind("stream:", 0) == 0) {
      framed = &FramedPattern(std::stoul(request.substr(7)));
    } else {
      echo = Framed(request);
    }
    Send(fd, *framed);
  }

  // The framed 'a'..'z' response of `size` bytes, made once per size: a
  // second request for it is answered at once (tests that race a timer).
  static const std::vector<uint8_t>& FramedPattern(size_t size) {
    static std::mutex mutex;
    static std::map<size_t, std::vector<uint8_t>> made;
    std::lock_guard<std::mutex> lock(mutex);
    std::vector<uint8_t>& framed = made[size];
    if (framed.empty()) {
      std::string reply(size, 'a');
      for (size_t i = 0; i < reply.size(); i++) reply[i] = static_cast<char>('a' + i % 26);
      framed = Framed(reply);
    }
    return framed;
  }

  void Send(int fd, const std::vector<uint8_t>& framed) {
    size_t off = 0;
    while (off < framed.size() && !stop_) {
      ssize_t n = send(fd, framed.data() + off, framed.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return;
      off += static_cast<size_t>(n);
    }
  }

  std::string path_;
  int listen_fd_ = -1;
  std::atomic<bool> accepting_;
  std::atomic<bool> stop_{false};
  std::mutex fd_mutex_;
  int current_fd_ = -1;  // guarded by fd_mutex_
  std::thread thread_;
};

// Collects every delegate call; records which thread made it.
class Recorder : public ClientDelegate {
 public:
  struct Outcome {
    Status status;
    ActiveState state = ActiveState::kListening;
    bool connected = false;
    std::string response;
    std::thread::id thread;
  };

  // Takes each chunk at once, so a stream never meets the hand-over
  // bound here (a chunk is far under it).
  void OnChunk(uint64_t id, ByteBuffer&& chunk, const std::shared_ptr<StreamLedger>& ledger) override {
    ledger->Taken(chunk.size());
    std::lock_guard<std::mutex> lock(mu_);
    streamed_[id] += chunk.size();
    stream_ok_ = stream_ok_ && CheckPattern(streamed_[id] - chunk.size(), chunk);
    cv_.notify_all();
  }
  void OnConnected(uint64_t id) override {
    std::lock_guard<std::mutex> lock(mu_);
    connected_[id] = true;
    cv_.notify_all();
  }
  void OnComplete(uint64_t id, const ClientResult& result, ByteBuffer&& response) override {
    std::lock_guard<std::mutex> lock(mu_);
    Outcome& o = done_[id];
    o.status = result.status;
    o.state = result.connect_state;
    o.connected = result.connected;
    o.response.assign(reinterpret_cast<const char*>(response.data()), response.size());
    o.thread = std::this_thread::get_id();
    order_.push_back(id);
    cv_.notify_all();
  }

  template <typename Pred>
  bool WaitFor(Pred pred, int64_t ms = kWaitMs) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::milliseconds(ms), [&] { return pred(); });
  }
  bool WaitDone(size_t n) {
    return WaitFor([&] { return done_.size() >= n; });
  }
  Outcome outcome(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    return done_[id];
  }
  size_t streamed(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    return streamed_[id];
  }
  bool reported(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    return std::find(order_.begin(), order_.end(), id) != order_.end();
  }
  bool connected(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    return connected_[id];
  }
  std::vector<uint64_t> order() {
    std::lock_guard<std::mutex> lock(mu_);
    return order_;
  }
  bool stream_ok() {
    std::lock_guard<std::mutex> lock(mu_);
    return stream_ok_;
  }
  std::map<uint64_t, bool> connected_;   // guarded by mu_
  std::map<uint64_t, Outcome> done_;     // guarded by mu_
  std::map<uint64_t, size_t> streamed_;  // guarded by mu_
  std::vector<uint64_t> order_;          // guarded by mu_: completions in order

 private:
  static bool CheckPattern(size_t offset, const ByteBuffer& chunk) {
    for (size_t i = 0; i < chunk.size(); i++) {
      if (chunk.data()[i] != static_cast<uint8_t>('a' + (offset + i) % 26)) return false;
    }
    return true;
  }
  std::mutex mu_;
  std::condition_variable cv_;
  bool stream_ok_ = true;  // guarded by mu_
};

ClientOptions Options(int64_t timeout_ms = kWaitMs) {
  ClientOptions options;
  options.timeout_ms = timeout_ms;
  return options;
}

}  // namespace

TEST(exchanges_started_from_another_thread_complete) {
  RawServer server;
  Recorder recorder;
  std::unique_ptr<AsyncClient> client = CreateAsyncClient(&recorder);
  // The "JS thread": connects and sends there; the I/O thread reads.
  std::thread starter([&] {
    for (uint64_t id = 1; id <= 200; id++) {
      if (id % 2) {
        client->Start(id, server.path(), Transient("echo-" + std::to_string(id)), Options(), false);
      } else {
        static const std::string kBorrowed = std::string(100000, 'b');
        client->Start(id, server.path(),
                      ClientRequest::Borrowed(reinterpret_cast<const uint8_t*>(kBorrowed.data()), kBorrowed.size()),
                      Options(), false);
      }
    }
  });
  starter.join();
  REQUIRE(recorder.WaitDone(200));
  int good = 0;
  for (uint64_t id = 1; id <= 200; id++) {
    Recorder::Outcome o = recorder.outcome(id);
    std::string expected = id % 2 ? "echo-" + std::to_string(id) : std::string(100000, 'b');
    good += o.status.ok() && o.response == expected;
  }
  CHECK_EQ(good, 200);
  client->Shutdown();
}

TEST(an_exchange_that_fails_at_once_reports_on_the_starting_thread) {
  Recorder recorder;
  std::unique_ptr<AsyncClient> client = CreateAsyncClient(&recorder);
  std::string missing = TempSocketPath();  // nothing listens there
  client->Start(1, missing, Transient("x"), Options(), false);
  REQUIRE(recorder.WaitDone(1));
  Recorder::Outcome o = recorder.outcome(1);
  CHECK_EQ(o.status.code, ENOENT);
  CHECK(o.state == ActiveState::kPathNotFound);
  CHECK(o.thread == std::this_thread::get_id());
  client->Shutdown();
  rmdir(missing.substr(0, missing.rfind('/')).c_str());
}

TEST(timeouts_fire_in_deadline_order_from_the_timer_heap) {
  RawServer server;
  Recorder recorder;
  std::unique_ptr<AsyncClient> client = CreateAsyncClient(&recorder);
  // One hanging exchange at a time (the raw server serves one connection
  // at a time; the others wait in its backlog): all time out.
  const int64_t timeouts[] = {400, 100, 250};
  for (uint64_t id = 1; id <= 3; id++) client->Start(id, server.path(), Transient("hang"), Options(timeouts[id - 1]), false);
  REQUIRE(recorder.WaitDone(3));
  for (uint64_t id = 1; id <= 3; id++) CHECK(recorder.outcome(id).status.is(LibCode::kTimeout));
  CHECK(recorder.order() == (std::vector<uint64_t>{2, 3, 1}));
  client->Shutdown();
}

TEST(cancel_and_connect_only_then_send) {
  RawServer server;
  Recorder recorder;
  std::unique_ptr<AsyncClient> client = CreateAsyncClient(&recorder);
  client->Start(1, server.path(), ClientRequest::None(), Options(), false);
  REQUIRE(recorder.WaitFor([&] { return recorder.connected_[1]; }));  // under its mutex
  client->Send(1, reinterpret_cast<const uint8_t*>("later"), 5);
  REQUIRE(recorder.WaitDone(1));
  CHECK_EQ(recorder.outcome(1).response, std::string("later"));

  client->Start(2, server.path(), Transient("hang"), Options(), false);
  client->Cancel(2, Status::Lib(LibCode::kAborted, "cancelled"));
  client->Cancel(2, Status::Lib(LibCode::kAborted, "twice"));  // no-op
  client->Cancel(99, Status::Lib(LibCode::kAborted, "unknown"));  // no-op
  REQUIRE(recorder.WaitDone(2));
  CHECK(recorder.outcome(2).status.is(LibCode::kAborted));
  client->Shutdown();
}

TEST(a_paused_stream_stops_reading_and_resumes_intact) {
  RawServer server;
  Recorder recorder;
  std::unique_ptr<AsyncClient> client = CreateAsyncClient(&recorder);
  const size_t kTotal = 16 * 1024 * 1024;
  client->Start(1, server.path(), Transient("stream:" + std::to_string(kTotal)), Options(), true);
  client->Pause(1);
  // However fast the server writes, a paused stream takes at most what
  // was read before the pause arrived plus one step (1 MiB per step).
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  size_t while_paused = recorder.streamed(1);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK_EQ(recorder.streamed(1), while_paused);
  CHECK(while_paused < kTotal);
  client->Resume(1);
  REQUIRE(recorder.WaitDone(1));
  CHECK(recorder.outcome(1).status.ok());
  CHECK_EQ(recorder.streamed(1), kTotal);
  CHECK(recorder.stream_ok());
  client->Pause(1);   // unknown by now: no-op
  client->Resume(1);
  client->Shutdown();
}

TEST(a_full_backlog_outlasts_the_connect_timeout) {
  RawServer server(false);  // listens, accepts no one yet
  Recorder recorder;
  std::unique_ptr<AsyncClient> client = CreateAsyncClient(&recorder);
  ClientOptions options = Options();
  options.connect_timeout_ms = 50;
  // Backlog 1: the first connections queue, the rest see EAGAIN and wait
  // far beyond connect_timeout_ms.
  for (uint64_t id = 1; id <= 10; id++) client->Start(id, server.path(), Transient("b" + std::to_string(id)), options, false);
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  server.StartAccepting();
  REQUIRE(recorder.WaitDone(10));
  int good = 0;
  for (uint64_t id = 1; id <= 10; id++) good += recorder.outcome(id).response == "b" + std::to_string(id);
  CHECK_EQ(good, 10);
  client->Shutdown();
}

// A transient request's bytes are the caller's only during the call. With a
// backlog of 1 the first requests go out at once and the rest wait to
// connect again: those must have been copied, since the caller's buffer is
// scribbled over and freed right after each call (ASan sees any later read).
TEST(transient_requests_that_wait_to_connect_are_copied) {
  RawServer server(false);  // listens, accepts no one yet
  Recorder recorder;
  std::unique_ptr<AsyncClient> client = CreateAsyncClient(&recorder);
  for (uint64_t id = 1; id <= 10; id++) {
    std::string payload = "transient-" + std::to_string(id) + std::string(id * 100, 't');
    std::vector<uint8_t> bytes(payload.begin(), payload.end());
    client->Start(id, server.path(), ClientRequest::Transient(bytes.data(), bytes.size()), Options(), false);
    std::fill(bytes.begin(), bytes.end(), uint8_t{'X'});
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  server.StartAccepting();
  REQUIRE(recorder.WaitDone(10));
  int good = 0;
  for (uint64_t id = 1; id <= 10; id++) {
    good += recorder.outcome(id).response == "transient-" + std::to_string(id) + std::string(id * 100, 't');
  }
  CHECK_EQ(good, 10);
  client->Shutdown();
}

TEST(shutdown_with_exchanges_in_every_phase_reports_nothing_after) {
  RawServer server(false);
  Recorder recorder;
  std::unique_ptr<AsyncClient> client = CreateAsyncClient(&recorder);
  for (uint64_t id = 1; id <= 20; id++) client->Start(id, server.path(), Transient("hang"), Options(), id % 2 == 0);
  client->Start(21, server.path(), ClientRequest::None(), Options(), false);
  client->Shutdown();
  size_t reported = recorder.order().size();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK_EQ(recorder.order().size(), reported);  // nothing after Shutdown
}

// The async client's I/O thread forgets a socket's registration after the
// exchange closed it; meanwhile the JS thread may have connected a new
// socket that got the same number and registered it under its own id.
// The late Forget() must leave that registration alone (with the poll()
// backend it used to drop it: the new exchange then waited forever).
TEST(a_late_forget_of_a_closed_descriptor_keeps_the_new_registration) {
  std::unique_ptr<Poller> poller = Poller::Create();
  REQUIRE(poller != nullptr);
  int old_pair[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, old_pair) == 0);
  int number = old_pair[0];
  REQUIRE(poller->Add(number, kPollIn, 1, false));
  close(old_pair[0]);  // the exchange ends: its socket closes first
  close(old_pair[1]);
  int new_pair[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, new_pair) == 0);
  if (new_pair[0] != number) {  // give the new socket the old number
    REQUIRE(dup2(new_pair[0], number) == number);
    close(new_pair[0]);
    new_pair[0] = number;
  }
  // Another thread registers the new socket, then the owner of the old
  // one forgets it.
  std::thread other([&] { poller->Add(number, kPollIn, 2, false); });
  other.join();
  poller->Forget(number, 1);
  REQUIRE(write(new_pair[1], "x", 1) == 1);
  bool seen = false;
  int64_t give_up = NowMs() + 5000;
  while (!seen && NowMs() < give_up) {
    PollEvent events[8];
    int n = poller->Wait(events, 8, 100);
    for (int i = 0; i < n; i++) {
      if (events[i].key == Poller::kWakeKey) continue;
      CHECK_EQ(events[i].key, uint64_t{2});
      CHECK((events[i].events & kPollIn) != 0);
      seen = true;
    }
  }
  CHECK(seen);
  poller->Forget(number, 2);
  close(new_pair[0]);
  close(new_pair[1]);
}

// The blocking streaming client (the native command-line client's
// transport): a response larger than one read arrives in several pieces,
// intact and in order, and none of it is kept by the client.
class PieceCounter : public ResponseSink {
 public:
  void OnResponseBytes(const uint8_t* data, size_t len) override {
    for (size_t i = 0; i < len; i++) intact = intact && data[i] == static_cast<uint8_t>('a' + (total + i) % 26);
    total += len;
    pieces++;
  }
  size_t total = 0;
  int pieces = 0;
  bool intact = true;
};

TEST(the_blocking_client_streams_a_large_response_in_pieces) {
  RawServer server;
  const std::string request = "stream:3000000";
  PieceCounter sink;
  ClientResult result = SendCommandSyncStreaming(server.path(), reinterpret_cast<const uint8_t*>(request.data()),
                                                 request.size(), ClientOptions{}, &sink);
  CHECK(result.status.ok());
  CHECK_EQ(sink.total, size_t{3000000});
  CHECK(sink.intact);
  CHECK(sink.pieces > 1);
}

TEST(the_blocking_streaming_client_times_out_and_tells_a_missing_server) {
  RawServer server;
  const std::string request = "hang";
  PieceCounter sink;
  ClientOptions options;
  options.timeout_ms = 100;
  ClientResult result = SendCommandSyncStreaming(server.path(), reinterpret_cast<const uint8_t*>(request.data()),
                                                 request.size(), options, &sink);
  CHECK(result.status.is(LibCode::kTimeout));
  CHECK(result.connected);
  CHECK_EQ(sink.total, size_t{0});

  const std::string missing = server.path() + ".none";
  result = SendCommandSyncStreaming(missing, reinterpret_cast<const uint8_t*>(request.data()), request.size(),
                                    ClientOptions{}, &sink);
  CHECK(!result.connected);
  CHECK(result.connect_state == ActiveState::kPathNotFound);
}

// ---- the calling thread's side (core/caller_side.h) -------------------------

// Plays the JS thread's event loop: waits for caller_fd() with poll() and
// completes what is ready there, until `pred()` holds (false after kWaitMs).
class CallerLoop {
 public:
  explicit CallerLoop(AsyncClient* client) : client_(client) {}

  template <typename Pred>
  bool RunUntil(Pred pred) {
    int64_t give_up = NowMs() + kWaitMs;
    while (!pred()) {
      if (NowMs() > give_up) return false;
      Turn(10);
    }
    return true;
  }

  // One turn: waits up to `timeout_ms` for caller_fd(), then completes.
  void Turn(int timeout_ms) {
    pollfd p{client_->caller_fd(), POLLIN, 0};
    poll(&p, 1, timeout_ms);
    std::vector<AsyncClient::Completion> batch;
    client_->CompleteOnCaller(&batch);
    for (AsyncClient::Completion& c : batch) {
      CHECK(done_.count(c.id) == 0);  // once only
      bool ok = c.result.status.ok();
      done_[c.id].assign(ok ? reinterpret_cast<const char*>(c.response.data()) : "", ok ? c.response.size() : 0);
      if (!ok) failed_++;
    }
  }
  size_t completed() const { return done_.size(); }
  bool has(uint64_t id) const { return done_.count(id) != 0; }
  const std::string& response(uint64_t id) { return done_[id]; }
  int failed() const { return failed_; }

 private:
  AsyncClient* client_;
  std::map<uint64_t, std::string> done_;  // ok responses; "" for a failure
  int failed_ = 0;
};

// With the poll() backend there is no calling thread's side: every
// exchange finishes on the I/O thread (the tests before this cover that).
bool HasCallerSide(AsyncClient* client) { return client->caller_fd() >= 0; }

TEST(small_exchanges_finish_on_the_calling_thread) {
  RawServer server;
  Recorder recorder;
  std::unique_ptr<AsyncClient> client = CreateAsyncClient(&recorder);
  if (!HasCallerSide(client.get())) return;
  client->UseCallerSide();
  CallerLoop loop(client.get());
  for (uint64_t id = 1; id <= 20; id++) {
    client->Start(id, server.path(), Transient("echo-" + std::to_string(id)), Options(), false);
    REQUIRE(loop.RunUntil([&] { return loop.has(id) || recorder.reported(id); }));
  }
  int here = 0;
  for (uint64_t id = 1; id <= 20; id++) {
    if (!loop.has(id)) continue;  // taken over (the machine was slow for 5 ms): fine
    here++;
    CHECK_EQ(loop.response(id), "echo-" + std::to_string(id));
  }
  CHECK_EQ(loop.failed(), 0);
  // Each answer is there within microseconds; on a loaded machine a few
  // may still wait past CallerSide::kWaitMs and go to the I/O thread.
  CHECK(here >= 1);
  CHECK_EQ(here + static_cast<int>(recorder.order().size()), 20);
  client->Shutdown();
}

// A consumer that takes chunks only when the test says so (a starved JS
// thread), and takes them the way the addon does: Taken() once it has
// them, ChunksTaken() when that says so.
class Hoarder : public ClientDelegate {
 public:
  void OnChunk(uint64_t, ByteBuffer&& chunk, const std::shared_ptr<StreamLedger>& ledger) override {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < chunk.size(); i++) {
      if (chunk.data()[i] != static_cast<uint8_t>('a' + (handed_ + i) % 26)) in_order_ = false;
    }
    handed_ += chunk.size();
    held_.emplace_back(chunk.size(), ledger);
    cv_.notify_all();
  }
  void OnConnected(uint64_t) override {}
  void OnComplete(uint64_t, const ClientResult& result, ByteBuffer&&) override {
    std::lock_guard<std::mutex> lock(mu_);
    status_ = result.status;
    done_ = true;
    cv_.notify_all();
  }
  // The test thread takes everything handed over so far; true when the
  // exchange must be woken.
  bool TakeAll() {
    std::vector<std::pair<size_t, std::shared_ptr<StreamLedger>>> taken;
    {
      std::lock_guard<std::mutex> lock(mu_);
      taken.swap(held_);
    }
    bool wake = false;
    for (auto& t : taken) wake = t.second->Taken(t.first) || wake;
    return wake;
  }
  template <typename Pred>
  bool WaitFor(Pred pred, int64_t ms = kWaitMs) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::milliseconds(ms), [&] { return pred(); });
  }
  size_t handed_ = 0;      // guarded by mu_
  bool done_ = false;      // guarded by mu_
  bool in_order_ = true;   // guarded by mu_
  Status status_;          // guarded by mu_
  std::mutex mu_;

 private:
  std::condition_variable cv_;
  std::vector<std::pair<size_t, std::shared_ptr<StreamLedger>>> held_;  // guarded by mu_
};

// The hand-over bound over a real socket: a consumer that takes nothing
// holds the stream at kMaxUntakenStreamBytes (plus the one chunk that
// reached it), however fast the server writes and with no pause asked
// for; once it takes what it has and wakes the exchange, the rest
// arrives, intact.
TEST(a_stream_whose_consumer_takes_nothing_stops_at_the_hand_over_bound) {
  RawServer server;
  Hoarder hoarder;
  std::unique_ptr<AsyncClient> client = CreateAsyncClient(&hoarder);
  const size_t kTotal = 32 * 1024 * 1024;
  const size_t kMaxChunk = 1024 * 1024;  // what one step reads (socket_exchange.cc)
  client->Start(1, server.path(), Transient("stream:" + std::to_string(kTotal)), Options(), true);
  REQUIRE(hoarder.WaitFor([&] { return hoarder.handed_ >= kMaxUntakenStreamBytes; }));
  // Nothing more comes however long we wait (the server could send it all).
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  size_t stopped_at = 0;
  {
    std::lock_guard<std::mutex> lock(hoarder.mu_);
    stopped_at = hoarder.handed_;
    CHECK(!hoarder.done_);
  }
  CHECK(stopped_at < kMaxUntakenStreamBytes + kMaxChunk);
  size_t wakes = 0;
  for (;;) {
    size_t seen = 0;
    {
      std::lock_guard<std::mutex> lock(hoarder.mu_);
      if (hoarder.done_) break;
      seen = hoarder.handed_;
    }
    if (hoarder.TakeAll()) {
      wakes++;
      client->ChunksTaken(1);
    }
    // Taking everything either woke the stream or it never stopped: more
    // comes, or the end.
    REQUIRE(hoarder.WaitFor([&] { return hoarder.done_ || hoarder.handed_ > seen; }));
  }
  hoarder.TakeAll();
  std::lock_guard<std::mutex> lock(hoarder.mu_);
  CHECK(hoarder.status_.ok());
  CHECK_EQ(hoarder.handed_, kTotal);
  CHECK(hoarder.in_order_);
  CHECK(wakes >= 1);
  client->ChunksTaken(1);  // unknown by now: no-op
  client->Shutdown();
}

// The ledger's wake-up is never lost, and comes once per stop: an
// exchange's thread that hands chunks over until told to stop and then
// waits for a wake, against a consumer thread that takes them as they
// come. A lost wake leaves the producer waiting (the bound below fails).
TEST(the_hand_over_ledger_never_loses_a_wake_up) {
  StreamLedger ledger;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<size_t> queue;  // guarded by mu: chunks on their way
  size_t wakes = 0;           // guarded by mu: ChunksTaken() commands
  bool over = false;          // guarded by mu
  std::thread consumer([&] {
    for (;;) {
      std::vector<size_t> batch;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return over || !queue.empty(); });
        if (queue.empty()) return;
        batch.swap(queue);
      }
      for (size_t n : batch) {
        if (!ledger.Taken(n)) continue;
        std::lock_guard<std::mutex> lock(mu);
        wakes++;
        cv.notify_all();
      }
    }
  });
  size_t stops = 0;
  bool lost = false;
  for (int i = 0; i < 20000 && !lost; i++) {
    size_t n = 64 * 1024 * (1 + i % 16);
    bool stop = ledger.HandedOver(n);  // counted before the consumer can see it
    std::unique_lock<std::mutex> lock(mu);
    queue.push_back(n);
    cv.notify_all();
    if (!stop) continue;
    stops++;
    lost = !cv.wait_for(lock, std::chrono::milliseconds(kWaitMs), [&] { return wakes == stops; });
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    over = true;
    cv.notify_all();
  }
  consumer.join();
  CHECK(!lost);
  CHECK(stops > 0);
  CHECK_EQ(wakes, stops);
  CHECK_EQ(ledger.untaken(), uint64_t{0});
}

// Hand-over rule: an exchange left waiting while the calling thread is busy
// goes to the I/O thread, which reads the response so that the server is
// not stalled (the raw server's blocking writes would wait forever).
TEST(a_large_response_is_read_by_the_io_thread_while_the_caller_is_busy) {
  RawServer server;
  Recorder recorder;
  std::unique_ptr<AsyncClient> client = CreateAsyncClient(&recorder);
  if (!HasCallerSide(client.get())) return;
  client->UseCallerSide();
  const size_t kTotal = 8 * 1024 * 1024;
  client->Start(1, server.path(), Transient("stream:" + std::to_string(kTotal)), Options(), false);
  // The calling thread never looks at caller_fd().
  REQUIRE(recorder.WaitDone(1));
  Recorder::Outcome o = recorder.outcome(1);
  CHECK(o.status.ok());
  CHECK_EQ(o.response.size(), kTotal);
  CHECK(o.thread != std::this_thread::get_id());
  client->Shutdown();
}

// Hand-over rule: a deadline fires while the calling thread is busy.
TEST(a_deadline_fires_while_the_caller_is_busy) {
  RawServer server;
  Recorder recorder;
  std::unique_ptr<AsyncClient> client = CreateAsyncClient(&recorder);
  if (!HasCallerSide(client.get())) return;
  client->UseCallerSide();
  int64_t start = NowMs();
  client->Start(1, server.path(), Transient("hang"), Options(100), false);
  REQUIRE(recorder.WaitDone(1));
  CHECK(recorder.outcome(1).status.is(LibCode::kTimeout));
  CHECK(NowMs() - start >= 100);
  client->Shutdown();
}

// Hand-over rule: a response that one bounded step on the calling thread
// does not finish goes to the I/O thread with what was read.
TEST(a_response_larger_than_one_step_goes_to_the_io_thread) {
  RawServer server;
  Recorder recorder;
  std::unique_ptr<AsyncClient> client = CreateAsyncClient(&recorder);
  if (!HasCallerSide(client.get())) return;
  client->UseCallerSide();
  CallerLoop loop(client.get());
  const size_t kTotal = 20 * 1024 * 1024;  // more than one step reads (4 MiB)
  // Answered at once, well within CallerSide::kWaitMs, so that the
  // calling thread's step (not the hand-over timer) meets it first.
  RawServer::Prepare(kTotal);
  client->Start(1, server.path(), Transient("stream:" + std::to_string(kTotal)), Options(), false);
  REQUIRE(loop.RunUntil([&] { return recorder.order().size() == 1; }));
  CHECK(!loop.has(1));
  Recorder::Outcome o = recorder.outcome(1);
  CHECK(o.status.ok());
  CHECK_EQ(o.response.size(), kTotal);
  bool intact = true;
  for (size_t i = 0; i < o.response.size() && intact; i++) intact = o.response[i] == static_cast<char>('a' + i % 26);
  CHECK(intact);
  client->Shutdown();
}

// Hand-over rule: a command (a cancel) for a waiting exchange hands it to
// the I/O thread first, which applies it.
TEST(a_cancel_of_a_waiting_exchange_is_applied_by_the_io_thread) {
  RawServer server;
  Recorder recorder;
  std::unique_ptr<AsyncClient> client = CreateAsyncClient(&recorder);
  if (!HasCallerSide(client.get())) return;
  client->UseCallerSide();
  CallerLoop loop(client.get());
  client->Start(1, server.path(), Transient("hang"), Options(-1), false);
  client->Cancel(1, Status::Lib(LibCode::kAborted, "cancelled"));
  REQUIRE(loop.RunUntil([&] { return recorder.order().size() == 1; }));
  CHECK(recorder.outcome(1).status.is(LibCode::kAborted));
  CHECK(!loop.has(1));
  client->Shutdown();
}

// Both threads at once (TSan): exchanges complete on the calling thread
// while the I/O thread takes others over; each completes exactly once.
TEST(exchanges_split_between_the_caller_and_the_io_thread_complete_once) {
  RawServer server;
  Recorder recorder;
  std::unique_ptr<AsyncClient> client = CreateAsyncClient(&recorder);
  if (!HasCallerSide(client.get())) return;
  client->UseCallerSide();
  CallerLoop loop(client.get());
  const uint64_t kCount = 200;
  for (uint64_t id = 1; id <= kCount; id++) {
    // A large one now and then keeps the one-at-a-time server busy, so
    // that the small ones queued behind it wait past the hand-over time.
    std::string request = id % 25 == 0 ? "stream:3000000" : "echo-" + std::to_string(id);
    client->Start(id, server.path(), Transient(request), Options(), false);
    if (id % 10 == 0) loop.Turn(0);
  }
  REQUIRE(loop.RunUntil([&] { return loop.completed() + recorder.order().size() >= kCount; }));
  int good = 0;
  for (uint64_t id = 1; id <= kCount; id++) {
    std::string response = loop.has(id) ? loop.response(id) : recorder.outcome(id).response;
    good += id % 25 == 0 ? response.size() == 3000000 : response == "echo-" + std::to_string(id);
    CHECK(!(loop.has(id) && recorder.reported(id)));
  }
  CHECK_EQ(good, static_cast<int>(kCount));
  CHECK_EQ(loop.completed() + recorder.order().size(), size_t{kCount});
  client->Shutdown();
}

TEST(shutdown_with_exchanges_waiting_on_the_caller_reports_nothing_after) {
  RawServer server;
  Recorder recorder;
  std::unique_ptr<AsyncClient> client = CreateAsyncClient(&recorder);
  if (!HasCallerSide(client.get())) return;
  client->UseCallerSide();
  for (uint64_t id = 1; id <= 10; id++) client->Start(id, server.path(), Transient("hang"), Options(-1), false);
  client->Shutdown();
  size_t reported = recorder.order().size();
  std::vector<AsyncClient::Completion> batch;
  client->CompleteOnCaller(&batch);
  CHECK(batch.empty());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK_EQ(recorder.order().size(), reported);
}

TEST_MAIN()
