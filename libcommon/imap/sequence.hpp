// IMAP sequence sets: "1:4,7,9:*", "$" — message sequence numbers or UIDs as
// a client names them, and the compact form the server writes back (COPYUID,
// APPENDUID, ESEARCH ALL).
//
// Trust: parses untrusted network input (runs inside mrad). Pure code, no
// allocation beyond the input's size (one Range per comma-separated item).
//
// Standards: RFC 3501 §9 / RFC 9051 §9 (sequence-set, seq-range, seq-number,
// nz-number: 1..4294967295, no leading zero), RFC 3501 §6.4.8 (a range
// "559:*" includes the largest UID even when 559 is above it), RFC 5182
// ("$", the saved SEARCH result), RFC 4315 (uid-set in COPYUID/APPENDUID).
//
// API, in short:
//   auto s = SequenceSet::parse("1:3,*");      // Result<SequenceSet>
//   s->contains(n, largest)                      // '*' means `largest`
//   s->resolve(largest)                          // sorted, merged concrete ranges
//   s->forEachNumber(count, fn)                  // sequence numbers 1..count in the set
//   s->forEachIndex(uids, fn)                    // indexes of a sorted UID list in the set
//   s->maxNumber(largest) / hasStar() / isSaved()
//   s->str()                                     // as parsed (canonical digits)
//   formatSequence(values)                       // compact "1:3,7" from numbers in order
// The "$" form (isSaved()) has no ranges: the session substitutes the saved
// result (SequenceSet::fromValues) before using it.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"

namespace yubin::imap {

// A sequence number or UID as written; kStar stands for "*".
using SeqNumber = uint64_t;
inline constexpr SeqNumber kStar = uint64_t{1} << 32;

// One item of a set: "a" (first == last) or "a:b" in either order.
struct SeqRange {
  SeqNumber first = 0;
  SeqNumber last = 0;
  bool operator==(const SeqRange&) const = default;
};

// A concrete range after '*' was resolved: lo <= hi.
struct UidRange {
  uint32_t lo = 0;
  uint32_t hi = 0;
  bool operator==(const UidRange&) const = default;
};

class SequenceSet {
 public:
  SequenceSet() = default;

  // Parses a sequence-set; with allowSaved, "$" alone is accepted (RFC 5182).
  static Result<SequenceSet> parse(std::string_view text, bool allowSaved = true);
  // A set of the given concrete values (any order, duplicates allowed).
  static SequenceSet fromValues(std::span<const uint32_t> values);
  static SequenceSet fromRanges(std::vector<SeqRange> ranges);
  static SequenceSet saved();  // "$"

  const std::vector<SeqRange>& ranges() const { return ranges_; }
  bool isSaved() const { return saved_; }
  bool empty() const { return !saved_ && ranges_.empty(); }
  bool hasStar() const;

  // Membership with '*' standing for `largest` (the message count, or the
  // highest UID in use; 0 for an empty mailbox: then "*" matches nothing).
  bool contains(uint32_t n, uint32_t largest) const;
  // The set as sorted, non-overlapping, non-adjacent ranges.
  std::vector<UidRange> resolve(uint32_t largest) const;
  // The highest number named, with '*' as `largest`; 0 when empty.
  uint32_t maxNumber(uint32_t largest) const;

  // Calls fn(n) for each sequence number 1..count in the set, ascending,
  // each once. Numbers above count are ignored (the caller checks
  // maxNumber() first when RFC 9051's "BAD for a seq-number above the
  // count" applies).
  void forEachNumber(uint32_t count, const std::function<void(uint32_t)>& fn) const;
  // For UID sets: `uids` is the mailbox's ascending UID list; calls fn(i)
  // for each index i whose UID is in the set, ascending. '*' is the last
  // UID. Cost O(ranges * log(uids) + matches).
  void forEachIndex(std::span<const uint32_t> uids,
                    const std::function<void(size_t)>& fn) const;

  // The set as written ("$", or items joined by ',', '*' for kStar).
  std::string str() const;

  bool operator==(const SequenceSet&) const = default;

 private:
  std::vector<SeqRange> ranges_;
  bool saved_ = false;
};

// Compact form of the values in the given order: consecutive ascending runs
// become "a:b" ("1,2,3,7" -> "1:3,7"). Used for COPYUID, whose source and
// destination sets must list UIDs in corresponding order, and for ESEARCH
// ALL (sorted input gives the shortest form). Empty input -> "".
std::string formatSequence(std::span<const uint32_t> values);
// Compact form of sorted concrete ranges.
std::string formatRanges(std::span<const UidRange> ranges);

// nz-number: 1..4294967295, digits only, no leading zero.
bool parseNzNumber(std::string_view s, uint32_t& out);

}  // namespace yubin::imap
