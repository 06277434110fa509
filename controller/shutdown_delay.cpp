#include "controller/shutdown_delay.h"

#include <cerrno>
#include <ctime>

namespace eventbuffer::controller {

int WaitShutdownDelay(const sigset_t& signals, std::chrono::milliseconds delay,
                      const std::function<bool(int signal)>& ends_wait) {
  if (delay.count() <= 0) return 0;
  using Clock = std::chrono::steady_clock;
  const Clock::time_point deadline = Clock::now() + delay;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - Clock::now());
    if (left.count() <= 0) return 0;
    timespec timeout{};
    timeout.tv_sec = static_cast<time_t>(left.count() / 1'000'000'000);
    timeout.tv_nsec = static_cast<long>(left.count() % 1'000'000'000);
    const int sig = sigtimedwait(&signals, nullptr, &timeout);
    if (sig < 0) {
      // EAGAIN: the timeout passed (the loop sees the deadline); EINTR: a signal outside
      // the set interrupted the wait: wait for the rest.
      if (errno == EAGAIN || errno == EINTR) continue;
      return 0;  // EINVAL cannot happen for a valid timeout; do not spin on it
    }
    if (!ends_wait || ends_wait(sig)) return sig;
  }
}

}  // namespace eventbuffer::controller
