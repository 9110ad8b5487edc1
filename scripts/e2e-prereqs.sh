#!/usr/bin/env bash
# Make sure the programs the end-to-end tests drive are installed
# (crates/vestibule/tests), asciinema and promtool to check our formats, and the
# s3s-fs S3 server. Idempotent; installs missing Debian packages as root.
set -euo pipefail

declare -A need=(
  [/usr/sbin/sshd]=openssh-server
  [/usr/bin/ssh]=openssh-client
  [/usr/bin/rsync]=rsync
  [/usr/bin/tmux]=tmux
  [/usr/bin/sshpass]=sshpass
  [/usr/bin/expect]=expect
  [/usr/bin/asciinema]=asciinema
  [/usr/bin/promtool]=prometheus
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

# The S3 server the recording tests store to (built once into tools/, ~4 min).
bash "$(dirname "$0")/s3s-fs.sh" >/dev/null

# The OpenID Connect provider the SSO tests log in against (npm oidc-provider).
bash "$(dirname "$0")/oidc-provider.sh" >/dev/null

# sshd's privilege separation directory (the tests also create it).
mkdir -p /run/sshd
echo "e2e-prereqs: ok" >&2
