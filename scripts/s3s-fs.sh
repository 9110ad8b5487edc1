#!/usr/bin/env bash
# Install s3s-fs (a real S3 protocol server over a folder, used by the
# vestibule-recording S3 tests) once into tools/s3s-fs/ under the repo root, and
# print the binary's path. Idempotent: a second run only prints the path.
# The build takes about 4 minutes on 2 cores; 0.17 needs a newer rustc, so the
# version is pinned.
set -euo pipefail
cd "$(dirname "$0")/.."

version=0.14.1
root="$PWD/tools/s3s-fs"
bin="$root/bin/s3s-fs"

if [[ ! -x $bin ]] || [[ "$(cat "$root/VERSION" 2>/dev/null)" != "$version" ]]; then
  echo "s3s-fs.sh: installing s3s-fs $version into $root (about 4 minutes)" >&2
  # A separate target dir keeps this build from locking the workspace's.
  CARGO_TARGET_DIR="$root/build" \
    cargo install "s3s-fs@$version" --features binary --locked --root "$root" >&2
  rm -rf "$root/build"
  echo "$version" >"$root/VERSION"
fi

echo "$bin"
