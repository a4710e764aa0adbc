# bitnet.h - build, test, run. See README.md.
CC      ?= cc
CFLAGS  ?= -O2 -g
WARN    := -Wall -Wextra -Wpedantic
LIBS    := -lm -lpthread
BUILD   := build

.PHONY: all amalgamate test deps clean

all: bitnet.h $(BUILD)/bitnet

# bitnet.h is generated from src/ and committed; `make` keeps it fresh.
bitnet.h: amalgamate.py LICENSE $(wildcard src/*.h)
	python3 amalgamate.py

amalgamate:
	python3 amalgamate.py

# The `bitnet` command (tools/bitnet.c includes only bitnet.h).
$(BUILD)/bitnet: tools/bitnet.c bitnet.h
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS) $(WARN) tools/bitnet.c -o $@ $(LIBS)

# Installs what the test suite needs on Debian/Ubuntu, only what is missing.
deps:
	@sh tools/deps.sh

# Checks that the committed bitnet.h is a fresh amalgamation *before* regenerating it.
test:
	@sh tests/all.sh

clean:
	rm -rf $(BUILD)
