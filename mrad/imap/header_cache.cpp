// mrad/imap/header_cache: see header_cache.hpp. Trust: stores untrusted
// header values within a counted byte budget.
#include "mrad/imap/header_cache.hpp"

#include <algorithm>
#include <array>
#include <cstring>

namespace yubin::mrad::imap {
namespace {

// Fields the mbox store rewrites in place (mbox_store.hpp): never cached.
constexpr std::array<std::string_view, 7> kVolatile = {
    "status", "x-status", "x-keywords", "x-uid", "x-imap", "x-imapbase", "content-length"};

// A map node of the entries: the pair plus the tree's links and colour.
constexpr size_t kNodeCost = 48;

void appendU32(std::string& out, uint32_t v) {
  char b[4];
  std::memcpy(b, &v, 4);
  out.append(b, 4);
}

uint32_t readU32(const char* p) {
  uint32_t v = 0;
  std::memcpy(&v, p, 4);
  return v;
}

}  // namespace

size_t HeaderCache::costOf(const Entry& e) {
  // A heap buffer only past the small-string capacity.
  auto heap = [](const std::string& s) { return s.capacity() > 15 ? s.capacity() + 1 : 0; };
  return kNodeCost + sizeof(uint32_t) + sizeof(Entry) + heap(e.blob) + heap(e.envelope);
}

HeaderCache::Map::iterator HeaderCache::lowerBound(uint32_t uid) {
  if (hint_ != entries_.end() && hint_->first == uid) return hint_;
  if (hint_ != entries_.end() && hint_->first < uid) {
    auto next = std::next(hint_);
    if (next == entries_.end() || next->first >= uid) return next;
  }
  return entries_.lower_bound(uid);
}

HeaderCache::Map::iterator HeaderCache::find(uint32_t uid) {
  auto it = lowerBound(uid);
  if (it == entries_.end() || it->first != uid) return entries_.end();
  hint_ = it;
  return it;
}

int HeaderCache::indexOf(std::string_view lowerName) const {
  for (size_t i = 0; i < tracked_.size(); ++i)
    if (tracked_[i] == lowerName) return static_cast<int>(i);
  return -1;
}

int HeaderCache::track(const std::string& lowerName) {
  if (int i = indexOf(lowerName); i >= 0) return i;
  if (tracked_.size() >= kMaxCachedFields) return -1;
  tracked_.push_back(lowerName);
  return static_cast<int>(tracked_.size() - 1);
}

bool HeaderCache::cacheable(const FieldNames& names) const {
  size_t fresh = 0;
  for (const auto& n : names) {
    if (std::find(kVolatile.begin(), kVolatile.end(), n) != kVolatile.end()) return false;
    if (indexOf(n) < 0) ++fresh;
  }
  return tracked_.size() + fresh <= kMaxCachedFields;
}

bool HeaderCache::lookup(uint32_t uid, const FieldNames& names,
                         std::vector<mime::HeaderField>& out) {
  out.clear();
  auto it = find(uid);
  uint32_t need = 0;
  for (const auto& n : names) {
    const int i = indexOf(n);
    if (i < 0) {
      ++stats_.misses;
      return false;
    }
    need |= uint32_t{1} << i;
  }
  if (it == entries_.end() || (it->second.mask & need) != need) {
    ++stats_.misses;
    return false;
  }
  const std::string& blob = it->second.blob;
  size_t pos = 0;
  while (pos + 5 <= blob.size()) {
    const auto idx = static_cast<uint8_t>(blob[pos]);
    const uint32_t len = readU32(blob.data() + pos + 1);
    pos += 5;
    if (need & (uint32_t{1} << idx)) out.push_back({tracked_[idx], blob.substr(pos, len)});
    pos += len;
  }
  ++stats_.hits;
  return true;
}

void HeaderCache::fill(uint32_t uid, const std::vector<mime::HeaderField>& all,
                       const FieldNames& names) {
  if (!cacheable(names)) {
    ++stats_.refused;
    return;
  }
  for (const auto& n : names) track(n);
  Entry e;
  e.mask = tracked_.size() >= 32 ? ~uint32_t{0} : (uint32_t{1} << tracked_.size()) - 1;
  std::string lower;
  for (const auto& f : all) {
    lower = f.name;
    for (char& c : lower) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
    const int i = indexOf(lower);
    if (i < 0) continue;
    e.blob.push_back(static_cast<char>(i));
    appendU32(e.blob, static_cast<uint32_t>(f.value.size()));
    e.blob += f.value;
  }
  e.blob.shrink_to_fit();
  if (auto it = find(uid); it != entries_.end()) {
    e.envelope = it->second.envelope;  // kept as it was
    e.envelopeUtf8 = it->second.envelopeUtf8;
  }
  if (!install(uid, std::move(e))) {
    ++stats_.refused;
    return;
  }
  ++stats_.stored;
}

bool HeaderCache::install(uint32_t uid, Entry e) {
  const size_t cost = costOf(e);
  auto it = find(uid);
  const size_t old = it == entries_.end() ? 0 : costOf(it->second);
  if (bytes_ - old + cost > budget_) return false;
  bytes_ = bytes_ - old + cost;
  if (it == entries_.end())
    hint_ = entries_.emplace(uid, std::move(e)).first;
  else
    it->second = std::move(e);
  return true;
}

bool HeaderCache::envelope(uint32_t uid, bool utf8, std::string& out) {
  auto it = find(uid);
  if (it == entries_.end() || it->second.envelope.empty() || it->second.envelopeUtf8 != utf8) {
    ++stats_.envelopeMisses;
    return false;
  }
  out += it->second.envelope;
  ++stats_.envelopeHits;
  return true;
}

void HeaderCache::storeEnvelope(uint32_t uid, bool utf8, std::string_view rendered) {
  Entry e;
  if (auto it = find(uid); it != entries_.end()) {
    e.mask = it->second.mask;
    e.blob = it->second.blob;
  }
  e.envelope.assign(rendered);
  e.envelopeUtf8 = utf8;
  if (!install(uid, std::move(e))) ++stats_.refused;
}

void HeaderCache::erase(Map::iterator from, Map::iterator to) {
  for (auto it = from; it != to; ++it) {
    bytes_ -= costOf(it->second);
    ++stats_.dropped;
  }
  hint_ = entries_.erase(from, to);
}

void HeaderCache::dropBetween(uint32_t prevUid, uint32_t nextUid) {
  if (nextUid <= prevUid) return;
  // Called for every message a FETCH or SEARCH walks: the usual case,
  // nothing to drop, costs a step from the hint.
  auto from = lowerBound(prevUid + 1);
  if (from == entries_.end() || from->first >= nextUid) {
    if (from != entries_.end()) hint_ = from;  // nextUid's entry, likely asked for next
    return;
  }
  erase(from, entries_.lower_bound(nextUid));
}

std::shared_ptr<HeaderCache> HeaderCaches::forFolder(std::string_view user,
                                                     std::string_view mailbox,
                                                     uint32_t uidValidity) {
  // NUL cannot occur in a user or mailbox name: an unambiguous key.
  std::string key;
  key.reserve(user.size() + mailbox.size() + 12);
  key.append(user).push_back('\0');
  key.append(mailbox).push_back('\0');
  key += std::to_string(uidValidity);
  auto it = folders_.find(key);
  if (it == folders_.end()) {
    // A folder selected under an older UIDVALIDITY: its entries are stale.
    std::string prefix = key.substr(0, user.size() + mailbox.size() + 2);
    for (auto o = folders_.lower_bound(prefix);
         o != folders_.end() && o->first.compare(0, prefix.size(), prefix) == 0;) {
      o = folders_.erase(o);  // sessions still holding it keep their copy
    }
    it = folders_.emplace(std::move(key), Folder{std::make_shared<HeaderCache>(budget_), 0}).first;
  }
  it->second.lastUse = ++clock_;
  auto cache = it->second.cache;
  trim();
  return cache;
}

size_t HeaderCaches::bytes() const {
  size_t n = 0;
  for (const auto& [k, f] : folders_) n += f.cache->bytes();
  return n;
}

void HeaderCaches::trim() {
  // Idle: only the registry holds it.
  for (;;) {
    size_t idle = 0;
    auto oldest = folders_.end();
    for (auto it = folders_.begin(); it != folders_.end(); ++it) {
      if (it->second.cache.use_count() > 1) continue;
      ++idle;
      if (oldest == folders_.end() || it->second.lastUse < oldest->second.lastUse) oldest = it;
    }
    if (idle <= maxIdle_) return;
    folders_.erase(oldest);
  }
}

HeaderCaches& processHeaderCaches() {
  static HeaderCaches caches;
  return caches;
}

}  // namespace yubin::mrad::imap
