#!/usr/bin/env bash
# Makes /usr/bin/python3 import the artel package built in BUILD_DIR/python,
# without PYTHONPATH: writes artel.pth (holding that directory's absolute
# path) into the interpreter's site-packages directory, or into the user's
# site directory when that one is not writable (and says so). Run by
# `make build`; idempotent and quiet when nothing changes.
#
# Usage: scripts/python_path.sh [BUILD_DIR]   (default: build)
set -euo pipefail

PYTHON=/usr/bin/python3
build_dir=${1:-build}

if [ ! -x "$PYTHON" ]; then
  echo "python_path: $PYTHON not found; the Python package is not made importable" >&2
  exit 0
fi
if [ ! -d "$build_dir/python/artel" ]; then
  echo "python_path: $build_dir/python/artel was not built (is grpc_python_plugin installed?);" \
       "skipping" >&2
  exit 0
fi
package_dir=$(cd "$build_dir/python" && pwd -P)
wanted="$package_dir"

write_pth() {  # DIR [NOTE]: writes DIR/artel.pth unless it already says $wanted
  local dir=$1 note=${2:-} file=$1/artel.pth
  if [ -f "$file" ] && [ "$(cat "$file" 2>/dev/null)" = "$wanted" ]; then
    return 0
  fi
  mkdir -p "$dir" 2>/dev/null || return 1
  if ! printf '%s\n' "$wanted" 2>/dev/null > "$file.tmp.$$"; then
    rm -f "$file.tmp.$$" 2>/dev/null || true
    return 1
  fi
  mv -f "$file.tmp.$$" "$file" 2>/dev/null || { rm -f "$file.tmp.$$"; return 1; }
  echo "python_path: $PYTHON imports artel from $package_dir (wrote $file)$note"
}

site_dir=$("$PYTHON" -c 'import site; print(site.getsitepackages()[0])')
write_pth "$site_dir" && exit 0

user_dir=$("$PYTHON" -c 'import site; print(site.getusersitepackages())')
write_pth "$user_dir" "; $site_dir is not writable, so only $(id -un) finds it there" && exit 0

echo "python_path: cannot write artel.pth into $site_dir or $user_dir; run Python with" \
     "PYTHONPATH=$package_dir" >&2
exit 0
