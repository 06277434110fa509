// UserInfo: who a request comes from, as authentication found it (k8s user.Info).
#pragma once

#include <map>
#include <string>
#include <vector>

namespace eventbuffer::controller {

struct UserInfo {
  std::string name;
  std::string uid;
  std::vector<std::string> groups;
  std::map<std::string, std::vector<std::string>> extra;

  friend bool operator==(const UserInfo&, const UserInfo&) = default;
};

}  // namespace eventbuffer::controller
