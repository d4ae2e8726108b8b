# keyauth: build, test, fuzz, bench, install.
#
#   make              keyauthd, keyauthctl, keyauth-admin, libspop.a (build/)
#   make test         deps, unit tests (plain and ASan+UBSan), fuzz corpus replay, integration
#   make fuzz         each libFuzzer target for FUZZ_SECONDS (default 60)
#   make bench        benchmarks with release flags
#   make install      PREFIX=/usr/local DESTDIR=
#   make uninstall    what make install installed (same variables); keeps the config and key store
#   make deb          the Debian package build/deb/keyauth_<version>_<arch>.deb (dist/debian;
#                     DEB_VERSION=0.1.0+local1 for another version); make test-pkg installs,
#                     upgrades and purges it for real (root)
#   make deps         install missing Debian packages (root), or print the command
#
# Sources are picked up by convention: spop/*.c is the codec library;
# agent/common/*.c the modules the programs share, agent/keyauthd/*.c,
# agent/keyauthctl/*.c and agent/admin/*.c each program (its main aside),
# each its own archive (only agent/admin/ uses libmicrohttpd);
# tests/unit/test_*.c and
# tests/integ/test_*.c are cmocka programs, tests/fuzz/fuzz_*.c are libFuzzer targets.

PREFIX  ?= /usr/local
DESTDIR ?=
CC      ?= cc
CLANG   ?= clang
FUZZ_SECONDS ?= 60

OPT_CFLAGS  ?= -O2 -g
STD_CFLAGS   = -std=c11 -D_GNU_SOURCE
WARN_CFLAGS  = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
               -Wpointer-arith -Wformat=2 -Wundef -Wvla -Wimplicit-fallthrough \
               -Wnull-dereference
# spop/ is small and byte-oriented: it also gets the conversion warnings.
SPOP_WARN    = -Wconversion -Wsign-conversion
SAN_FLAGS    = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

PKGS      = openssl msgpack libconfig hiredis jansson
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# libev ships no .pc file on Debian.
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lev -lpthread -lm
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)
# libmicrohttpd: keyauth-admin only (its objects, tests and fuzz targets);
# keyauthd and keyauthctl never link it.
MHD_CFLAGS := $(shell pkg-config --cflags libmicrohttpd 2>/dev/null)
MHD_LIBS   := $(shell pkg-config --libs libmicrohttpd 2>/dev/null || echo -lmicrohttpd)

SPOP_SRC  = $(sort $(wildcard spop/*.c))
AGENT_MAINS = agent/keyauthd/keyauthd.c agent/keyauthctl/keyauthctl.c agent/admin/keyauth-admin.c
COMMON_SRC = $(sort $(wildcard agent/common/*.c))
DAEMON_SRC = $(sort $(filter-out $(AGENT_MAINS),$(wildcard agent/keyauthd/*.c)))
CTL_SRC    = $(sort $(filter-out $(AGENT_MAINS),$(wildcard agent/keyauthctl/*.c)))
ADMIN_SRC  = $(sort $(filter-out $(AGENT_MAINS),$(wildcard agent/admin/*.c)))
AGENT_SRC  = $(COMMON_SRC) $(DAEMON_SRC) $(CTL_SRC) $(ADMIN_SRC)
AGENT_INC  = -Iagent/common -Iagent/keyauthd -Iagent/keyauthctl -Iagent/admin
# spop/ stands alone: its tests see only spop/ and tests/lib/testutil.
SPOP_TEST_SRC = $(sort $(wildcard tests/unit/test_spop_*.c))
UNIT_SRC  = $(sort $(filter-out $(SPOP_TEST_SRC),$(wildcard tests/unit/test_*.c)))
INTEG_SRC = $(sort $(wildcard tests/integ/test_*.c))
TESTLIB_SRC = $(sort $(wildcard tests/lib/*.c))
FUZZ_SRC  = $(sort $(wildcard tests/fuzz/fuzz_*.c))
BENCH_SRC = $(sort $(wildcard tests/bench/*.c))
HDRS      = $(wildcard spop/*.h agent/*/*.h tests/lib/*.h)

# One build tree per flavour: build/ (plain), build/san (ASan+UBSan), build/rel (bench).
B ?= build
FLAVOUR_CFLAGS ?=
CFLAGS_ALL = $(STD_CFLAGS) $(OPT_CFLAGS) $(WARN_CFLAGS) $(FLAVOUR_CFLAGS) -Ispop $(AGENT_INC) -Itests/lib $(PKG_CFLAGS) $(CFLAGS)
LDFLAGS_ALL = $(FLAVOUR_CFLAGS) $(LDFLAGS)

SPOP_OBJ  = $(SPOP_SRC:%.c=$(B)/%.o)
COMMON_OBJ = $(COMMON_SRC:%.c=$(B)/%.o)
DAEMON_OBJ = $(DAEMON_SRC:%.c=$(B)/%.o)
CTL_OBJ    = $(CTL_SRC:%.c=$(B)/%.o)
ADMIN_OBJ  = $(ADMIN_SRC:%.c=$(B)/%.o)
# Tests and benchmarks reach into every module: all archives, dependents first.
ALL_LIBS   = $(B)/libkeyauthd.a $(B)/libkeyauth-admin.a $(B)/libkeyauthctl.a $(B)/libkeyauth-common.a $(B)/libspop.a
TESTLIB_OBJ = $(TESTLIB_SRC:%.c=$(B)/%.o)
UNIT_BIN  = $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)
SPOP_TEST_BIN = $(SPOP_TEST_SRC:tests/unit/%.c=$(B)/spop-tests/%)
SPOP_ONLY_CFLAGS = $(STD_CFLAGS) $(OPT_CFLAGS) $(WARN_CFLAGS) $(SPOP_WARN) $(FLAVOUR_CFLAGS) -Ispop -Itests/lib $(CFLAGS)
INTEG_BIN = $(INTEG_SRC:tests/integ/%.c=$(B)/tests/%)
BENCH_BIN = $(BENCH_SRC:tests/bench/%.c=$(B)/bench/%)

.PHONY: all deps test test-spop test-unit test-integ test-cli test-e2e test-examples test-run test-doc test-fuzz-replay fuzz fuzz-build bench bench-run install uninstall clean run \
	deb test-pkg

all: $(B)/keyauthd $(B)/keyauthctl $(B)/keyauth-admin $(B)/libspop.a

# Debian packages, then HAProxy 3.2 from Debian sid beside the system's 2.6
# (exit 3 = not obtainable here: the 3.2 runs are skipped, loudly).
deps:
	@sh scripts/deps.sh
	@sh scripts/haproxy32.sh; rc=$$?; [ $$rc = 0 ] || [ $$rc = 3 ]

$(B)/spop/%.o: spop/%.c $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) $(SPOP_WARN) -c $< -o $@

$(B)/%.o: %.c $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

# What each part may include: common/ only itself, each program common/ and
# its own folder (tests and benchmarks see everything).
$(B)/agent/common/%.o: AGENT_INC = -Iagent/common
$(B)/agent/keyauthd/%.o: AGENT_INC = -Iagent/common -Iagent/keyauthd
$(B)/agent/keyauthctl/%.o: AGENT_INC = -Iagent/common -Iagent/keyauthctl
$(B)/agent/admin/%.o: AGENT_INC = -Iagent/common -Iagent/admin $(MHD_CFLAGS)

$(B)/libspop.a: $(SPOP_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/libkeyauth-common.a: $(COMMON_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/libkeyauthd.a: $(DAEMON_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/libkeyauthctl.a: $(CTL_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/libkeyauth-admin.a: $(ADMIN_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/keyauthd: $(B)/agent/keyauthd/keyauthd.o $(B)/libkeyauthd.a $(B)/libkeyauth-common.a $(B)/libspop.a
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(PKG_LIBS)

$(B)/keyauthctl: $(B)/agent/keyauthctl/keyauthctl.o $(B)/libkeyauthctl.a $(B)/libkeyauth-common.a $(B)/libspop.a
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(PKG_LIBS)

$(B)/keyauth-admin: $(B)/agent/admin/keyauth-admin.o $(B)/libkeyauth-admin.a $(B)/libkeyauth-common.a
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(MHD_LIBS) $(PKG_LIBS)

# The codec's own tests: no agent header, no library but libspop.a and cmocka.
$(B)/spop-tests/%: tests/unit/%.c tests/lib/testutil.c $(B)/libspop.a $(wildcard spop/*.h) tests/lib/testutil.h tests/unit/spop-vectors.h
	@mkdir -p $(@D)
	$(CC) $(SPOP_ONLY_CFLAGS) -o $@ $< tests/lib/testutil.c $(B)/libspop.a $(CMOCKA_LIBS)

$(B)/tests/%: tests/unit/%.c $(TESTLIB_OBJ) $(ALL_LIBS) $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(TESTLIB_OBJ) $(ALL_LIBS) $(MHD_LIBS) $(PKG_LIBS) $(CMOCKA_LIBS)

$(B)/tests/%: tests/integ/%.c $(TESTLIB_OBJ) $(ALL_LIBS) $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(TESTLIB_OBJ) $(ALL_LIBS) $(MHD_LIBS) $(PKG_LIBS) $(CMOCKA_LIBS)

$(B)/bench/%: tests/bench/%.c $(TESTLIB_OBJ) $(ALL_LIBS) $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(TESTLIB_OBJ) $(ALL_LIBS) $(MHD_LIBS) $(PKG_LIBS)

# ---- tests ----------------------------------------------------------------

# Everything CI runs, one suite at a time, each timed ("==== <suite>" before
# it, "==== <suite>: <s> s" after; a suite's time includes building what it
# runs). The plain and the sanitizer flavour are separate make invocations so
# each has its own object tree. At the end, or at the first suite that fails,
# a table of the suites by duration, longest first, with each e2e file on a
# line of its own (tests/e2e/lib.js writes them to $$E2E_TIMES).
TEST_TIMES = build/test-times
PLAIN_MAKE = $(MAKE) --no-print-directory B=build
SAN_MAKE   = $(MAKE) --no-print-directory B=build/san OPT_CFLAGS="-O1 -g" FLAVOUR_CFLAGS="$(SAN_FLAGS)"
test_table = { cat $(TEST_TIMES); sed 's|^|e2e/|' $(TEST_TIMES).e2e; } | sort -k2,2nr | \
	awk '{ printf "  %-26s %7.1f s\n", $$1, $$2 / 1000 }'
# $(call timed,SUITE,COMMAND)
timed = echo "==== $(1)"; t0=$$(date +%s%N); \
	if ! $(2); then echo "make test: FAILED: $(1); suites run so far, by duration:"; $(test_table); exit 1; fi; \
	ms=$$(( ($$(date +%s%N) - t0) / 1000000 )); echo "$(1) $$ms" >>$(TEST_TIMES); \
	printf '==== %s: %d.%d s\n' '$(1)' $$((ms / 1000)) $$((ms % 1000 / 100))

test:
	@mkdir -p build; : >$(TEST_TIMES); : >$(TEST_TIMES).e2e; date +%s%N >$(TEST_TIMES).start
	@$(call timed,deps,$(MAKE) --no-print-directory deps)
	@$(call timed,unit,$(PLAIN_MAKE) test-unit)
	@$(call timed,integ,$(PLAIN_MAKE) test-integ)
	@$(call timed,cli,$(PLAIN_MAKE) test-cli)
	@$(call timed,san-unit,$(SAN_MAKE) test-unit)
	@$(call timed,san-integ,$(SAN_MAKE) test-integ)
	@$(call timed,san-cli,$(SAN_MAKE) test-cli)
	@$(call timed,fuzz-replay,$(MAKE) --no-print-directory test-fuzz-replay)
	@$(call timed,e2e,E2E_TIMES=$(CURDIR)/$(TEST_TIMES).e2e $(PLAIN_MAKE) test-e2e)
	@$(call timed,examples,$(PLAIN_MAKE) test-examples)
	@$(call timed,pkg,$(PLAIN_MAKE) test-pkg)
	@$(call timed,run,$(PLAIN_MAKE) test-run)
	@$(call timed,doc,$(PLAIN_MAKE) test-doc)
	@echo "make test: suites by duration:"; $(test_table)
	@ms=$$(( ($$(date +%s%N) - $$(cat $(TEST_TIMES).start)) / 1000000 )); \
	printf 'make test: all suites passed in %d.%d s\n' $$((ms / 1000)) $$((ms % 1000 / 100))

# make test-repeat [N=5] [LOAD=1]: N runs of .ci/run, each in a fresh clone of
# HEAD (uncommitted changes are not in it), LOAD=1 with a CPU-bound process
# on one core; logs under build/test-repeat/, then every test that failed at
# least once, with counts, and each run's wall time.
.PHONY: test-repeat
test-repeat:
	@bash scripts/test-repeat.sh $(or $(N),5) $(if $(filter 1,$(LOAD)),--load)

# The demo stack of `make run`, on loopback: starts, answers 200/200/200/401
# through HAProxy 2.6 (and 3.2 when present), stops everything.
test-run: $(B)/keyauthd $(B)/keyauthctl
	@B=$(B) bash scripts/run.sh --self-test
	@if .haproxy32/bin/haproxy -v >/dev/null 2>&1; then \
	  B=$(B) HAPROXY=.haproxy32/bin/haproxy bash scripts/run.sh --self-test; fi

export ASAN_OPTIONS = halt_on_error=1:detect_leaks=1:abort_on_error=1
# keyauthd refuses to run as root without a `user` setting unless told so. The
# tests, benchmarks and the `make run` demo start it as whoever runs make
# (root on CI): they tell it.
export KEYAUTH_ALLOW_ROOT = 1
export UBSAN_OPTIONS = halt_on_error=1:print_stacktrace=1

# spop/ builds and tests on its own: make test-spop.
test-spop: $(SPOP_TEST_BIN)
	@set -e; for t in $(SPOP_TEST_BIN); do echo "== $$t"; $$t; done

test-unit: $(UNIT_BIN) test-spop
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

test-integ: $(INTEG_BIN) $(B)/keyauthd $(B)/keyauthctl
	@set -e; for t in $(INTEG_BIN); do echo "== $$t"; KEYAUTHD=$(B)/keyauthd KEYAUTHCTL=$(B)/keyauthctl $$t; done

test-cli: $(B)/keyauthctl $(B)/keyauthd
	@if [ -f tests/cli/run.sh ]; then echo "== tests/cli/run.sh ($(B))"; \
	  KEYAUTHCTL=$(B)/keyauthctl KEYAUTHD=$(B)/keyauthd bash tests/cli/run.sh; fi

# End to end: real HAProxy 2.6 (and 3.2 when scripts/haproxy32.sh could get
# it), real keyauthd, curl and the openai SDK pinned in tests/e2e's lockfile.
test-e2e: $(B)/keyauthd $(B)/keyauthctl $(B)/keyauth-admin
	@npm ci --prefix tests/e2e --no-audit --no-fund --loglevel=error
	@# The vendor stand-ins refuse what the vendors refuse (each SDK, directly).
	node tests/e2e/sdk-selftest.mjs
	KEYAUTHD=$(B)/keyauthd KEYAUTHCTL=$(B)/keyauthctl KEYAUTH_ADMIN=$(B)/keyauth-admin node --test --test-reporter=spec tests/e2e/

# haproxy-examples/ match what keyauthctl renders, load in HAProxy 2.6 and 3.2; 03-query runs live.
test-examples: $(B)/keyauthd $(B)/keyauthctl
	@echo "== tests/examples/check.sh ($(B))"
	@KEYAUTHCTL=$(B)/keyauthctl KEYAUTHD=$(B)/keyauthd bash tests/examples/check.sh

# Man pages lint clean, the systemd unit verifies, make install lays out the tree.
test-doc: $(B)/keyauthd $(B)/keyauthctl
	@echo "== tests/doc/check.sh ($(B))"
	@B=$(B) MAKE="$(MAKE)" bash tests/doc/check.sh

# The whole product on loopback: agent, HAProxy 2.6, a stand-in provider, demo keys.
run: deps all
	@B=$(B) bash scripts/run.sh

# ---- fuzzing (clang libFuzzer with ASan+UBSan) ------------------------------

FB = build/fuzz
# The library sources are compiled once (instrumented for coverage, not
# linked with libFuzzer's main) and shared by every target.
FUZZ_BASE = $(STD_CFLAGS) -O1 -g -fno-sanitize-recover=all \
            -Wall -Wextra -Werror -Ispop $(AGENT_INC) -Itests/lib $(PKG_CFLAGS)
FUZZ_CFLAGS = $(FUZZ_BASE) -fsanitize=fuzzer,address,undefined
FUZZ_OBJ = $(SPOP_SRC:%.c=$(FB)/obj/%.o) $(AGENT_SRC:%.c=$(FB)/obj/%.o)
FUZZ_BIN = $(FUZZ_SRC:tests/fuzz/%.c=$(FB)/%)
.SECONDARY: $(FUZZ_OBJ)
# msgpack-c reserves memory from container counts: a huge count must come back
# as NULL (a clean "out of memory" rejection), not as a sanitizer report.
FUZZ_ENV = ASAN_OPTIONS=halt_on_error=1:allocator_may_return_null=1:max_allocation_size_mb=1024
FUZZ_OPTS = -malloc_limit_mb=1100 -rss_limit_mb=2048

$(FB)/obj/%.o: %.c $(HDRS)
	@mkdir -p $(@D)
	$(CLANG) $(FUZZ_BASE) -fsanitize=fuzzer-no-link,address,undefined -c -o $@ $<

$(FB)/%: tests/fuzz/%.c $(FUZZ_OBJ) $(HDRS)
	@mkdir -p $(@D)
	$(CLANG) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_OBJ) $(MHD_LIBS) $(PKG_LIBS)

fuzz-build: $(FUZZ_BIN)

# Replays every corpus file (seeds and crash regressions) through its target once.
test-fuzz-replay: $(FUZZ_BIN)
	@set -e; for f in $(FUZZ_BIN); do n=$$(basename $$f); d=tests/fuzz/corpus/$$n; \
	  echo "== replay $$n ($$(ls $$d | wc -l) inputs)"; \
	  $(FUZZ_ENV) $$f $(FUZZ_OPTS) -runs=0 $$d >/dev/null 2>build/fuzz/$$n.log || { cat build/fuzz/$$n.log; exit 1; }; done

# Each target uses tests/fuzz/<target>.dict when there is one (fuzz_admin_*:
# admin.dict), else spop.dict.
fuzz: $(FUZZ_BIN)
	@set -e; for f in $(FUZZ_BIN); do n=$$(basename $$f); mkdir -p build/fuzz/corpus-$$n; \
	  echo "== fuzz $$n for $(FUZZ_SECONDS)s"; \
	  dict=tests/fuzz/$${n#fuzz_}.dict; case $$n in fuzz_admin_*) dict=tests/fuzz/admin.dict;; esac; \
	  [ -f $$dict ] || dict=tests/fuzz/spop.dict; \
	  $(FUZZ_ENV) $$f $(FUZZ_OPTS) -max_total_time=$(FUZZ_SECONDS) -dict=$$dict -artifact_prefix=build/fuzz/$$n- \
	      build/fuzz/corpus-$$n tests/fuzz/corpus/$$n; done

# ---- benchmarks (release flags) ---------------------------------------------

bench:
	@$(MAKE) --no-print-directory B=build/rel OPT_CFLAGS="-O2 -g -DNDEBUG" all bench-run

bench-run: $(BENCH_BIN) $(B)/keyauthd $(B)/keyauthctl
	@sh tests/bench/all.sh $(B)

# ---- install ------------------------------------------------------------------
#
# make install [PREFIX=/usr/local] [DESTDIR=] [SYSCONFDIR=/etc]
# Binaries, man pages, the example configuration (always, in share/doc) and
# SYSCONFDIR/keyauth/keyauth.conf only when absent (an operator's file is
# never overwritten), the systemd units (keyauthd, keyauth-admin),
# sysusers.d and tmpfiles.d entries, the bash completion, keyauth-admin's
# OpenAPI document and console under share/keyauth.
# As root on a live system, then: systemd-sysusers; systemd-tmpfiles --create;
# systemctl daemon-reload (doc/README-ops.md).

SYSCONFDIR  ?= /etc
MANDIR      ?= $(PREFIX)/share/man
UNITDIR     ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
COMPLDIR    ?= $(PREFIX)/share/bash-completion/completions
# keyauth-admin's OpenAPI document and console (admin.console_dir defaults
# to /usr/share/keyauth/console: set it for another PREFIX). The console's
# files are exactly these three names: the daemon serves nothing else.
SHAREDIR    ?= $(PREFIX)/share/keyauth
CONSOLE_FILES = $(wildcard agent/admin/console/index.html agent/admin/console/console.css agent/admin/console/console.js)
DIST_SED     = -e 's|@SBINDIR@|$(PREFIX)/sbin|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g'

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/doc/keyauth \
	    $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(UNITDIR) \
	    $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(TMPFILESDIR) $(DESTDIR)$(COMPLDIR) \
	    $(DESTDIR)$(SHAREDIR)/console
	install -d -m 0750 $(DESTDIR)$(SYSCONFDIR)/keyauth
	install -m 0755 $(B)/keyauthd $(DESTDIR)$(PREFIX)/sbin/keyauthd
	install -m 0755 $(B)/keyauthctl $(DESTDIR)$(PREFIX)/bin/keyauthctl
	install -m 0755 $(B)/keyauth-admin $(DESTDIR)$(PREFIX)/sbin/keyauth-admin
	install -m 0644 agent/admin/openapi.json $(DESTDIR)$(SHAREDIR)/openapi.json
	$(if $(CONSOLE_FILES),install -m 0644 $(CONSOLE_FILES) $(DESTDIR)$(SHAREDIR)/console/)
	install -m 0644 agent/keyauth.conf $(DESTDIR)$(PREFIX)/share/doc/keyauth/keyauth.conf.example
	install -m 0644 doc/README-ops.md $(DESTDIR)$(PREFIX)/share/doc/keyauth/README-ops.md
	install -m 0644 doc/keyauth.conf.5 $(DESTDIR)$(MANDIR)/man5/keyauth.conf.5
	install -m 0644 doc/keyauthd.8 doc/keyauthctl.8 doc/keyauth-admin.8 $(DESTDIR)$(MANDIR)/man8/
	sed $(DIST_SED) dist/keyauthd.service > $(DESTDIR)$(UNITDIR)/keyauthd.service
	sed $(DIST_SED) dist/keyauth-admin.service > $(DESTDIR)$(UNITDIR)/keyauth-admin.service
	sed $(DIST_SED) dist/keyauth.tmpfiles > $(DESTDIR)$(TMPFILESDIR)/keyauth.conf
	chmod 0644 $(DESTDIR)$(UNITDIR)/keyauthd.service $(DESTDIR)$(UNITDIR)/keyauth-admin.service \
	    $(DESTDIR)$(TMPFILESDIR)/keyauth.conf
	install -m 0644 dist/keyauth.sysusers $(DESTDIR)$(SYSUSERSDIR)/keyauth.conf
	install -m 0644 dist/keyauthctl.bash-completion $(DESTDIR)$(COMPLDIR)/keyauthctl
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/keyauth/keyauth.conf ]; then \
	  echo "install: kept $(DESTDIR)$(SYSCONFDIR)/keyauth/keyauth.conf (new example: $(PREFIX)/share/doc/keyauth/keyauth.conf.example)"; \
	else \
	  echo "install -m 0640 agent/keyauth.conf $(DESTDIR)$(SYSCONFDIR)/keyauth/keyauth.conf"; \
	  install -m 0640 agent/keyauth.conf $(DESTDIR)$(SYSCONFDIR)/keyauth/keyauth.conf; \
	fi

# make uninstall [PREFIX=/usr/local] [DESTDIR=] [SYSCONFDIR=/etc]
# Removes the files make install installed and share/doc/keyauth when left
# empty; keeps SYSCONFDIR/keyauth/keyauth.conf (the operator's) and never
# touches the key store (/var/lib/keyauth). Harmless when run twice.
INSTALLED = $(PREFIX)/sbin/keyauthd $(PREFIX)/bin/keyauthctl \
	$(PREFIX)/share/doc/keyauth/keyauth.conf.example $(PREFIX)/share/doc/keyauth/README-ops.md \
	$(MANDIR)/man5/keyauth.conf.5 $(MANDIR)/man8/keyauthd.8 $(MANDIR)/man8/keyauthctl.8 \
	$(UNITDIR)/keyauthd.service $(SYSUSERSDIR)/keyauth.conf $(TMPFILESDIR)/keyauth.conf \
	$(COMPLDIR)/keyauthctl \
	$(PREFIX)/sbin/keyauth-admin $(SHAREDIR)/openapi.json $(MANDIR)/man8/keyauth-admin.8 \
	$(UNITDIR)/keyauth-admin.service \
	$(addprefix $(SHAREDIR)/console/,index.html console.css console.js)

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	@for d in $(DESTDIR)$(SHAREDIR)/console $(DESTDIR)$(SHAREDIR); do \
	  if [ -d $$d ] && [ -z "$$(ls -A $$d)" ]; then echo "rmdir $$d"; rmdir $$d; fi; done
	@d=$(DESTDIR)$(PREFIX)/share/doc/keyauth; if [ -d $$d ] && [ -z "$$(ls -A $$d)" ]; then echo "rmdir $$d"; rmdir $$d; fi
	@echo "uninstall: kept $(DESTDIR)$(SYSCONFDIR)/keyauth/keyauth.conf (the operator's configuration) and the key store /var/lib/keyauth"

# ---- Debian package ---------------------------------------------------------------
#
# make deb [DEB_VERSION=V] [DEB_DIR=build/deb]: stages the tree's files (git
# ls-files, new files too) into DEB_DIR/keyauth-V/ with dist/debian as debian/
# and a changelog entry for V (default: version.h's), then dpkg-buildpackage -b
# -us -uc; prints the .deb's path. No test runs inside the package build.
deb:
	@DEB_VERSION="$(DEB_VERSION)" DEB_DIR="$(DEB_DIR)" bash scripts/deb.sh

# The package installed for real (root, dpkg): lintian, dpkg -i, a gateway from
# the installed files, upgrade over itself, remove/reinstall, purge
# (tests/pkg/deb.sh; it refuses to run over an existing installation).
test-pkg:
	@echo "== tests/pkg/deb.sh ($(B)/pkg-test)"
	@DEB_DIR=$(B)/pkg-test bash tests/pkg/deb.sh

clean:
	rm -rf build
