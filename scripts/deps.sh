#!/usr/bin/env bash
# deps.sh [--with valgrind|luarocks|luacheck|lua-luv|libtsan2]...: make sure what the build and the
# tests need is here.  Silent when it is.  Otherwise, as root with apt-get,
# install exactly the missing Debian packages; else print the command to run
# and fail.
set -euo pipefail

extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --with) [ $# -ge 2 ] || { echo "deps.sh: --with needs a package" >&2; exit 2; }
            extra+=("$2"); shift 2 ;;
    *) echo "usage: deps.sh [--with valgrind|luarocks|luacheck|lua-luv|libtsan2]..." >&2; exit 2 ;;
  esac
done

# Check what the build uses, not what dpkg says, so a hand-built Lua or libuv
# counts too.  Without pkg-config, look for the headers instead.
has_cmd() { command -v "$1" >/dev/null 2>&1; }
has_lib() {  # has_lib PKG-CONFIG-NAME HEADER
  if has_cmd pkg-config; then pkg-config --exists "$1"; else [ -f "/usr/include/$2" ]; fi
}
# /usr/bin/busted is run as `lua5.4 /usr/bin/busted`: it needs the 5.4 modules.
has_busted() { [ -f /usr/bin/busted ] && has_lua_module busted.runner; }
has_lua_module() { lua5.4 -e "require '$1'" 2>/dev/null; }
# ThreadSanitizer's runtime (make tsan), found the way gcc links it.
has_tsan() { [ -f "$(gcc -print-file-name=libtsan.so 2>/dev/null)" ]; }

missing=()
need() {  # need DEBIAN-PACKAGE CHECK...
  local pkg=$1; shift
  "$@" || missing+=("$pkg")
}
need gcc          has_cmd gcc
need make         has_cmd make
need pkg-config   has_cmd pkg-config
need lua5.4       has_cmd lua5.4
need liblua5.4-dev has_lib lua5.4 lua5.4/lua.h
need libuv1-dev   has_lib libuv uv.h
# TLS (csrc/io/tls.c) is built on OpenSSL.
need libssl-dev   has_lib openssl openssl/ssl.h
need lua-busted   has_busted
# specs count open fds and walk temp dirs with lfs (also a dependency of busted).
need lua-filesystem has_lua_module lfs
# spec/version_guard_spec.lua checks what `require "trio"` says under Lua 5.1.
need lua5.1       has_cmd lua5.1
# spec/luasocket_facade_spec.lua runs LuaSocket's own socket.http over
# require "trio_asyncio.luasocket".
need lua-socket   has_lua_module socket.http
# spec/net_peers_spec.lua talks to clients and servers no one here wrote.
need curl           has_cmd curl
need netcat-openbsd has_cmd nc
need python3        has_cmd python3
# spec/tls_peers_spec.lua makes its certificates and talks to s_server/s_client.
need openssl        has_cmd openssl
for p in ${extra[@]+"${extra[@]}"}; do
  case $p in
    luacheck) need lua-check has_cmd luacheck ;;
    lua-luv) need lua-luv has_lua_module luv ;;   # the benchmarks' wall clock
    libtsan2) need libtsan2 has_tsan ;;
    *) need "$p" has_cmd "$p" ;;   # valgrind and luarocks are named after their command
  esac
done

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && has_cmd apt-get; then
  echo "deps.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "deps.sh: missing packages; run:" >&2
  echo "  sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
