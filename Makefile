# descent - build with `make`, test with `make test`, try it with `make demo`.
#
# Nothing beyond a C11 compiler, make, libc and libm is required. Optional parts are
# detected here and reported by `descent --version`.

CC ?= cc
BUILD ?= build
OPT ?= -O3
CFLAGS_BASE = -std=c11 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wno-unused-parameter -Wno-psabi \
              -fno-fast-math -fno-math-errno -ffp-contract=off -g -Iinclude -Isrc
CFLAGS += $(OPT) $(CFLAGS_BASE) $(SAN)
LDLIBS += -lm
PIC = -fPIC

# Optional: zlib, for gzipped IDX files.
HAVE_ZLIB := $(shell printf '\043include <zlib.h>\nint main(void){return 0;}\n' | \
               $(CC) -x c - -lz -o /dev/null 2>/dev/null && echo yes)
ifeq ($(HAVE_ZLIB),yes)
CFLAGS += -DDSC_HAVE_ZLIB
LDLIBS += -lz
endif

# Optional: OpenMP, for threads (`make OPENMP=no` builds without it).
OPENMP ?= $(shell echo 'int main(void){return 0;}' | \
            $(CC) -fopenmp -x c - -o /dev/null 2>/dev/null && echo yes)
ifeq ($(OPENMP),yes)
CFLAGS += -fopenmp
LDLIBS += -fopenmp
endif

LIB_SRC := $(sort $(wildcard src/*.c))
CLI_SRC := $(sort $(wildcard cli/*.c))
TEST_SRC := $(sort $(wildcard tests/test_*.c))
EXAMPLES := $(patsubst examples/%.c,$(BUILD)/examples/%,$(wildcard examples/*.c))

LIB_OBJ := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(LIB_SRC))
CLI_OBJ := $(patsubst cli/%.c,$(BUILD)/cli/%.o,$(CLI_SRC))
TEST_OBJ := $(patsubst tests/%.c,$(BUILD)/tests/%.o,$(TEST_SRC) tests/runner.c)

.PHONY: all lib test test-plain test-asan demo clean examples

all: lib $(if $(CLI_SRC),$(BUILD)/descent) examples

lib: $(BUILD)/libdescent.a $(BUILD)/libdescent.so

$(BUILD)/obj/%.o: src/%.c include/descent.h src/internal.h Makefile | $(BUILD)/obj
	$(CC) $(CFLAGS) $(PIC) -c $< -o $@

$(BUILD)/cli/%.o: cli/%.c include/descent.h $(wildcard cli/*.h) | $(BUILD)/cli
	$(CC) $(CFLAGS) -Icli -c $< -o $@

$(BUILD)/tests/%.o: tests/%.c include/descent.h tests/test.h $(BUILD)/test_list.h \
		| $(BUILD)/tests
	$(CC) $(CFLAGS) -I$(BUILD) -Itests -c $< -o $@

$(BUILD)/libdescent.a: $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/libdescent.so: $(LIB_OBJ)
	$(CC) $(CFLAGS) -shared -o $@ $^ $(LDLIBS)

$(BUILD)/descent: $(CLI_OBJ) $(BUILD)/libdescent.a
	$(CC) $(CFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/libdescent.a $(LDLIBS)

# The test list: one X(name) line for every TEST(name) in the test files.
$(BUILD)/test_list.h: $(TEST_SRC) | $(BUILD)
	sed -n 's/^TEST(\([A-Za-z0-9_]*\)).*/X(\1)/p' $(TEST_SRC) > $@.tmp
	mv $@.tmp $@

$(BUILD)/run-tests: $(TEST_OBJ) $(BUILD)/libdescent.a
	$(CC) $(CFLAGS) -o $@ $(TEST_OBJ) $(BUILD)/libdescent.a $(LDLIBS)

$(BUILD)/examples/%: examples/%.c $(BUILD)/libdescent.a | $(BUILD)/examples
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libdescent.a $(LDLIBS)

examples: $(EXAMPLES)

$(BUILD) $(BUILD)/obj $(BUILD)/cli $(BUILD)/tests $(BUILD)/examples:
	mkdir -p $@

# `make test` runs the suite on the plain build, then again under ASan and UBSan when the
# compiler can build with them.
SAN_FLAGS = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
HAVE_SAN := $(shell echo 'int main(void){return 0;}' | \
              $(CC) $(SAN_FLAGS) -x c - -o /dev/null 2>/dev/null && echo yes)

test: test-plain $(if $(HAVE_SAN),test-asan)

test-plain: all $(BUILD)/run-tests
	DSC_BUILD=$(BUILD) $(BUILD)/run-tests

test-asan:
	$(MAKE) --no-print-directory BUILD=build/asan OPT=-O1 SAN="$(SAN_FLAGS)" test-plain

demo: all
	$(BUILD)/examples/quickstart

clean:
	rm -rf build
