// Crash-safe file operations. atomicWrite is the one way to replace a file:
// temp file in the same directory -> write -> fsync -> rename -> fsync dir.
// A reader sees the old content or the new one, never a mix.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "base/result.hpp"

namespace yubin {

Status writeAll(int fd, std::string_view data);
Status fsyncDir(const std::string& dir);
Status atomicWrite(const std::string& path, std::string_view data, mode_t mode = 0600);
Result<std::string> readFile(const std::string& path, size_t maxSize = 64u << 20);
// Creates dir and missing parents with mode (existing ones are left alone).
Status makeDirs(const std::string& dir, mode_t mode = 0700);
std::string dirName(const std::string& path);

}  // namespace yubin
