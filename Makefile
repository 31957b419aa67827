# Entry points. Each target installs what it needs (Debian packages) first.
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
CTEST_ARGS ?= -LE heavy

.PHONY: setup configure build test test-all demo bench clean

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

clean:
	rm -rf $(BUILD_DIR)
