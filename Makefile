# Entry points for people. The build itself is CMake; see README.md.
PREFIX ?= /usr/local
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_SECONDS ?= 60
JOBS ?= $(shell nproc)
CACHE ?= $(HOME)/.cache/expt-test
VENV := $(CACHE)/venv

.PHONY: all deps test-deps build example test test-fast test-asan fuzz bench install format format-check clean

all: build

deps:
	@scripts/deps

test-deps:
	@scripts/deps --test

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

example: build
	@examples/quickstart/run.sh $(BUILD)/expt

# The whole suite: normal build, then ASan+UBSan build, then format check. Ends with ctest's summary.
test: test-deps
	@PATH="$(VENV)/bin:$$PATH" scripts/test-all

test-fast: test-deps build
	@cmake -S . -B $(BUILD) -DEXPT_TESTS=ON >/dev/null && cmake --build $(BUILD) -j $(JOBS)
	@cd $(BUILD) && PATH="$(VENV)/bin:$$PATH" EXPT_TEST_SKIP_CLUSTER=1 EXPT_TEST_SKIP_FRESH=1 EXPT_TEST_SKIP_CONTAINERS=1 ctest --output-on-failure -j 2

# Every libFuzzer target for FUZZ_SECONDS each; new finds are merged into tests/fuzz/corpus.
fuzz: test-deps
	@scripts/fuzz $(FUZZ_SECONDS)

bench: build
	@bench/run-all $(BUILD)/expt

install: build
	@cmake --install $(BUILD) --prefix $(PREFIX)
	@if [ -d python ]; then python3 -m pip install -q ./python || echo "install: python binding not installed (pip failed)"; fi

format:
	@find src include tests bench -name '*.[ch]' | xargs clang-format -i

format-check:
	@find src include tests bench -name '*.[ch]' | xargs clang-format --dry-run -Werror

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
