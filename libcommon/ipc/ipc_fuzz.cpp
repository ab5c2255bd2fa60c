// libFuzzer target for the ipc decoders: arbitrary bytes through
// decodeFrame and through FrameReader in uneven pieces. Any message that
// decodes must re-encode to the bytes it came from (the format has exactly
// one encoding per message), so a lenient decoder shows up as a crash.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "ipc/ipc.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace yubin::ipc;
  std::string_view in(reinterpret_cast<const char*>(data), size);

  auto whole = decodeFrame(in, 1u << 16);
  if (whole && encode(*whole) != in) abort();

  FrameReader reader(1u << 16);
  size_t pos = 0, step = 1;
  std::string reencoded;
  while (pos < in.size()) {
    size_t n = std::min(step, in.size() - pos);
    reader.feed(in.substr(pos, n));
    pos += n;
    step = step * 3 % 17 + 1;
    for (;;) {
      auto m = reader.next();
      if (!m || !*m) break;
      reencoded += encode(**m);
    }
    if (reader.failed()) break;
  }
  // Whatever the reader accepted is a prefix of the input, byte for byte.
  if (in.substr(0, reencoded.size()) != reencoded) abort();
  return 0;
}
