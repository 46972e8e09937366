# qemu-hspt top-level Makefile. See README.md.
#
#   make            build build/qemu-system-arm and build/qemu-arm
#   make run        boot the ARM guest and run a demo workload
#   make shell      boot the ARM guest to an interactive shell
#   make check      every test; ends with "N passed, N failed"
#   make bench      benchmark table (medians, ratios), CSV and PNG plot
#   make bench-sweep  HSPT off/on at several guest setups (RAM, CPU, -smp),
#                   size test: looks for cliffs off the default setup

REPO := $(CURDIR)
BUILD := $(REPO)/build
-include $(BUILD)/config.mk
QEMU_SRC_DIR ?=
HSPT_CACHE ?= $(HOME)/.cache/qemu-hspt
USE_CCACHE ?= yes
EXTRA_QEMU_CONFIGURE ?=

PYTHON := /usr/bin/python3
NINJA_JOBS ?= $(shell nproc)
HSPT_VERSION := $(shell cat $(REPO)/VERSION)

QEMU_BUILD := $(BUILD)/qemu
QEMU_CONFIGURE_ARGS := --target-list=arm-softmmu,arm-linux-user \
	--disable-install-blobs --disable-docs --disable-tools \
	--disable-guest-agent --enable-seccomp --python=$(PYTHON) \
	--cross-prefix-arm=arm-linux-gnueabihf- \
	--firmwarepath=/usr/share/qemu:/usr/lib/ipxe/qemu \
	'--with-pkgversion=qemu-hspt $(HSPT_VERSION)' $(EXTRA_QEMU_CONFIGURE)

ifeq ($(USE_CCACHE),yes)
export PATH := /usr/lib/ccache:$(PATH)
export CCACHE_DIR := $(HSPT_CACHE)/ccache
export CCACHE_BASEDIR := $(BUILD)
export CCACHE_NOHASHDIR := 1
endif
export HSPT_CACHE

.PHONY: all deps prepare tree qemu-configure qemu guest run shell bench bench-sweep check \
	check-unit clean distclean help
.DEFAULT_GOAL := all

all: qemu

help:
	@sed -n '3,9p' Makefile | sed 's/^# //'

deps:
	@$(REPO)/scripts/install-deps.sh --check || $(REPO)/scripts/install-deps.sh

tree: deps
	@$(REPO)/scripts/prepare-tree.sh $(REPO) $(BUILD) $(HSPT_CACHE) $(QEMU_SRC_DIR)

# QEMU's configure runs again only when its arguments change; meson
# regenerates by itself when a meson.build changes.
qemu-configure: tree
	@mkdir -p $(QEMU_BUILD)
	@echo "$(QEMU_CONFIGURE_ARGS)" > $(QEMU_BUILD)/.hspt-args.new
	@if ! cmp -s $(QEMU_BUILD)/.hspt-args.new $(QEMU_BUILD)/.hspt-args || \
	    [ ! -f $(QEMU_BUILD)/build.ninja ]; then \
		echo "make: configuring QEMU in $(QEMU_BUILD)"; \
		(cd $(QEMU_BUILD) && $(BUILD)/src/configure $(QEMU_CONFIGURE_ARGS) \
			> configure.log 2>&1) || \
			{ tail -30 $(QEMU_BUILD)/configure.log; exit 1; }; \
		mv $(QEMU_BUILD)/.hspt-args.new $(QEMU_BUILD)/.hspt-args; \
	fi

prepare: qemu-configure

qemu: qemu-configure
	@ninja -C $(QEMU_BUILD) -j $(NINJA_JOBS) qemu-system-arm qemu-arm
	@ln -sfn qemu/qemu-system-arm $(BUILD)/qemu-system-arm
	@ln -sfn qemu/qemu-arm $(BUILD)/qemu-arm
	@# Run from the build tree, QEMU looks for firmware under qemu-bundle/;
	@# point it at the Debian blobs that the +ds source package strips.
	@mkdir -p $(QEMU_BUILD)/qemu-bundle/usr/share $(QEMU_BUILD)/qemu-bundle/usr/lib/ipxe
	@ln -sfn /usr/share/qemu $(QEMU_BUILD)/qemu-bundle/usr/share/qemu
	@ln -sfn /usr/lib/ipxe/qemu $(QEMU_BUILD)/qemu-bundle/usr/lib/ipxe/qemu

guest: deps
	@$(REPO)/tests/hspt/guest/build-kit.sh $(REPO) $(BUILD)/guest $(HSPT_CACHE)

run: qemu guest
	@$(PYTHON) $(REPO)/tests/hspt/hsptguest.py demo

shell: qemu guest
	@$(PYTHON) $(REPO)/tests/hspt/hsptguest.py shell

bench: qemu guest
	@$(PYTHON) $(REPO)/tests/hspt/bench.py $(BENCH_ARGS)

SWEEP_ARGS ?= --paired --reps 1 --size test --no-user \
	--workloads seqrw,chase,forkstorm,pipering,mmapchurn,cow,pagecache,xz,sqlite,shpipe
bench-sweep: qemu guest
	@$(PYTHON) $(REPO)/tests/hspt/bench.py --sweep \
	    --config 'off=$(BUILD)/qemu-system-arm' \
	    --config 'on=$(BUILD)/qemu-system-arm -accel tcg,hspt=on' \
	    --out $(BUILD)/bench-sweep $(SWEEP_ARGS)

check: qemu guest
	@$(PYTHON) $(REPO)/tests/hspt/check.py $(CHECK_ARGS)

clean:
	@[ ! -f $(QEMU_BUILD)/build.ninja ] || ninja -C $(QEMU_BUILD) clean
	rm -rf $(BUILD)/guest $(BUILD)/check $(BUILD)/bench $(BUILD)/bench-sweep

distclean:
	rm -rf $(BUILD)
