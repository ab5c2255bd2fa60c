// The local mail domains; see domains.hpp.
#include "auth/domains.hpp"

#include <algorithm>

#include "base/strings.hpp"
#include "config/config.hpp"

namespace yubin::auth {
namespace {

std::string normalize(std::string_view d) {
  if (!d.empty() && d.back() == '.') d.remove_suffix(1);
  return toLower(d);
}

}  // namespace

LocalDomains::LocalDomains(const std::vector<std::string>& domains) {
  for (const auto& d : domains) {
    std::string n = normalize(d);
    if (!n.empty()) domains_.push_back(std::move(n));
  }
  if (!domains_.empty()) primary_ = domains_.front();
  std::sort(domains_.begin(), domains_.end());
  domains_.erase(std::unique(domains_.begin(), domains_.end()), domains_.end());
}

LocalDomains LocalDomains::fromConfig(const config::Config& cfg) {
  return LocalDomains(cfg.list("global", "domains"));
}

bool LocalDomains::contains(std::string_view domain) const {
  std::string n = normalize(domain);
  if (n.empty()) return false;
  return std::binary_search(domains_.begin(), domains_.end(), n);
}

}  // namespace yubin::auth
