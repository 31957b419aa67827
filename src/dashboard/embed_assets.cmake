# Writes OUT, a C++ file defining artel::dashboard::FindAsset over the files
# FILES (relative to SRC_DIR, separated by commas) as byte arrays. Run with
# cmake -P.
string(REPLACE "," ";" FILES "${FILES}")
set(body "")
set(table "")
set(i 0)
foreach(f IN LISTS FILES)
  file(READ "${SRC_DIR}/${f}" hex HEX)
  string(LENGTH "${hex}" hex_len)
  math(EXPR size "${hex_len} / 2")
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "'\\\\x\\1'," bytes "${hex}")
  if(f MATCHES "\\.html$")
    set(type "text/html; charset=utf-8")
  elseif(f MATCHES "\\.js$")
    set(type "text/javascript; charset=utf-8")
  elseif(f MATCHES "\\.css$")
    set(type "text/css; charset=utf-8")
  elseif(f MATCHES "\\.svg$")
    set(type "image/svg+xml")
  else()
    set(type "application/octet-stream")
  endif()
  string(APPEND body "const char kAsset${i}[] = {${bytes} 0};\n")
  string(APPEND table "    {\"/${f}\", \"${type}\", kAsset${i}, ${size}},\n")
  math(EXPR i "${i} + 1")
endforeach()
file(WRITE "${OUT}.tmp"
"// Generated from src/dashboard/web by embed_assets.cmake; do not edit.
#include \"dashboard/assets.h\"

namespace artel::dashboard {
namespace {
${body}
const Asset kAssets[] = {
${table}};
}  // namespace

const Asset* FindAsset(std::string_view path) {
  for (const Asset& a : kAssets) {
    if (path == a.path) return &a;
  }
  return nullptr;
}

}  // namespace artel::dashboard
")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUT}.tmp")
