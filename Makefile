# Entry points. Each target installs what it needs (Debian packages) first.
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
CTEST_ARGS ?= -LE heavy

.PHONY: setup configure build test test-all demo bench bench-train bench-volunteers clean

setup:
	@bash scripts/setup.sh

configure: setup
	@cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

build: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS)
	@bash scripts/python_path.sh $(BUILD_DIR)

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

test-all: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

demo: build
	$(BUILD_DIR)/bin/artel demo

bench: build
	$(BUILD_DIR)/bin/artel bench tasks

# Time to 90 % test accuracy on Fashion-MNIST: one process vs artel's modes
# (about 25 minutes; WORKERS=N to change the worker count).
WORKERS ?= 2
bench-train: build
	BIN=$(BUILD_DIR)/bin bench/train_matrix.sh -n $(WORKERS)

# The same, with every worker a simulated volunteer machine: its own cgroup
# with a quota of CPU cores and, with NET=20mbit, its own network namespace
# behind a rate-limited link; the baseline runs under the same quota. Needs
# root. VOLUNTEERS=N workers, CPU=cores each, MODES="single local sync".
VOLUNTEERS ?= 4
CPU ?= 0.4
NET ?=
MODES ?= single local sync
bench-volunteers: build
	BIN=$(BUILD_DIR)/bin BUILD_DIR=$(BUILD_DIR) bench/volunteers.sh -n $(VOLUNTEERS) \
	  --cpu $(CPU) -s "$(MODES)" $(if $(NET),--net $(NET))

clean:
	rm -rf $(BUILD_DIR)
