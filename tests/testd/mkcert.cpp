// yubin-test-mkcert: writes a throw-away self-signed certificate and key
// (tls::writeSelfSigned) for tests and `scripts/dev`. Test helper only; the
// function is the API, this is the smallest CLI around it.
// Trust: runs as whoever calls it; writes the two files given.
#include <cstdio>
#include <string>

#include "base/strings.hpp"
#include "tls/tls.hpp"

int main(int argc, char** argv) {
  if (argc < 4 || argc > 5) {
    std::fprintf(stderr, "usage: yubin-test-mkcert CERT_FILE KEY_FILE HOSTNAME [DAYS]\n");
    return 64;
  }
  int days = 365;
  if (argc == 5) {
    auto d = yubin::parseU64(argv[4]);
    if (!d || *d == 0 || *d > 36500) {
      std::fprintf(stderr, "yubin-test-mkcert: DAYS must be 1 to 36500\n");
      return 64;
    }
    days = static_cast<int>(*d);
  }
  if (auto st = yubin::tls::writeSelfSigned(argv[1], argv[2], argv[3], days); !st) {
    std::fprintf(stderr, "yubin-test-mkcert: %s\n", st.error().message.c_str());
    return 1;
  }
  return 0;
}
