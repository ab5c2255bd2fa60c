// libFuzzer target for the queue file and state file parsers (format.hpp).
// Built only with -Dfuzz=true (clang); corpus in tests/fuzz/corpus/queuefile.
// Trust: the input stands for a damaged spool file; the parsers must reject
// it with an error, never crash, hang or allocate beyond the input's size.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "queue/format.hpp"

using namespace yubin::queue;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  if (auto env = parseImage(in)) {
    // Whatever parses must survive a round trip unchanged: the writer and
    // the reader agree on every accepted file (version 1, 2 or 3).
    const int version = in[12] - '0';
    const size_t end = in.size() - (version == 1 ? 0 : kTrailerSize);
    std::string_view message = in.substr(end - env->size, env->size);
    if (encodeImage(*env, message, version) != in) abort();
  }
  if (auto st = parseState(in)) {
    if (encodeState(*st) != in) abort();
  }
  if (in.size() <= kMaxEnvelopeSize) (void)parseEnvelope(in);
  return 0;
}
