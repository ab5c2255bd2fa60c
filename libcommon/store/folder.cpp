// Folder helpers and MemoryFolder; see folder.hpp.
#include "store/folder.hpp"

#include <sodium.h>

#include <algorithm>

#include "base/strings.hpp"

namespace yubin::store {
namespace {

class StringReader final : public MessageReader {
 public:
  StringReader(const std::string& data, size_t chunk) : data_(data), chunk_(chunk) {}
  Result<size_t> read(std::string& out, size_t max) override {
    size_t n = std::min({max, chunk_, data_.size() - pos_});
    out.append(data_, pos_, n);
    pos_ += n;
    return n;
  }

 private:
  const std::string& data_;
  size_t chunk_;
  size_t pos_ = 0;
};

}  // namespace

void CrlfCounter::feed(std::string_view bytes) {
  for (char c : bytes) {
    if (c == '\n' && !prevCr_) ++total_;
    ++total_;
    prevCr_ = c == '\r';
  }
}

uint64_t crlfSize(std::string_view bytes) {
  CrlfCounter c;
  c.feed(bytes);
  return c.total();
}

bool validUid(std::string_view uid) {
  if (uid.empty() || uid.size() > 70) return false;
  return std::all_of(uid.begin(), uid.end(), [](char c) { return c >= 0x21 && c <= 0x7e; });
}

std::string uidDigest(std::string_view bytes) {
  unsigned char h[16];
  crypto_generichash(h, sizeof h, reinterpret_cast<const unsigned char*>(bytes.data()),
                     bytes.size(), nullptr, 0);
  return hexEncode(std::string_view(reinterpret_cast<const char*>(h), sizeof h));
}

MemoryFolder::MemoryFolder(std::vector<Item> items)
    : items_(std::move(items)), seen_(items_.size()), removed_(items_.size()) {
  for (const Item& it : items_) list_.push_back({it.uid, crlfSize(it.data), false});
}

Result<std::unique_ptr<MessageReader>> MemoryFolder::open(size_t index) {
  if (index >= items_.size()) return Error{"no such message", EINVAL};
  if (failOpen || removed_[index]) return Error{"open: injected failure", EIO};
  return std::unique_ptr<MessageReader>(std::make_unique<StringReader>(items_[index].data,
                                                                       readChunk));
}

Status MemoryFolder::markSeen(size_t index) {
  if (index >= items_.size()) return Error{"no such message", EINVAL};
  seen_[index] = true;
  list_[index].seen = true;
  return {};
}

Status MemoryFolder::expunge(const std::vector<size_t>& indexes) {
  if (failExpunge) return Error{"expunge: injected failure", EIO};
  for (size_t i : indexes) {
    if (i >= items_.size()) return Error{"no such message", EINVAL};
    removed_[i] = true;
  }
  return {};
}

std::vector<std::string> MemoryFolder::remaining() const {
  std::vector<std::string> out;
  for (size_t i = 0; i < items_.size(); ++i)
    if (!removed_[i]) out.push_back(items_[i].data);
  return out;
}

}  // namespace yubin::store
