#include "eventbuffer/slice_backend.h"

#include "eventbuffer/mutex_slice_map.h"
#if __has_include("eventbuffer/segmented_slice_map.h")
#include "eventbuffer/segmented_slice_map.h"
#define KEB_HAVE_SEGMENTED_SLICE_MAP 1
#endif

namespace eventbuffer {

std::unique_ptr<SliceBackend> MakeLegacyBackend() {
  return std::make_unique<SliceMapBackend<MutexSliceMap<EventRef>>>();
}

std::unique_ptr<SliceBackend> MakeAtomicBackend() {
#ifdef KEB_HAVE_SEGMENTED_SLICE_MAP
  return std::make_unique<SliceMapBackend<SegmentedSliceMap<EventRef>>>();
#else
  // Until the segmented map lands, the atomic slot holds a second mutex map (an A/A setup).
  return std::make_unique<SliceMapBackend<MutexSliceMap<EventRef>>>();
#endif
}

}  // namespace eventbuffer
