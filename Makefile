# trio-asyncio for Lua 5.4 — build, test, bench, demo, install.
# `make` builds build/trio_asyncio/core.so (require "trio_asyncio.core") and
# build/libtrio_asyncio.a and build/libtrio_asyncio.so (the C core with the
# Lua modules compiled in, for C hosts: csrc/include/trio_asyncio.h).

LUA      ?= lua5.4
LUA_PKG  ?= lua5.4
PREFIX   ?= /usr/local
VERSION  ?= $(shell sed -n 's/^local VERSION = "\(.*\)"/\1/p' lua/trio_asyncio/version.lua)
BUILD    ?= build
OPT      ?= -O2 -g
SAN_FLAGS = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

# OpenSSL (TLS, csrc/io/tls.c) comes through pkg-config too (Debian libssl-dev).
SSL_LIBS   = $(shell pkg-config --libs openssl 2>/dev/null || echo -lssl -lcrypto)
PKG_CFLAGS = $(shell pkg-config --cflags $(LUA_PKG) libuv openssl 2>/dev/null)
CFLAGS  += -std=c11 -Wall -Wextra -Werror -fPIC -D_GNU_SOURCE $(OPT) -Icsrc -Icsrc/include $(PKG_CFLAGS)
LDLIBS  += -luv $(SSL_LIBS)

# C host programs (examples/host, spec/host) link the static library.
HOST_CFLAGS = -std=gnu11 -Wall -Wextra -Werror $(OPT) -Icsrc/include $(PKG_CFLAGS)
HOST_LDLIBS = $(shell pkg-config --libs $(LUA_PKG) libuv 2>/dev/null) $(SSL_LIBS) -lm -lpthread

# One folder per layer (docs/ARCHITECTURE.md); csrc/core.c opens them all.
LAYERS   = engine io trio asyncio embed
SRCS     = $(foreach l,$(LAYERS),$(sort $(wildcard csrc/$(l)/*.c))) csrc/core.c
HDRS     = $(wildcard csrc/*/*.h) csrc/include/trio_asyncio.h
OBJS     = $(SRCS:csrc/%.c=$(BUILD)/obj/%.o)
LUA_SRCS = lua/trio.lua $(sort $(wildcard lua/trio/*.lua)) lua/asyncio.lua $(sort $(wildcard lua/asyncio/*.lua)) lua/trio_asyncio.lua
LUA_SRCS += $(sort $(wildcard lua/trio_asyncio/*.lua))

EXAMPLES   = $(patsubst examples/host/%.c,$(BUILD)/examples/%,$(wildcard examples/host/*.c))
HOST_TESTS = $(patsubst spec/host/%.c,$(BUILD)/host-tests/%,$(wildcard spec/host/*.c))

.PHONY: all deps test test-incremental test-gc-stress sanitize valgrind bench bench-compare demo examples host-tests install clean FORCE
.PHONY: env lint rock check-api

all: $(BUILD)/trio_asyncio/core.so $(BUILD)/libtrio_asyncio.a $(BUILD)/libtrio_asyncio.so

deps:
	@bash scripts/deps.sh

$(BUILD)/obj/%.o: csrc/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/trio_asyncio/core.so: $(OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -shared -o $@ $(OBJS) $(LDFLAGS) $(LDLIBS)

# The Lua modules as C strings, registered by trio_asyncio_preload().
$(BUILD)/gen/lua_modules.c: $(LUA_SRCS) scripts/embed_lua.lua
	@mkdir -p $(dir $@)
	$(LUA) scripts/embed_lua.lua $@ $(LUA_SRCS)

$(BUILD)/obj/lua_modules.o: $(BUILD)/gen/lua_modules.c
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libtrio_asyncio.a: $(OBJS) $(BUILD)/obj/lua_modules.o
	rm -f $@
	ar rcs $@ $^

# The same objects as a shared library (-ltrio_asyncio), linked to Lua and libuv.
$(BUILD)/libtrio_asyncio.so: $(OBJS) $(BUILD)/obj/lua_modules.o
	$(CC) $(CFLAGS) -shared -Wl,-soname,libtrio_asyncio.so -o $@ $^ $(LDFLAGS) $(HOST_LDLIBS)

# pkg-config file for C hosts; rewritten on each install, for that PREFIX.
$(BUILD)/trio-asyncio.pc: FORCE
	@mkdir -p $(dir $@)
	@printf '%s\n' \
	  'prefix=$(PREFIX)' \
	  'libdir=$${prefix}/lib' \
	  'includedir=$${prefix}/include' \
	  '' \
	  'Name: trio-asyncio' \
	  'Description: Trio, asyncio and a bridge for Lua 5.4 on libuv (C embedding API)' \
	  'Version: $(VERSION)' \
	  'Requires: $(LUA_PKG) libuv' \
	  'Cflags: -I$${includedir}' \
	  'Libs: -L$${libdir} -ltrio_asyncio' \
	  'Libs.private: -lssl -lcrypto -lm -lpthread' > $@

# C hosts embedding the runtime: build/examples/host_uv, .../host_mainloop.
examples: $(EXAMPLES)

$(BUILD)/examples/%: examples/host/%.c $(BUILD)/libtrio_asyncio.a
	@mkdir -p $(dir $@)
	$(CC) $(HOST_CFLAGS) $< $(BUILD)/libtrio_asyncio.a -o $@ $(LDFLAGS) $(HOST_LDLIBS)

# The C API's test programs (spec/embed_spec.lua compiles and runs them
# itself; this builds them by hand, e.g. for gdb or valgrind).
host-tests: $(HOST_TESTS)

$(BUILD)/host-tests/%: spec/host/%.c spec/host/host_test.h $(BUILD)/libtrio_asyncio.a
	@mkdir -p $(dir $@)
	$(CC) $(HOST_CFLAGS) -Ispec/host $< $(BUILD)/libtrio_asyncio.a -o $@ $(LDFLAGS) $(HOST_LDLIBS)

test: deps
	@$(MAKE) --no-print-directory all
	@bash scripts/check_layers.sh
	@$(MAKE) --no-print-directory check-api
	@bash scripts/test.sh

# The suite in the GC modes C hosts get: incremental (luaL_newstate's
# default), and incremental with a GC step at every spawn and every resume.
test-incremental: deps
	@$(MAKE) --no-print-directory all
	@TA_ENV="TA_GC=incremental" bash scripts/test.sh

# SPECS: the spec files to run (default: all).
test-gc-stress: deps
	@$(MAKE) --no-print-directory all
	@TA_ENV="TA_GC=incremental TA_GC_STRESS=1" bash scripts/test.sh $(SPECS)

# docs/API.md and the types/ stubs name every exported name, and nothing else.
check-api: all
	@LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="$(BUILD)/?.so;;" $(LUA) scripts/check_api.lua

# For your own scripts: eval "$$(make -s env)" puts lua/ and the build on the
# module paths of this shell (lua5.4 my.lua then finds trio).
env:
	@echo 'export LUA_PATH="$(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;;"'
	@echo 'export LUA_CPATH="$(CURDIR)/$(BUILD)/?.so;;"'

lint:
	@bash scripts/deps.sh --with luacheck
	luacheck --no-color -q lua spec examples

# A binary rock in build/rock/ (scripts/rock.sh; --check as CI runs it).
rock: all
	@bash scripts/deps.sh --with luarocks
	@bash scripts/rock.sh

sanitize: deps
	@$(MAKE) --no-print-directory BUILD=build-asan OPT="$(SAN_FLAGS)" LDFLAGS="-fsanitize=address,undefined" all
	@TA_BUILD=build-asan \
	 TA_PRELOAD="$$(gcc -print-file-name=libasan.so)" TA_ENV="ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1" \
	 bash scripts/test.sh

# --fair-sched=yes: valgrind runs one thread at a time, and with its default
# lock a worker that loops (threads_spec cancels such workers) starves the
# main thread for minutes; the fair lock hands the CPU round in turn.
valgrind:
	@bash scripts/deps.sh --with valgrind
	@$(MAKE) --no-print-directory all
	@TA_TEST_TIMEOUT=900 \
	 TA_WRAP="valgrind -q --fair-sched=yes --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite" \
	 bash scripts/test.sh

bench: all
	@bash scripts/deps.sh --with lua-luv
	@bash bench/run.sh

bench-compare: all
	@bash scripts/deps.sh --with lua-luv
	@bash bench/run.sh --compare

demo: deps
	@$(MAKE) --no-print-directory all
	@LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="$(BUILD)/?.so;;" $(LUA) examples/demo.lua

install: all $(BUILD)/trio-asyncio.pc
	install -d $(DESTDIR)$(PREFIX)/lib/lua/5.4/trio_asyncio $(DESTDIR)$(PREFIX)/share/lua/5.4/trio
	install -d $(DESTDIR)$(PREFIX)/share/lua/5.4/asyncio
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 755 $(BUILD)/trio_asyncio/core.so $(DESTDIR)$(PREFIX)/lib/lua/5.4/trio_asyncio/
	install -m 644 lua/trio.lua lua/asyncio.lua lua/trio_asyncio.lua $(DESTDIR)$(PREFIX)/share/lua/5.4/
	install -m 644 lua/trio/*.lua $(DESTDIR)$(PREFIX)/share/lua/5.4/trio/
	install -m 644 lua/asyncio/*.lua $(DESTDIR)$(PREFIX)/share/lua/5.4/asyncio/
	install -d $(DESTDIR)$(PREFIX)/share/lua/5.4/trio_asyncio
	install -m 644 lua/trio_asyncio/*.lua $(DESTDIR)$(PREFIX)/share/lua/5.4/trio_asyncio/
	install -m 644 csrc/include/trio_asyncio.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(BUILD)/libtrio_asyncio.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/libtrio_asyncio.so $(DESTDIR)$(PREFIX)/lib/
	install -m 644 $(BUILD)/trio-asyncio.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/

clean:
	rm -rf build build-asan

# ---- Reliability harnesses (issue #10): make oom / fuzz / tsan / soak -------
# oom   fault injection under ASan: a lua_Alloc that refuses every growth
#       after N allocations, then every libuv call that can be made to fail
#       (--uv-all: also those libuv itself never fails), swept over the
#       scenarios of tests/oom (OOM_ARGS: e.g. --points 60 --timeout 2)
# fuzz  SEEDS seeded random programs under ASan (tests/fuzz; FUZZ_ARGS: e.g.
#       --from 1000 --jobs 1)
# tsan  the C host tests and two stress tests built with ThreadSanitizer
#       (TSAN_ROUNDS: rounds of the stress tests)
# soak  a mixed workload for SECONDS seconds, failing if RSS or fds grow
OOM_ARGS     ?= --points 400 --timeout 3
OOM_SCENARIOS = tests/oom/trio.lua tests/oom/asyncio.lua tests/oom/bridge.lua tests/oom/load.lua tests/oom/guest.lua
OOM_WRAPS     = $(foreach f,uv_loop_init uv_async_init uv_signal_init uv_poll_init uv_poll_start \
                  uv_signal_start uv_timer_init uv_prepare_init uv_idle_init uv_timer_start \
                  uv_prepare_start uv_idle_start,-Wl,--wrap=$(f))
SEEDS        ?= 200
FUZZ_ARGS    ?=
SECONDS      ?= 20
TSAN_FLAGS    = -O1 -g -fsanitize=thread -fno-omit-frame-pointer

.PHONY: oom fuzz tsan soak

$(BUILD)/oom/oom: tests/oom/oom.c csrc/include/trio_asyncio.h $(BUILD)/libtrio_asyncio.a
	@mkdir -p $(dir $@)
	$(CC) $(HOST_CFLAGS) $< $(BUILD)/libtrio_asyncio.a -o $@ $(OOM_WRAPS) $(LDFLAGS) $(HOST_LDLIBS)

oom: deps
	@$(MAKE) --no-print-directory BUILD=build-asan OPT="$(SAN_FLAGS)" LDFLAGS="-fsanitize=address,undefined" build-asan/oom/oom
	@rc=0; \
	 echo "== allocation failures"; build-asan/oom/oom $(OOM_ARGS) $(OOM_SCENARIOS) || rc=1; \
	 echo "== libuv failures"; build-asan/oom/oom --uv-all $(OOM_ARGS) $(OOM_SCENARIOS) || rc=1; \
	 exit $$rc

fuzz: deps
	@$(MAKE) --no-print-directory BUILD=build-asan OPT="$(SAN_FLAGS)" LDFLAGS="-fsanitize=address,undefined" all
	@TA_BUILD=build-asan bash tests/fuzz/run.sh --seeds $(SEEDS) $(FUZZ_ARGS)

tsan: deps
	@bash scripts/deps.sh --with libtsan2
	@$(MAKE) --no-print-directory BUILD=build-tsan OPT="$(TSAN_FLAGS)" LDFLAGS="-fsanitize=thread" host-tests
	@bash tests/tsan/run.sh build-tsan/host-tests

soak: deps
	@$(MAKE) --no-print-directory all
	@LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="$(BUILD)/?.so;;" $(LUA) tests/soak/soak.lua $(SECONDS) \
	 || { rc=$$?; [ $$rc -gt 1 ] && echo "soak: FAILED: the process died (exit $$rc)"; exit 1; }
