// Test helpers shared by the metrics suites: render metric families as the Prometheus text
// exposition and read one sample back from it.
#pragma once

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

namespace eventbuffer::metrics::testing_util {

inline std::string RenderFamilies(const std::vector<prometheus::MetricFamily>& families) {
  std::ostringstream s;
  prometheus::TextSerializer().Serialize(s, families);
  return s.str();
}

// The value of the sample line that starts with `series` (name plus labels exactly as
// rendered), or NaN when there is none.
inline double Sample(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return std::nan("");
}

}  // namespace eventbuffer::metrics::testing_util
