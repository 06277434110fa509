// Verifier: the comparator of the gray-release experiment. Given what one key holds in the
// legacy backend (the control) and in the atomic backend (the candidate), it says whether
// they agree and, if not, how: each MismatchKind found, with a short human-readable diff
// naming the first occurrence that differs.
//
// Semantics. Occurrences are compared by identity (event uid, resourceVersion) and content
// (EventRecord::operator==):
//   missing    an identity the legacy backend holds and the atomic one does not;
//   extra      an identity the atomic backend holds and the legacy one does not;
//   duplicate  an identity held more than once by either backend;
//   corrupt    an identity both hold, with different content;
//   order      both hold the same occurrences (as a multiset) in a different sequence.
// The first four come from an order-insensitive comparison (per-identity counts); order is
// only judged when that comparison found nothing, so a dropped value is reported as
// missing, not also as a reordering.
//
// The EventBuffer holds the key's stripe lock while it collects both sides, so the two
// sequences are exact snapshots and any difference is real (no writes are in flight for
// the key). Comparing the same shared record pointers is the fast path: equal pointer
// sequences mean a match without touching the records.
//
// Thread safety: stateless functions; safe from any thread.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "eventbuffer/experiment.h"
#include "eventbuffer/event_record.h"

namespace eventbuffer {

struct MismatchFinding {
  MismatchKind kind;
  // e.g. "atomic lacks uid=6f1c.. resourceVersion=812 (reason=BackOff), 1st of 1".
  std::string first_difference;
};

struct Comparison {
  bool match = true;
  // One finding per kind found (at most kMismatchKindCount), in MismatchKind order.
  std::vector<MismatchFinding> findings;
};

// Compares one key's occurrences, each side in its backend's append order.
// REQUIRES: no null pointers.
Comparison CompareOccurrences(std::span<const EventRecord* const> legacy,
                              std::span<const EventRecord* const> atomic);

// "uid=<uid> resourceVersion=<rv> (reason=<reason>)" for diffs and logs.
std::string DescribeOccurrence(const EventRecord& record);

}  // namespace eventbuffer
