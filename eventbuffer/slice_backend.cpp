#include "eventbuffer/slice_backend.h"

#include "eventbuffer/mutex_slice_map.h"
#include "eventbuffer/segmented/slice_map.h"

namespace eventbuffer {

std::unique_ptr<SliceBackend> MakeLegacyBackend() {
  return std::make_unique<SliceMapBackend<MutexSliceMap<EventRef>>>();
}

std::unique_ptr<SliceBackend> MakeAtomicBackend() {
  return std::make_unique<SliceMapBackend<SegmentedSliceMap<EventRef>>>();
}

}  // namespace eventbuffer
