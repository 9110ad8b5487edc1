#!/usr/bin/env bash
# Make sure the programs the end-to-end tests drive are installed
# (crates/vestibule/tests). Idempotent; installs missing Debian packages as root.
set -euo pipefail

declare -A need=(
  [/usr/sbin/sshd]=openssh-server
  [/usr/bin/ssh]=openssh-client
  [/usr/bin/rsync]=rsync
  [/usr/bin/tmux]=tmux
  [/usr/bin/sshpass]=sshpass
  [/usr/bin/expect]=expect
)

missing=()
for path in "${!need[@]}"; do
  [[ -x $path ]] || missing+=("${need[$path]}")
done

if ((${#missing[@]})); then
  echo "e2e-prereqs: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# sshd's privilege separation directory (the tests also create it).
mkdir -p /run/sshd
echo "e2e-prereqs: ok" >&2
