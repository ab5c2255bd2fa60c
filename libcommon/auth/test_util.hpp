// Helpers for the auth unit tests: a temporary directory removed at the end,
// and quick file writes. Test code only.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace yubin::auth::testing {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/yubin-auth-test-XXXXXX";
    if (!mkdtemp(tmpl)) abort();
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Plain in-place write (not atomic): tests use it to change files under a
// reader the way an editor might.
inline void writeText(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
}

inline std::string readText(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

}  // namespace yubin::auth::testing
