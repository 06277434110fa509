// WaitShutdownDelay: the pause of the SIGTERM sequence (--shutdown-delay). After SIGTERM,
// /readyz fails at once but the serving ports go on answering for the delay, so that the
// endpoints (EndpointSlices, kube-proxy, the aggregator) move away from the pod before it
// stops answering; only then do the watch stop and the store flush.
//
// Contract: waits until `delay` has passed or a signal of `signals` arrives for which
// ends_wait(signal) is true (a second SIGTERM or SIGINT: the operator is impatient). A
// signal for which ends_wait is false (SIGHUP: its handler runs inside ends_wait) is taken
// and the wait goes on for the rest of the delay. Returns the signal that ended the wait,
// or 0 when the delay elapsed. An empty ends_wait ends the wait on any signal of the set.
// A delay of zero (or less) returns 0 at once without taking a
// pending signal.
// REQUIRES: every signal of `signals` is blocked in the calling thread (and in every other
// thread, else the kernel may deliver it elsewhere); the process takes them with
// sigtimedwait, as main() takes the first one with sigwait.
//
// Thread safety: a free function; call it from the thread that takes the signals.
#pragma once

#include <signal.h>

#include <chrono>
#include <functional>

namespace eventbuffer::controller {

int WaitShutdownDelay(const sigset_t& signals, std::chrono::milliseconds delay,
                      const std::function<bool(int signal)>& ends_wait);

}  // namespace eventbuffer::controller
