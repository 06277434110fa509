#include "eventbuffer/verifier.h"

#include <algorithm>
#include <string_view>
#include <unordered_map>

namespace eventbuffer {

namespace {

struct IdentityHash {
  std::size_t operator()(const std::pair<std::string_view, std::string_view>& id) const {
    return std::hash<std::string_view>{}(id.first) * 31 + std::hash<std::string_view>{}(id.second);
  }
};
using Identity = std::pair<std::string_view, std::string_view>;

Identity IdentityOf(const EventRecord* r) { return {r->uid(), r->resource_version()}; }

struct Side {
  std::size_t count = 0;
  const EventRecord* first = nullptr;
};

constexpr std::string_view kFieldNames[EventRecord::kFieldCount] = {"uid",
                                                                    "resourceVersion",
                                                                    "namespace",
                                                                    "name",
                                                                    "involvedObject.kind",
                                                                    "involvedObject.namespace",
                                                                    "involvedObject.name",
                                                                    "involvedObject.uid",
                                                                    "involvedObject.apiVersion",
                                                                    "involvedObject.fieldPath",
                                                                    "reason",
                                                                    "message",
                                                                    "type",
                                                                    "firstTimestamp",
                                                                    "lastTimestamp",
                                                                    "eventTime",
                                                                    "source.component",
                                                                    "source.host",
                                                                    "reportingComponent",
                                                                    "reportingInstance",
                                                                    "action",
                                                                    "metadata.creationTimestamp",
                                                                    "series.lastObservedTime",
                                                                    "related"};

// Names the first field in which a and b differ.
std::string FirstDifferentField(const EventRecord& a, const EventRecord& b) {
  for (std::size_t i = 0; i < EventRecord::kFieldCount; ++i) {
    const auto f = static_cast<EventRecord::Field>(i);
    if (a.Get(f) != b.Get(f)) {
      return std::string(kFieldNames[i]) + " legacy=\"" + std::string(a.Get(f).substr(0, 40)) +
             "\" atomic=\"" + std::string(b.Get(f).substr(0, 40)) + "\"";
    }
  }
  const auto& x = a.numbers();
  const auto& y = b.numbers();
  if (x.count != y.count) {
    return "count legacy=" + std::to_string(x.count) + " atomic=" + std::to_string(y.count);
  }
  if (x.series_count != y.series_count) return "series.count differs";
  if (x.last_seen_unix_ms != y.last_seen_unix_ms) return "last seen time differs";
  return "receive time differs";
}

}  // namespace

std::string DescribeOccurrence(const EventRecord& r) {
  std::string s = "uid=";
  s.append(r.uid()).append(" resourceVersion=").append(r.resource_version());
  s.append(" (reason=").append(r.reason()).append(")");
  return s;
}

Comparison CompareOccurrences(std::span<const EventRecord* const> legacy,
                              std::span<const EventRecord* const> atomic) {
  Comparison result;
  // Fast path: both backends hold the very same shared records in the same order.
  if (legacy.size() == atomic.size() && std::equal(legacy.begin(), legacy.end(), atomic.begin())) {
    return result;
  }

  // Order-insensitive comparison by identity.
  std::unordered_map<Identity, std::pair<Side, Side>, IdentityHash> ids;
  ids.reserve(legacy.size() + atomic.size());
  std::vector<Identity> order;  // first appearance, legacy first, for deterministic diffs
  order.reserve(legacy.size() + atomic.size());
  auto count = [&](std::span<const EventRecord* const> seq, bool is_legacy) {
    for (const EventRecord* r : seq) {
      auto [it, inserted] = ids.try_emplace(IdentityOf(r));
      if (inserted) order.push_back(it->first);
      Side& side = is_legacy ? it->second.first : it->second.second;
      if (side.count++ == 0) side.first = r;
    }
  };
  count(legacy, true);
  count(atomic, false);

  std::string diff[kMismatchKindCount];
  std::size_t how_many[kMismatchKindCount] = {};
  auto note = [&](MismatchKind kind, std::string text) {
    const auto k = static_cast<std::size_t>(kind);
    if (how_many[k]++ == 0) diff[k] = std::move(text);
  };
  for (const Identity& id : order) {
    const auto& [l, a] = ids.find(id)->second;
    if (l.count > 1) {
      note(MismatchKind::kDuplicate, "legacy holds " + std::to_string(l.count) + " copies of " +
                                         DescribeOccurrence(*l.first));
    }
    if (a.count > 1) {
      note(MismatchKind::kDuplicate, "atomic holds " + std::to_string(a.count) + " copies of " +
                                         DescribeOccurrence(*a.first));
    }
    if (l.count > 0 && a.count == 0) {
      note(MismatchKind::kMissing, "atomic lacks " + DescribeOccurrence(*l.first));
    } else if (l.count == 0 && a.count > 0) {
      note(MismatchKind::kExtra, "atomic has extra " + DescribeOccurrence(*a.first));
    } else if (l.first != a.first && !(*l.first == *a.first)) {
      note(MismatchKind::kCorrupt,
           DescribeOccurrence(*l.first) + " differs in " + FirstDifferentField(*l.first, *a.first));
    }
  }
  bool any = false;
  for (std::size_t k = 0; k < kMismatchKindCount; ++k) any |= how_many[k] > 0;
  if (!any && legacy.size() == atomic.size()) {
    // Same multiset of occurrences: compare the sequences by identity.
    for (std::size_t i = 0; i < legacy.size(); ++i) {
      if (IdentityOf(legacy[i]) != IdentityOf(atomic[i])) {
        note(MismatchKind::kOrder, "position " + std::to_string(i) + ": legacy has " +
                                       DescribeOccurrence(*legacy[i]) + ", atomic has " +
                                       DescribeOccurrence(*atomic[i]));
        break;
      }
    }
  }
  for (std::size_t k = 0; k < kMismatchKindCount; ++k) {
    if (how_many[k] == 0) continue;
    result.match = false;
    std::string text = std::move(diff[k]);
    if (how_many[k] > 1) text += " (and " + std::to_string(how_many[k] - 1) + " more)";
    result.findings.push_back({static_cast<MismatchKind>(k), std::move(text)});
  }
  return result;
}

}  // namespace eventbuffer
