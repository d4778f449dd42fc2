// libFuzzer target: the real server. One PosixServer (echo handler,
// maxRequestBytes 4096) runs for the whole fuzzing session; every input
// is sent on a new connection, the client hangs up its sending side, and
// reads whatever comes back. The answer must match the reference decoder:
// a well-formed request within the limit gets exactly its echo; anything
// else gets no complete response at all.
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "../core/pkt_line.h"
#include "../core/server.h"
#include "fuzz_reference.h"

using namespace sipc;

namespace {

constexpr size_t kMaxRequest = 4096;

class EchoDelegate : public ServerDelegate {
 public:
  std::atomic<Server*> server{nullptr};
  void OnRequest(ConnId id, ByteBuffer&& request, const PeerInfo&) override {
    // Reply() does not block: allowed from inside the delegate call.
    ReplyChunk chunk;
    chunk.data = request.data();
    chunk.len = request.size();
    chunk.end = true;
    server.load()->Reply(id, chunk);
  }
  void OnPeerCheck(ConnId, const PeerInfo&) override {}
  void OnWritten(ConnId, const std::vector<uint64_t>&) override {}
  void OnConversationLost(ConnId, const Status&) override {}
  void OnClientError(const Status&, const PeerInfo&) override {}
  void OnStopped(StopReason) override { std::fprintf(stderr, "fuzz server stopped\n"); }
};

// Deliberately never destroyed: the server's threads run until exit.
EchoDelegate* g_delegate = nullptr;
Server* g_server = nullptr;
std::string* g_dir = nullptr;
std::string* g_path = nullptr;

void Cleanup() {
  if (g_path != nullptr) unlink(g_path->c_str());
  if (g_dir != nullptr) rmdir(g_dir->c_str());
}

void StartOnce() {
  char tmpl[] = "/tmp/sipc-fuzz-XXXXXX";
  char* dir = mkdtemp(tmpl);
  if (dir == nullptr) std::abort();
  g_dir = new std::string(dir);
  g_path = new std::string(*g_dir + "/s.ipc");
  ServerOptions options;
  options.path = *g_path;
  options.threads = 2;
  options.max_request_bytes = kMaxRequest;
  options.request_timeout_ms = 10000;
  g_delegate = new EchoDelegate();
  std::unique_ptr<Server> server;
  Status st = StartServer(options, g_delegate, &server);
  if (!st.ok()) {
    std::fprintf(stderr, "StartServer: %s\n", StatusMessage(st).c_str());
    std::abort();
  }
  g_server = server.release();
  g_delegate->server = g_server;
  std::atexit(Cleanup);
}

// Sends `data`, hangs up the sending side, reads until the server closes.
std::string Exchange(const uint8_t* data, size_t size) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) std::abort();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, g_path->c_str(), sizeof(addr.sun_path) - 1);
  while (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0) {
    if (errno != EINTR && errno != EAGAIN) {
      std::fprintf(stderr, "connect: %s\n", std::strerror(errno));
      std::abort();
    }
  }
  size_t off = 0;
  while (off < size) {
    ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the server closed (error, limit): fine
    off += static_cast<size_t>(n);
  }
  shutdown(fd, SHUT_WR);
  std::string out;
  char buf[8192];
  for (;;) {
    pollfd pfd{fd, POLLIN, 0};
    int rc = poll(&pfd, 1, 30000);
    if (rc < 0 && errno == EINTR) continue;
    if (rc == 0) {
      std::fprintf(stderr, "server did not close the connection within 30 s\n");
      std::abort();
    }
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EOF or reset
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  StartOnce();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string response = Exchange(data, size);
  sipc_fuzz::RefResult ref = sipc_fuzz::RefDecode(data, size, kMaxRequest);
  if (ref.state == sipc_fuzz::RefResult::kDone) {
    std::vector<uint8_t> expected;
    pkt::AppendMessage(ref.payload.data(), ref.payload.size(), &expected);
    if (response.size() != expected.size() || std::memcmp(response.data(), expected.data(), expected.size()) != 0) {
      sipc_fuzz::Crash("a well-formed request did not get its echo");
    }
  } else if (!response.empty()) {
    sipc_fuzz::Crash("a bad request got a response");
  }
  return 0;
}
