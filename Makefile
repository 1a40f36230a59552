# The two commands of the README's quick start. Everything else is CMake's.
BUILD ?= build
SANITIZE ?= OFF
JOBS ?= $(shell nproc)

.PHONY: run test build deps

run: deps build
	./$(BUILD)/leadbus --target=all

test:
	./deploy/install-deps.sh --test
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLEADBUS_SANITIZE=$(SANITIZE) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)
	cd $(BUILD) && ctest --output-on-failure --timeout 600 -j 2

build:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLEADBUS_SANITIZE=$(SANITIZE) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

deps:
	./deploy/install-deps.sh
