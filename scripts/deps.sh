#!/usr/bin/env bash
# deps.sh [--with PKG]...: make sure the Debian packages the build and the
# tests need are installed: install the missing ones with apt-get when we
# are root, otherwise print the command to run.
set -eu
want=(lua5.4 liblua5.4-dev libuv1-dev lua-busted pkg-config gcc make)
while [ $# -gt 0 ]; do
  case $1 in
    --with) want+=("$2"); shift 2 ;;
    *) echo "deps.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "deps.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q "${missing[@]}" >/dev/null
else
  echo "deps.sh: missing packages; run: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
