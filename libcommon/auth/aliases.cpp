// The aliases file and its expansion; see aliases.hpp.
#include "auth/aliases.hpp"

#include <algorithm>
#include <unordered_set>

#include "auth/address.hpp"
#include "base/strings.hpp"

namespace yubin::auth {
namespace {

std::string domainOf(std::string_view key) { return std::string(key.substr(key.rfind('@') + 1)); }

bool hasControl(std::string_view s) {
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if ((c < 0x20 && c != '\t') || c == 0x7f) return true;
  }
  return false;
}

struct Expander {
  const AliasTable& table;
  const IsUserFn& isUser;
  std::vector<std::string> out;
  std::unordered_set<std::string> seen;  // final addresses already in out
  std::unordered_set<std::string> done;  // aliases fully expanded already
  std::vector<std::string> path;         // aliases being expanded

  Status add(const std::string& address) {
    if (seen.insert(address).second) {
      if (out.size() >= kMaxAliasExpansion)
        return Error{"alias expansion has more than " + std::to_string(kMaxAliasExpansion) +
                     " addresses"};
      out.push_back(address);
    }
    return {};
  }

  Status entry(const AliasEntry& e, int depth) {
    if (done.count(e.key)) return {};  // diamond: same targets, already in out
    if (std::find(path.begin(), path.end(), e.key) != path.end()) {
      std::string chain;
      for (const auto& p : path) chain += p + " -> ";
      return Error{"alias loop: " + chain + e.key};
    }
    if (depth >= kMaxAliasDepth)
      return Error{"alias nesting deeper than " + std::to_string(kMaxAliasDepth) + " at " + e.key};
    path.push_back(e.key);
    for (const auto& t : e.targets) {
      Status s = t == e.key ? add(t) : address(t, depth + 1);
      if (!s) return s;
    }
    path.pop_back();
    done.insert(e.key);
    return {};
  }

  Status address(const std::string& key, int depth) {
    const AliasEntry* e = table.find(key);
    if (!e && !isUser(key)) e = table.find("@" + domainOf(key));
    if (!e) return add(key);
    return entry(*e, depth);
  }
};

}  // namespace

const AliasEntry* AliasTable::find(std::string_view key) const {
  auto it = index_.find(std::string(key));
  return it == index_.end() ? nullptr : &entries_[it->second];
}

Result<std::vector<std::string>> AliasTable::expand(std::string_view address,
                                                    const IsUserFn& isUser) const {
  auto key = addressKey(address);
  if (!key) return Error{"malformed address '" + std::string(address) + "'"};
  Expander x{*this, isUser, {}, {}, {}, {}};
  if (auto s = x.address(*key, 0); !s) return s.error();
  return std::move(x.out);
}

Result<std::vector<std::string>> AliasTable::expandEntry(const AliasEntry& e,
                                                         const IsUserFn& isUser) const {
  Expander x{*this, isUser, {}, {}, {}, {}};
  if (auto s = x.entry(e, 0); !s) return s.error();
  return std::move(x.out);
}

std::vector<std::string> AliasTable::reverse(std::string_view address,
                                             const IsUserFn& isUser) const {
  std::vector<std::string> out;
  auto key = addressKey(address);
  if (!key) return out;
  for (const auto& e : entries_) {
    auto r = expandEntry(e, isUser);
    if (r && std::find(r->begin(), r->end(), *key) != r->end()) out.push_back(e.key);
  }
  return out;
}

Result<AliasTable> parseAliases(std::string_view text, const std::string& filename,
                                const LocalDomains& domains) {
  AliasTable t;
  int lineNo = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = trim(text.substr(pos, nl - pos));
    pos = nl + 1;
    ++lineNo;
    if (line.empty() || line[0] == '#') continue;
    auto fail = [&](const std::string& what) {
      return Error{filename + ":" + std::to_string(lineNo) + ": " + what};
    };
    if (hasControl(line)) return fail("control character in line");
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return fail("expected 'address: target, ...'");
    std::string_view key = trim(line.substr(0, colon));
    std::string_view rest = line.substr(colon + 1);

    AliasEntry e;
    e.line = lineNo;
    std::string domain;
    if (!key.empty() && key[0] == '@') {
      domain = std::string(key.substr(1));
      if (!isValidDomain(domain)) return fail("bad domain in catch-all '" + std::string(key) + "'");
      e.key = "@" + toLower(domain);
    } else {
      auto parts = splitAddress(key);
      if (!parts || !isValidTargetLocalPart(parts->local) || !isValidDomain(parts->domain))
        return fail("bad alias address '" + std::string(key) +
                    "': expected local@domain or @domain");
      domain = parts->domain;
      e.key = addressKey(parts->local, parts->domain);
    }
    if (!domains.contains(domain))
      return fail("domain '" + domain + "' of alias '" + std::string(key) +
                  "' is not in [global] domains");

    for (const auto& target : splitAny(rest, ", \t")) {
      if (target[0] == '|' || target[0] == '/' || target[0] == ':' || target[0] == '"')
        return fail("target '" + target +
                    "': pipes, files, includes and quoted names are not supported");
      auto parts = splitAddress(target);
      if (!parts || !isValidTargetLocalPart(parts->local) || !isValidDomain(parts->domain))
        return fail("bad target '" + target + "': expected local@domain");
      e.targets.push_back(addressKey(parts->local, parts->domain));
    }
    if (e.targets.empty()) return fail("alias '" + std::string(key) + "' has no targets");
    auto [it, fresh] = t.index_.emplace(e.key, t.entries_.size());
    if (!fresh)
      return fail("duplicate alias '" + e.key + "' (first on line " +
                  std::to_string(t.entries_[it->second].line) + ")");
    t.entries_.push_back(std::move(e));
  }
  return t;
}

AliasDb::AliasDb(AliasDbSettings settings)
    : settings_(std::move(settings)),
      file_(settings_.path, "aliases file", [this](std::string_view text, const std::string& path) {
        return parseAliases(text, path, settings_.domains);
      }) {}

}  // namespace yubin::auth
