// The dashboard's static files, embedded in the binary at build time from
// src/dashboard/web/ (embed_assets.cmake), so that the coordinator serves
// them offline.
#pragma once

#include <cstddef>
#include <string_view>

namespace artel::dashboard {

struct Asset {
  const char* path;          // "/index.html"
  const char* content_type;  // "text/html; charset=utf-8"
  const char* data;
  size_t size;
};

// The asset served at `path`, or null.
const Asset* FindAsset(std::string_view path);

}  // namespace artel::dashboard
