// Poller on Linux: epoll + eventfd.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

#include "poller.h"

namespace sipc {

namespace {

uint32_t ToEpoll(uint32_t events, bool oneshot) {
  uint32_t e = 0;
  // Half-close is only interesting to a reader; asking for it otherwise
  // would report a level-triggered event nobody consumes.
  if (events & kPollIn) e |= EPOLLIN | EPOLLRDHUP;
  if (events & kPollOut) e |= EPOLLOUT;
  if (oneshot) e |= EPOLLONESHOT;
#if defined(EPOLLEXCLUSIVE)
  // Allowed only with EPOLLIN/EPOLLOUT (a listening socket needs no RDHUP).
  if ((events & kPollExclusive) && !oneshot) e = (e & ~EPOLLRDHUP) | EPOLLEXCLUSIVE;
#endif
  return e;
}

class EpollPoller : public Poller {
 public:
  EpollPoller(int epfd, int wakefd) : epfd_(epfd), wakefd_(wakefd) {}
  ~EpollPoller() override {
    close(wakefd_);
    close(epfd_);
  }

  bool Add(int fd, uint32_t events, uint64_t key, bool oneshot) override {
    epoll_event ev{};
    ev.events = ToEpoll(events, oneshot);
    ev.data.u64 = key;
    return epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) == 0;
  }

  bool Modify(int fd, uint32_t events, uint64_t key, bool oneshot) override {
    epoll_event ev{};
    ev.events = ToEpoll(events, oneshot);
    ev.data.u64 = key;
    return epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev) == 0;
  }

  void Remove(int fd) override {
    epoll_event ev{};
    epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, &ev);
  }

  int Wait(PollEvent* out, int max, int timeout_ms) override {
    epoll_event events[128];
    if (max > 128) max = 128;
    int n;
    do {
      n = epoll_wait(epfd_, events, max, timeout_ms);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return -1;
    for (int i = 0; i < n; i++) {
      uint32_t e = events[i].events;
      out[i].key = events[i].data.u64;
      out[i].events = ((e & EPOLLIN) ? kPollIn : 0) | ((e & EPOLLOUT) ? kPollOut : 0) |
                      ((e & EPOLLHUP) ? kPollHangup : 0) | ((e & EPOLLRDHUP) ? kPollIn : 0) |
                      ((e & EPOLLERR) ? kPollError : 0);
      if (out[i].key == kWakeKey) {
        uint64_t value;
        while (read(wakefd_, &value, sizeof(value)) < 0 && errno == EINTR) {
        }
      }
    }
    return n;
  }

  int fd() const override { return epfd_; }

  void Wake() override {
    uint64_t one = 1;
    while (write(wakefd_, &one, sizeof(one)) < 0 && errno == EINTR) {
    }
  }

 private:
  int epfd_;
  int wakefd_;
};

}  // namespace

std::unique_ptr<Poller> Poller::Create() {
  int epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) return nullptr;
  int wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wakefd < 0) {
    int err = errno;
    close(epfd);
    errno = err;
    return nullptr;
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeKey;
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, wakefd, &ev) < 0) {
    int err = errno;
    close(wakefd);
    close(epfd);
    errno = err;
    return nullptr;
  }
  return std::unique_ptr<Poller>(new EpollPoller(epfd, wakefd));
}

}  // namespace sipc
