# bitnet.h - build, test, run. See README.md.
CC      ?= cc
CFLAGS  ?= -O2 -g
WARN    := -Wall -Wextra -Wpedantic
LIBS    := -lm -lpthread -ldl
BUILD   := build

.PHONY: all amalgamate test deps clean bench fuzz lib

all: bitnet.h $(BUILD)/bitnet

# bitnet.h is generated from src/ and committed; `make` keeps it fresh.
bitnet.h: amalgamate.py LICENSE $(wildcard src/*.h) src/metal/bitnet.metal
	@if command -v python3 >/dev/null 2>&1; then python3 amalgamate.py; \
	else echo "python3 not found: using the committed bitnet.h"; touch $@; fi

amalgamate:
	python3 amalgamate.py

# The `bitnet` command: every tools/*.c is one translation unit of it; each includes only bitnet.h
# (tools/bitnet.c holds the implementation) and tools/cli.h. New commands go in files of their own.
TOOL_SRC := $(wildcard tools/*.c)
# On macOS the command also gets the Metal backend (bitnet_metal.m; --metal on run, chat, serve, ppl, bench):
# BITNET_METAL, ARC, and the Metal and Foundation frameworks. Elsewhere nothing changes.
ifeq ($(shell uname -s),Darwin)
METAL_OBJ := $(BUILD)/bitnet_metal.o
METAL_DEF := -DBITNET_METAL
METAL_LIBS := -framework Metal -framework Foundation
$(METAL_OBJ): bitnet_metal.m bitnet.h
	@mkdir -p $(BUILD)
	clang $(CFLAGS) $(WARN) -fobjc-arc -c bitnet_metal.m -o $@
endif
$(BUILD)/bitnet: $(TOOL_SRC) $(wildcard tools/*.h) bitnet.h $(METAL_OBJ)
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS) $(WARN) $(METAL_DEF) $(TOOL_SRC) $(METAL_OBJ) -o $@ $(LIBS) $(METAL_LIBS)

# macOS: the bitnet command with --metal (the same as `make` there; an error elsewhere).
.PHONY: metal
metal:
	@if [ "$$(uname -s)" != Darwin ]; then echo "make metal: the Metal backend builds on macOS only (docs/metal.md: how it is tested here)"; exit 1; fi
	@$(MAKE) $(BUILD)/bitnet

# The shared library of the header's API, for bindings (python/bitnet.py loads it with ctypes).
LIB := $(BUILD)/libbitnet$(if $(filter Darwin,$(shell uname -s)),.dylib,.so)
lib: $(LIB)
$(LIB): bitnet.h
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS) $(WARN) -shared -fPIC -D_DEFAULT_SOURCE -DBITNET_IMPLEMENTATION -x c bitnet.h -o $@ -lm -lpthread

# Installs what the test suite needs on Debian/Ubuntu, only what is missing.
deps:
	@sh tools/deps.sh

# Checks that the committed bitnet.h is a fresh amalgamation *before* regenerating it.
test:
	@sh tests/all.sh

# Every fuzz harness tests/fuzz/fuzz_*.c under libFuzzer + ASan + UBSan (clang), FUZZ_SECONDS each,
# one after another; new inputs go to build/fuzz/corpus, findings to build/fuzz/artifacts
# (tests/fuzz/README.md). FUZZ_JOBS=N runs N processes per harness.
FUZZ_SECONDS ?= 60
fuzz:
	@sh tests/fuzz/fuzz.sh run $(FUZZ_SECONDS)

# Speed of the 2B4T-shaped synthetic model (generated into build/ on first use) against this
# machine's memory bandwidth; BENCH_ARGS="MODEL_DIR -t N --layout tq1 --head i8 --quick" to vary.
bench: $(BUILD)/bitnet
	./$(BUILD)/bitnet bench $(BENCH_ARGS)

clean:
	rm -rf $(BUILD)

# The trainer that made models/shakespeare (README: Training); -march=native for the gemm's speed.
$(BUILD)/train: examples/train.c bitnet.h
	@mkdir -p $(BUILD)
	$(CC) -O3 -march=native $(WARN) examples/train.c -o $@ $(LIBS)

# Generates a short Shakespeare-like passage, offline, from models/shakespeare: the BitNet b1.58
# model that bitnet.h trained itself on this repo's data (README: Training).
.PHONY: run
run: $(BUILD)/bitnet
	@printf 'JULIET:\nO Romeo'
	@$(BUILD)/bitnet run -m models/shakespeare -p "$$(printf 'JULIET:\nO Romeo')" -n 150 --seed 7
	@echo
