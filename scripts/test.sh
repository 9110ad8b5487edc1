#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine or a developer's: installs what
# the tests drive (OpenSSH server and client, rsync, tmux, sshpass), checks
# formatting and lints, then builds once and runs every test in parallel, then
# the load and fault suite.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/e2e-prereqs.sh

if ! command -v cargo-nextest >/dev/null 2>&1; then
  echo "test.sh: installing cargo-nextest" >&2
  cargo install --locked cargo-nextest
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo nextest run --workspace --locked --no-fail-fast "$@"
# The load and fault suite (200 concurrent sessions, a gateway killed during
# bulk transfers): each test loads the whole machine, so they run after the
# rest, one at a time (about 20 s).
cargo nextest run -p vestibule --test load --run-ignored only --locked --no-fail-fast
# nextest does not run doctests.
cargo test --workspace --locked --doc
