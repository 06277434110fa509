#include "controller/file_text.h"

#include <fstream>
#include <sstream>

namespace eventbuffer::controller {

bool ReadFileText(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return false;
  *out = std::move(text).str();
  return true;
}

}  // namespace eventbuffer::controller
