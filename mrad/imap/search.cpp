// mrad/imap/search: see search.hpp.
#include "mrad/imap/search.hpp"

namespace yubin::mrad::imap {

Status checkCharset(const std::optional<std::string>& charset) {
  (void)charset;
  return {};
}

Result<bool> matches(const yubin::imap::SearchKey& key, SearchMessage& m,
                     const SearchContext& ctx, const std::vector<uint32_t>* saved) {
  (void)key; (void)m; (void)ctx; (void)saved;
  return true;
}

SearchNeeds searchNeeds(const yubin::imap::SearchKey& key) {
  (void)key;
  return SearchNeeds::Whole;
}

std::string foldCase(std::string_view text) { return std::string(text); }

}  // namespace yubin::mrad::imap
