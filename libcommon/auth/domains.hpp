// The local mail domains ([global] domains): the set of domains this server
// delivers for. Case-insensitive; a trailing dot is ignored.
// Trust: the list is admin-written; queried with untrusted domains.
// Standards: RFC 5321 §2.4 (domains are case-insensitive).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace yubin::config {
class Config;
}

namespace yubin::auth {

class LocalDomains {
 public:
  LocalDomains() = default;
  explicit LocalDomains(const std::vector<std::string>& domains);
  static LocalDomains fromConfig(const config::Config& cfg);

  bool contains(std::string_view domain) const;
  // Lower-case, sorted, without duplicates.
  const std::vector<std::string>& list() const { return domains_; }
  // The first domain as the admin listed it (lower-case): the domain of the
  // bare <Postmaster> recipient. Empty when there is none.
  const std::string& primary() const { return primary_; }

 private:
  std::vector<std::string> domains_;
  std::string primary_;
};

}  // namespace yubin::auth
