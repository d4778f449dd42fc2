// Server tests: many concurrent clients, a thousand connections at once, and no descriptor or thread left behind by a server lifetime.
// Helpers: server_test_util.h.
#include "server_test_util.h"

namespace {

// ---- load ----

TEST(many_concurrent_sync_and_async_clients) {
  ServerOptions options;
  options.threads = 4;
  Harness h(options);
  REQUIRE(h.start_status.ok());
  std::atomic<int> ok{0};
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; t++) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 100; i++) {
        std::string request = "req-" + std::to_string(t) + "-" + std::to_string(i);
        if (i % 25 == 0) request = "big:200000";
        std::string response;
        ClientResult r = Send(h.path, request, &response);
        bool good = r.status.ok() && (request == "big:200000" ? response == BigPayload(200000) : response == request);
        (good ? ok : bad)++;
      }
    });
  }
  Collector collector;
  std::unique_ptr<AsyncClient> client = CreateAsyncClient(&collector);
  ClientOptions copts;
  copts.timeout_ms = kWaitMs;
  const uint64_t kAsync = 1000;
  for (uint64_t id = 1; id <= kAsync; id++) {
    client->Start(id, h.path, Transient("async-" + std::to_string(id)), copts, false);
  }
  for (std::thread& t : threads) t.join();
  CHECK(collector.Wait(kAsync, 60000));
  auto results = collector.results();
  size_t async_ok = 0;
  for (auto& kv : results) async_ok += kv.second.first == 0 && kv.second.second == "async-" + std::to_string(kv.first);
  client->Shutdown();
  CHECK_EQ(ok.load(), 1600);
  CHECK_EQ(bad.load(), 0);
  CHECK_EQ(async_ok, size_t{kAsync});
  CHECK(h.delegate.client_errors().empty());
}

TEST(thousand_connections_at_once) {
  ServerOptions options;
  options.threads = 4;
  Harness h(options);
  REQUIRE(h.start_status.ok());
  Collector collector;
  std::unique_ptr<AsyncClient> client = CreateAsyncClient(&collector);
  ClientOptions copts;
  copts.timeout_ms = 60000;
  copts.connect_timeout_ms = 30000;
  for (uint64_t id = 1; id <= 1000; id++) client->Start(id, h.path, Transient("ping"), copts, false);
  CHECK(collector.Wait(1000, 90000));
  size_t good = 0;
  for (auto& kv : collector.results()) good += kv.second.first == 0 && kv.second.second == "pong";
  client->Shutdown();
  CHECK_EQ(good, size_t{1000});
}

TEST(no_descriptor_or_thread_leak_across_a_server_lifetime) {
  int fds0 = FdCount();
  int threads0 = ThreadCount();
  {
    ServerOptions options;
    options.threads = 6;
    Harness h(options);
    REQUIRE(h.start_status.ok());
    Collector collector;
    std::unique_ptr<AsyncClient> client = CreateAsyncClient(&collector);
    ClientOptions copts;
    for (uint64_t id = 1; id <= 2000; id++) {
      client->Start(id, h.path, Transient(id % 3 == 0 ? "abort" : "ping"), copts, false);
    }
    CHECK(collector.Wait(2000, 60000));
    client->Shutdown();
    for (int i = 0; i < 20; i++) close(ConnectRaw(h.path));
    CHECK(FdCount() > fds0);
  }
  CHECK_EQ(FdCount(), fds0);
  // Threads end asynchronously after join returns on some libcs; give them
  // a moment.
  int64_t give_up = NowMs() + 5000;
  while (ThreadCount() != threads0 && NowMs() < give_up) SleepMs(10);
  CHECK_EQ(ThreadCount(), threads0);
}

}  // namespace
