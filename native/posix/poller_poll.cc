// Poller on POSIX systems without epoll (macOS, the BSDs): poll() and a
// self-pipe. Slower than epoll with many descriptors (the set is rebuilt
// for every Wait), but the same semantics: level-triggered, one-shot
// registrations disarmed after one event, hang-up and error always
// reported for armed registrations.
//
// Threads: Add/Modify/Remove may come from any thread; they change the
// registration table under `mutex_` and wake the waiter so that its next
// poll() sees the change. Wait runs on the owning thread only.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>
#include <vector>

#include "poller.h"

namespace sipc {

namespace {

bool MakeNonBlockingCloexec(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return false;
  int fdfl = fcntl(fd, F_GETFD);
  return fdfl >= 0 && fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) == 0;
}

class PollPoller : public Poller {
 public:
  PollPoller(int wake_read, int wake_write) : wake_read_(wake_read), wake_write_(wake_write) {}
  ~PollPoller() override {
    close(wake_read_);
    close(wake_write_);
  }

  bool Add(int fd, uint32_t events, uint64_t key, bool oneshot) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      // A registration left for this number belongs to a descriptor that
      // was closed and not forgotten yet (its owner may still call
      // Forget() with its key, which then leaves this one alone): the
      // number was reused. Replace it, as epoll would have dropped it at
      // close.
      Registration* r = Find(fd);
      if (r != nullptr) {
        *r = Registration{fd, events, key, oneshot, true};
      } else {
        registrations_.push_back(Registration{fd, events, key, oneshot, true});
      }
    }
    Wake();
    return true;
  }

  bool Modify(int fd, uint32_t events, uint64_t key, bool oneshot) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      Registration* r = Find(fd);
      if (r == nullptr) {
        errno = ENOENT;
        return false;
      }
      *r = Registration{fd, events, key, oneshot, true};
    }
    Wake();
    return true;
  }

  // Only the registration made with `key`: a thread that closed `fd`
  // forgets it after the close, and by then another thread may have added
  // a new descriptor with the same number (Add replaced the old
  // registration); dropping by number alone would lose that one for good.
  void Forget(int fd, uint64_t key) override {
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t i = 0; i < registrations_.size(); i++) {
      if (registrations_[i].fd == fd) {
        if (registrations_[i].key == key) {
          registrations_[i] = registrations_.back();
          registrations_.pop_back();
        }
        return;
      }
    }
  }

  void Remove(int fd) override {
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t i = 0; i < registrations_.size(); i++) {
      if (registrations_[i].fd == fd) {
        registrations_[i] = registrations_.back();
        registrations_.pop_back();
        return;
      }
    }
  }

  int Wait(PollEvent* out, int max, int timeout_ms) override {
    std::vector<pollfd> fds;
    std::vector<uint64_t> keys;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      fds.reserve(registrations_.size() + 1);
      fds.push_back(pollfd{wake_read_, POLLIN, 0});
      keys.push_back(kWakeKey);
      for (const Registration& r : registrations_) {
        if (!r.armed) continue;
        short events = static_cast<short>(((r.events & kPollIn) ? POLLIN : 0) | ((r.events & kPollOut) ? POLLOUT : 0));
        fds.push_back(pollfd{r.fd, events, 0});
        keys.push_back(r.key);
      }
    }
    int n = poll(fds.data(), fds.size(), timeout_ms);
    if (n < 0) return errno == EINTR ? 0 : -1;
    int stored = 0;
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t i = 0; i < fds.size() && stored < max; i++) {
      short re = fds[i].revents;
      if (re == 0) continue;
      if (keys[i] == kWakeKey) {
        char buf[64];
        while (read(wake_read_, buf, sizeof(buf)) > 0) {
        }
        out[stored++] = PollEvent{kWakeKey, kPollIn};
        continue;
      }
      // The table may have changed while we were in poll(): report only a
      // registration that is still the same (same descriptor and key) and
      // still armed.
      Registration* r = Find(fds[i].fd);
      if (r == nullptr || r->key != keys[i] || !r->armed) continue;
      if (re & POLLNVAL) {
        // Closed without Forget(): drop it, or poll() would return at once
        // forever.
        *r = registrations_.back();
        registrations_.pop_back();
        continue;
      }
      uint32_t events = 0;
      if ((re & POLLIN) && (r->events & kPollIn)) events |= kPollIn;
      if ((re & POLLOUT) && (r->events & kPollOut)) events |= kPollOut;
      if (re & POLLHUP) events |= kPollHangup;
      if (re & POLLERR) events |= kPollError;
      if (events == 0) continue;
      if (r->oneshot) r->armed = false;
      out[stored++] = PollEvent{keys[i], events};
    }
    return stored;
  }

  void Wake() override {
    char one = 1;
    while (write(wake_write_, &one, 1) < 0 && errno == EINTR) {
    }
  }

 private:
  struct Registration {
    int fd;
    uint32_t events;
    uint64_t key;
    bool oneshot;
    bool armed;
  };

  Registration* Find(int fd) {
    for (Registration& r : registrations_) {
      if (r.fd == fd) return &r;
    }
    return nullptr;
  }

  int wake_read_;
  int wake_write_;
  std::mutex mutex_;
  std::vector<Registration> registrations_;  // (mutex_)
};

}  // namespace

std::unique_ptr<Poller> Poller::Create() {
  int fds[2];
  if (pipe(fds) < 0) return nullptr;
  if (!MakeNonBlockingCloexec(fds[0]) || !MakeNonBlockingCloexec(fds[1])) {
    int err = errno;
    close(fds[0]);
    close(fds[1]);
    errno = err;
    return nullptr;
  }
  return std::unique_ptr<Poller>(new PollPoller(fds[0], fds[1]));
}

}  // namespace sipc
