#!/usr/bin/env bash
# Install the `oidc-provider` npm package (a certified OpenID Connect provider,
# used by the single sign-on tests in crates/vestibule/tests/gateway_sso.rs)
# once into tools/oidc-provider/ under the repo root, and print that folder.
# Installs Debian's nodejs and npm when node is missing (as root).
# Idempotent: a second run only prints the folder.
set -euo pipefail
cd "$(dirname "$0")/.."

version=9
root="$PWD/tools/oidc-provider"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "oidc-provider.sh: installing nodejs and npm" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends nodejs npm >&2
fi

if [[ ! -f $root/node_modules/oidc-provider/package.json ]] ||
  [[ "$(cat "$root/VERSION" 2>/dev/null)" != "$version" ]]; then
  echo "oidc-provider.sh: installing oidc-provider@$version into $root" >&2
  mkdir -p "$root"
  [[ -f $root/package.json ]] || echo '{"private": true, "type": "module"}' >"$root/package.json"
  npm install --prefix "$root" --no-audit --no-fund --loglevel=error "oidc-provider@$version" >&2
  echo "$version" >"$root/VERSION"
fi

echo "$root"
