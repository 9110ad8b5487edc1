#!/usr/bin/env bash
# Run Vestibule's end-to-end tests (crates/vestibule/tests): they start real
# sshd, vestibule, ssh/scp/sftp/rsync and tmux processes on 127.0.0.1.
# Needs root (the harness creates the login `vtdeploy` and runs sshd).
# Extra arguments go to cargo nextest, e.g. `scripts/e2e.sh -E 'test(picker)'`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/e2e-prereqs.sh
exec cargo nextest run -p vestibule --no-fail-fast "$@"
