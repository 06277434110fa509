#include "controller/kube/json_prefix.h"

#include <cstdint>
#include <vector>

namespace eventbuffer::controller {

namespace {

// One open container of the scan. For an object, `key` is the key of the member being
// read; for an array, `index` is the element's position.
struct Frame {
  bool array = false;
  std::string_view key;
  int index = 0;
};

// The path of the value at the top of `stack`, e.g. "items[0].metadata.name". `depth`:
// how many frames to use.
std::string PathOf(const std::vector<Frame>& stack, std::size_t depth) {
  std::string path;
  for (std::size_t k = 0; k < depth; ++k) {
    if (stack[k].array) {
      path += '[' + std::to_string(stack[k].index) + ']';
    } else {
      if (!path.empty()) path += '.';
      path.append(stack[k].key);
    }
  }
  return path;
}

void AppendUtf8(std::uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// The value of a JSON string's raw (escaped) contents. Surrogate pairs and bad escapes
// become '?': the result is for logs and continue tokens, which are ASCII.
std::string Unescape(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  for (std::size_t i = 0; i < raw.size(); ++i) {
    const char c = raw[i];
    if (c != '\\' || i + 1 >= raw.size()) {
      out.push_back(c);
      continue;
    }
    const char e = raw[++i];
    switch (e) {
      case 'b':
        out.push_back('\b');
        break;
      case 'f':
        out.push_back('\f');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'u': {
        std::uint32_t cp = 0;
        bool ok = i + 4 < raw.size();
        for (std::size_t k = 1; ok && k <= 4; ++k) {
          const char h = raw[i + k];
          cp <<= 4;
          if (h >= '0' && h <= '9') {
            cp |= static_cast<std::uint32_t>(h - '0');
          } else if (h >= 'a' && h <= 'f') {
            cp |= static_cast<std::uint32_t>(h - 'a' + 10);
          } else if (h >= 'A' && h <= 'F') {
            cp |= static_cast<std::uint32_t>(h - 'A' + 10);
          } else {
            ok = false;
          }
        }
        if (!ok) return out;
        i += 4;
        if (cp >= 0xD800 && cp <= 0xDFFF) {
          out.push_back('?');
        } else {
          AppendUtf8(cp, &out);
        }
        break;
      }
      default:  // '"', '\\', '/'
        out.push_back(e);
        break;
    }
  }
  return out;
}

// Walks `s` and calls visit(path, raw, closed) for each complete string value (closed
// false, raw its escaped contents) and for each container that closes (closed true, raw
// empty, path the container's own). Stops at the end of `s`, at a cut string, at a syntax
// error, or when visit returns false.
template <typename Visit>
void Scan(std::string_view s, Visit&& visit) {
  enum class Expect { kValue, kValueOrClose, kKeyOrClose, kKey, kColon, kAfterValue };
  std::vector<Frame> stack;
  Expect expect = Expect::kValue;
  std::size_t i = 0;
  // The raw contents of the string starting at s[i] ('"'); false when it is cut.
  auto read_string = [&](std::string_view* raw) {
    for (std::size_t j = i + 1; j < s.size(); ++j) {
      if (s[j] == '\\') {
        ++j;
      } else if (s[j] == '"') {
        *raw = s.substr(i + 1, j - i - 1);
        i = j + 1;
        return true;
      }
    }
    return false;
  };
  while (true) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')) ++i;
    if (i >= s.size()) return;
    const char c = s[i];
    switch (expect) {
      case Expect::kKeyOrClose:
      case Expect::kKey:
        if (c == '}' && expect == Expect::kKeyOrClose) break;  // an empty object: below
        if (c != '"') return;
        if (!read_string(&stack.back().key)) return;
        expect = Expect::kColon;
        continue;
      case Expect::kColon:
        if (c != ':') return;
        ++i;
        expect = Expect::kValue;
        continue;
      case Expect::kAfterValue:
        if (stack.empty()) return;  // the document ended
        if (c == ',') {
          ++i;
          if (stack.back().array) {
            ++stack.back().index;
            expect = Expect::kValue;
          } else {
            expect = Expect::kKey;
          }
          continue;
        }
        if (c != (stack.back().array ? ']' : '}')) return;
        break;  // the container closes: below
      case Expect::kValueOrClose:
        if (c == ']') break;  // an empty array: below
        [[fallthrough]];
      case Expect::kValue:
        if (c == '{' || c == '[') {
          stack.push_back(Frame{c == '[', {}, 0});
          ++i;
          expect = c == '[' ? Expect::kValueOrClose : Expect::kKeyOrClose;
          continue;
        }
        if (c == '"') {
          std::string_view raw;
          if (!read_string(&raw)) return;
          if (!visit(PathOf(stack, stack.size()), raw, false)) return;
        } else {
          // A number, true, false or null: its end is the next delimiter.
          std::size_t j = i;
          while (j < s.size() && s[j] != ',' && s[j] != '}' && s[j] != ']' && s[j] != ' ' &&
                 s[j] != '\n' && s[j] != '\r' && s[j] != '\t' && s[j] != '"' && s[j] != '{' &&
                 s[j] != '[' && s[j] != ':') {
            ++j;
          }
          if (j == i || j >= s.size()) return;  // not a value, or cut
          i = j;
        }
        expect = Expect::kAfterValue;
        continue;
    }
    // A container closes at s[i].
    ++i;
    stack.pop_back();
    if (!visit(PathOf(stack, stack.size()), std::string_view(), true)) return;
    expect = Expect::kAfterValue;
  }
}

// Reads the identity fields of an object's metadata at `prefix` + "metadata.<field>".
bool TakeIdentityField(std::string_view path, std::string_view metadata_path, std::string_view raw,
                       OversizedEventIdentity* id) {
  if (path.size() <= metadata_path.size() + 1 ||
      path.substr(0, metadata_path.size()) != metadata_path || path[metadata_path.size()] != '.') {
    return false;
  }
  const std::string_view field = path.substr(metadata_path.size() + 1);
  if (field == "namespace") {
    id->namespace_name = Unescape(raw);
  } else if (field == "name") {
    id->name = Unescape(raw);
  } else if (field == "uid") {
    id->uid = Unescape(raw);
  } else if (field == "resourceVersion") {
    id->resource_version = Unescape(raw);
  } else {
    return false;
  }
  return true;
}

std::string_view OrUnknown(const std::string& s) {
  return s.empty() ? std::string_view("?") : std::string_view(s);
}

}  // namespace

std::string OversizedEventIdentity::ToString() const {
  std::string out;
  if (!type.empty()) out.append(type).append(" ");
  out.append(OrUnknown(namespace_name)).append("/").append(OrUnknown(name));
  out.append(" uid ").append(OrUnknown(uid));
  out.append(" resourceVersion ").append(OrUnknown(resource_version));
  return out;
}

OversizedEventIdentity IdentityFromWatchLinePrefix(std::string_view prefix) {
  OversizedEventIdentity id;
  Scan(prefix, [&](std::string_view path, std::string_view raw, bool closed) {
    if (closed) return path != "object.metadata";  // the identity is complete
    if (path == "type") {
      id.type = Unescape(raw);
    } else {
      TakeIdentityField(path, "object.metadata", raw, &id);
    }
    return true;
  });
  return id;
}

ListPagePrefix ListPageFromPrefix(std::string_view prefix) {
  ListPagePrefix page;
  Scan(prefix, [&](std::string_view path, std::string_view raw, bool closed) {
    if (closed) {
      if (path == "metadata") page.metadata_complete = true;
      if (path == "items[0]") page.first_item_complete = true;
      return path != "items[0]";
    }
    if (path == "metadata.resourceVersion") {
      page.resource_version = Unescape(raw);
    } else if (path == "metadata.continue") {
      page.continue_token = Unescape(raw);
    } else {
      TakeIdentityField(path, "items[0].metadata", raw, &page.first_item);
    }
    return true;
  });
  return page;
}

}  // namespace eventbuffer::controller
