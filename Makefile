# Entry points. Each target installs what it needs (Debian packages) first.
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
CTEST_ARGS ?= -LE heavy

.PHONY: setup configure build test test-all demo bench bench-train clean

setup:
	@bash scripts/setup.sh

configure: setup
	@cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

build: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS)

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

clean:
	rm -rf $(BUILD_DIR)
