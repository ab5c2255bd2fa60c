// IMAP sequence sets (see sequence.hpp).
// Trust: parses untrusted network input. Standards: RFC 3501 §9, RFC 9051 §9,
// RFC 5182, RFC 4315.
#include "imap/sequence.hpp"

#include <algorithm>

namespace yubin::imap {

namespace {

bool parseSeqNumber(std::string_view s, SeqNumber& out) {
  if (s == "*") {
    out = kStar;
    return true;
  }
  uint32_t n = 0;
  if (!parseNzNumber(s, n)) return false;
  out = n;
  return true;
}

uint32_t resolveOne(SeqNumber n, uint32_t largest) {
  return n == kStar ? largest : static_cast<uint32_t>(n);
}

void appendNumber(std::string& out, SeqNumber n) {
  if (n == kStar)
    out += '*';
  else
    out += std::to_string(n);
}

}  // namespace

bool parseNzNumber(std::string_view s, uint32_t& out) {
  if (s.empty() || s.size() > 10 || s[0] < '1' || s[0] > '9') return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v > 0xffffffffULL) return false;
  out = static_cast<uint32_t>(v);
  return true;
}

Result<SequenceSet> SequenceSet::parse(std::string_view text, bool allowSaved) {
  SequenceSet set;
  if (text == "$") {
    if (!allowSaved) return Error{"saved search result ($) not allowed here"};
    set.saved_ = true;
    return set;
  }
  if (text.empty()) return Error{"empty sequence set"};
  size_t pos = 0;
  while (true) {
    size_t comma = text.find(',', pos);
    std::string_view item =
        text.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
    SeqRange r;
    size_t colon = item.find(':');
    if (colon == std::string_view::npos) {
      if (!parseSeqNumber(item, r.first)) return Error{"bad sequence number"};
      r.last = r.first;
    } else {
      if (!parseSeqNumber(item.substr(0, colon), r.first) ||
          !parseSeqNumber(item.substr(colon + 1), r.last))
        return Error{"bad sequence range"};
    }
    set.ranges_.push_back(r);
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  return set;
}

SequenceSet SequenceSet::fromValues(std::span<const uint32_t> values) {
  std::vector<uint32_t> v(values.begin(), values.end());
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  SequenceSet set;
  for (uint32_t n : v) {
    if (n == 0) continue;
    if (!set.ranges_.empty() && set.ranges_.back().last + 1 == n)
      set.ranges_.back().last = n;
    else
      set.ranges_.push_back({n, n});
  }
  return set;
}

SequenceSet SequenceSet::fromRanges(std::vector<SeqRange> ranges) {
  SequenceSet set;
  set.ranges_ = std::move(ranges);
  return set;
}

SequenceSet SequenceSet::saved() {
  SequenceSet set;
  set.saved_ = true;
  return set;
}

bool SequenceSet::hasStar() const {
  return std::any_of(ranges_.begin(), ranges_.end(),
                     [](const SeqRange& r) { return r.first == kStar || r.last == kStar; });
}

bool SequenceSet::contains(uint32_t n, uint32_t largest) const {
  for (const SeqRange& r : ranges_) {
    if ((r.first == kStar || r.last == kStar) && largest == 0) {
      // An empty mailbox: no message exists, so a range with '*' names none.
      continue;
    }
    uint32_t a = resolveOne(r.first, largest), b = resolveOne(r.last, largest);
    if (a > b) std::swap(a, b);
    if (n >= a && n <= b) return true;
  }
  return false;
}

std::vector<UidRange> SequenceSet::resolve(uint32_t largest) const {
  std::vector<UidRange> out;
  out.reserve(ranges_.size());
  for (const SeqRange& r : ranges_) {
    if ((r.first == kStar || r.last == kStar) && largest == 0) continue;
    uint32_t a = resolveOne(r.first, largest), b = resolveOne(r.last, largest);
    if (a > b) std::swap(a, b);
    out.push_back({a, b});
  }
  std::sort(out.begin(), out.end(),
            [](const UidRange& x, const UidRange& y) { return x.lo < y.lo; });
  std::vector<UidRange> merged;
  for (const UidRange& r : out) {
    if (!merged.empty() && uint64_t{r.lo} <= uint64_t{merged.back().hi} + 1)
      merged.back().hi = std::max(merged.back().hi, r.hi);
    else
      merged.push_back(r);
  }
  return merged;
}

uint32_t SequenceSet::maxNumber(uint32_t largest) const {
  uint32_t m = 0;
  for (const SeqRange& r : ranges_) {
    m = std::max(m, resolveOne(r.first, largest));
    m = std::max(m, resolveOne(r.last, largest));
  }
  return m;
}

void SequenceSet::forEachNumber(uint32_t count, const std::function<void(uint32_t)>& fn) const {
  for (const UidRange& r : resolve(count)) {
    if (r.lo > count) break;
    const uint32_t hi = std::min(r.hi, count);
    for (uint32_t n = r.lo;; ++n) {
      fn(n);
      if (n == hi) break;
    }
  }
}

void SequenceSet::forEachIndex(std::span<const uint32_t> uids,
                               const std::function<void(size_t)>& fn) const {
  const uint32_t largest = uids.empty() ? 0 : uids.back();
  for (const UidRange& r : resolve(largest)) {
    auto it = std::lower_bound(uids.begin(), uids.end(), r.lo);
    for (; it != uids.end() && *it <= r.hi; ++it) fn(static_cast<size_t>(it - uids.begin()));
  }
}

std::string SequenceSet::str() const {
  if (saved_) return "$";
  std::string out;
  for (const SeqRange& r : ranges_) {
    if (!out.empty()) out += ',';
    appendNumber(out, r.first);
    if (r.last != r.first) {
      out += ':';
      appendNumber(out, r.last);
    }
  }
  return out;
}

std::string formatSequence(std::span<const uint32_t> values) {
  std::string out;
  size_t i = 0;
  while (i < values.size()) {
    size_t j = i;
    while (j + 1 < values.size() && values[j] != 0xffffffffU && values[j + 1] == values[j] + 1)
      ++j;
    if (!out.empty()) out += ',';
    out += std::to_string(values[i]);
    if (j > i) {
      out += ':';
      out += std::to_string(values[j]);
    }
    i = j + 1;
  }
  return out;
}

std::string formatRanges(std::span<const UidRange> ranges) {
  std::string out;
  for (const UidRange& r : ranges) {
    if (!out.empty()) out += ',';
    out += std::to_string(r.lo);
    if (r.hi != r.lo) {
      out += ':';
      out += std::to_string(r.hi);
    }
  }
  return out;
}

}  // namespace yubin::imap
