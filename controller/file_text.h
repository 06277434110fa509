// ReadFileText: a whole file as bytes (certificates, tokens, kubeconfigs, configuration).
#pragma once

#include <string>

namespace eventbuffer::controller {

// Reads the file at `path` into *out. False when it cannot be opened or a read fails
// (errno then says why); *out is unchanged on failure.
bool ReadFileText(const std::string& path, std::string* out);

}  // namespace eventbuffer::controller
