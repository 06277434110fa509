// libFuzzer target for EventDecoder: any bytes in, a result or a clean error out, never a
// crash, leak or undefined behaviour (built with -fsanitize=fuzzer,address,undefined by
// scripts/fuzz-decoder.sh). The first byte picks the entry point.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "controller/kube/event_decoder.h"

using eventbuffer::controller::ApiStatus;
using eventbuffer::controller::EventDecoder;
using eventbuffer::controller::WatchEventType;

namespace {

void Check(bool condition) {
  if (!condition) std::abort();
}

void CheckRecord(const eventbuffer::EventRef& record) {
  Check(record != nullptr);
  // The identity of an occurrence is always present.
  Check(!record->uid().empty());
  Check(!record->resource_version().empty());
  Check(record->Key().size() == record->involved_namespace().size() +
                                    record->involved_kind().size() +
                                    record->involved_name().size() + 2);
  // `related` is either absent or one whole JSON object.
  const std::string_view related = record->Get(eventbuffer::EventRecord::Field::kRelated);
  Check(related.empty() ||
        (related.size() >= 2 && related.front() == '{' && related.back() == '}'));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static EventDecoder decoder;  // reused across inputs, as in the controller
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0: {
      auto r = decoder.DecodeWatchLine(input, 1);
      if (!r.ok()) {
        Check(r.value.record == nullptr || true);
        Check(!r.error.ToString().empty());
        break;
      }
      switch (r.value.type) {
        case WatchEventType::kAdded:
        case WatchEventType::kModified:
        case WatchEventType::kDeleted:
          CheckRecord(r.value.record);
          Check(r.value.resource_version == r.value.record->resource_version());
          Check(r.value.last_seen_unix_ms == r.value.record->last_seen_unix_ms());
          break;
        case WatchEventType::kBookmark:
          Check(!r.value.resource_version.empty());
          Check(r.value.record == nullptr);
          break;
        case WatchEventType::kError:
          Check(r.value.record == nullptr);
          break;
      }
      break;
    }
    case 1: {
      auto r = decoder.DecodeList(input, 1);
      if (r.ok()) {
        Check(!r.value.resource_version.empty());
        for (const auto& item : r.value.items) CheckRecord(item);
        for (const auto& skipped : r.value.skipped) {
          Check(skipped.index >= 0);
          Check(!skipped.error.message.empty());
          Check(skipped.error.field.rfind("items[", 0) == 0);
        }
      } else {
        Check(!r.error.ToString().empty());
      }
      break;
    }
    case 2: {
      auto r = decoder.DecodeEvent(input, 1);
      if (r.ok()) CheckRecord(r.value);
      break;
    }
    default: {
      ApiStatus status;
      decoder.DecodeStatus(input, &status);
      break;
    }
  }
  return 0;
}
