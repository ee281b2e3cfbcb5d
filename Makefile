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
else
CFLAGS += -Wno-unknown-pragmas
endif

# Optional: OpenBLAS, for the dense layers' matrix products (cblas_sgemm). BLAS=auto (the
# default) uses it when pkg-config finds it, BLAS=openblas insists on it, BLAS=no keeps the
# built-in kernels. `descent --version` names the one built in.
BLAS ?= auto
ifeq ($(BLAS),auto)
override BLAS := $(if $(shell pkg-config --exists openblas 2>/dev/null && echo yes),openblas,no)
endif
ifeq ($(BLAS),openblas)
ifneq ($(shell pkg-config --exists openblas 2>/dev/null && echo yes),yes)
$(error BLAS=openblas: pkg-config does not find openblas (install libopenblas-dev))
endif
CFLAGS += -DDSC_HAVE_CBLAS $(shell pkg-config --cflags openblas)
LDLIBS += $(shell pkg-config --libs openblas)
else ifneq ($(BLAS),no)
$(error BLAS=$(BLAS): use auto, openblas or no)
endif

LIB_SRC := $(sort $(wildcard src/*.c))
CLI_SRC := $(sort $(wildcard cli/*.c))
TEST_SRC := $(sort $(wildcard tests/test_*.c))
EXAMPLES := $(patsubst examples/%.c,$(BUILD)/examples/%,$(wildcard examples/*.c))

LIB_OBJ := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(LIB_SRC))
CLI_OBJ := $(patsubst cli/%.c,$(BUILD)/cli/%.o,$(CLI_SRC))
TEST_OBJ := $(patsubst tests/%.c,$(BUILD)/tests/%.o,$(TEST_SRC) tests/runner.c)

.PHONY: all lib test test-plain test-asan test-builtin demo clean examples FORCE

all: lib $(if $(CLI_SRC),$(BUILD)/descent) examples

lib: $(BUILD)/libdescent.a $(BUILD)/libdescent.so

# The compiler, flags and libraries a build folder was made with. The file is rewritten only
# when they change, and everything depends on it, so that `make BLAS=no` after `make` (or the
# other way round) in the same folder rebuilds rather than mixing the two.
BUILD_FLAGS = $(CC) $(CFLAGS) $(PIC) $(LDLIBS)

$(BUILD)/flags: FORCE | $(BUILD)
	@echo '$(BUILD_FLAGS)' | cmp -s - $@ || echo '$(BUILD_FLAGS)' > $@

FORCE:

$(BUILD)/obj/%.o: src/%.c include/descent.h $(wildcard src/*.h) $(BUILD)/flags | $(BUILD)/obj
	$(CC) $(CFLAGS) $(PIC) -c $< -o $@

$(BUILD)/cli/%.o: cli/%.c include/descent.h $(wildcard cli/*.h) $(BUILD)/flags | $(BUILD)/cli
	$(CC) $(CFLAGS) -Icli -c $< -o $@

$(BUILD)/tests/%.o: tests/%.c include/descent.h tests/test.h $(BUILD)/test_list.h \
		$(BUILD)/flags | $(BUILD)/tests
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

# The runner links the command's objects (not main.o), so that tests can call cmd_train etc.
CLI_LIB_OBJ = $(filter-out $(BUILD)/cli/main.o,$(CLI_OBJ))

$(BUILD)/run-tests: $(TEST_OBJ) $(CLI_LIB_OBJ) $(BUILD)/libdescent.a
	$(CC) $(CFLAGS) -o $@ $(TEST_OBJ) $(CLI_LIB_OBJ) $(BUILD)/libdescent.a $(LDLIBS)

$(BUILD)/examples/%: examples/%.c $(BUILD)/libdescent.a $(BUILD)/flags | $(BUILD)/examples
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libdescent.a $(LDLIBS)

examples: $(EXAMPLES)

$(BUILD) $(BUILD)/obj $(BUILD)/cli $(BUILD)/tests $(BUILD)/examples:
	mkdir -p $@

# `make test` runs the suite on the plain build, then again under ASan and UBSan when the
# compiler can build with them.
SAN_FLAGS = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
HAVE_SAN := $(shell echo 'int main(void){return 0;}' | \
              $(CC) $(SAN_FLAGS) -x c - -o /dev/null 2>/dev/null && echo yes)

test: test-plain $(if $(HAVE_SAN),test-asan) $(if $(filter openblas,$(BLAS)),test-builtin)

test-plain: all $(BUILD)/run-tests
	DSC_BUILD=$(BUILD) $(BUILD)/run-tests

test-asan:
	$(MAKE) --no-print-directory BUILD=build/asan OPT=-O1 SAN="$(SAN_FLAGS)" test-plain

# With OpenBLAS, `make test` also runs the suite on the built-in kernels (BLAS=no), so that
# both back ends of the dense layers are tested; they are built in $(BUILD)/builtin.
test-builtin:
	$(MAKE) --no-print-directory BUILD=$(BUILD)/builtin BLAS=no test-plain

# The main job on bundled real data: an MLP on the UCI digits and logistic regression on
# the breast-cancer set, each with a held-out fifth of the rows.
demo: all
	@$(BUILD)/descent train data/digits.csv -o $(BUILD)/digits.dsc --model mlp --loss softmax \
	    --hidden 128 --epochs 60 --val 0.2 --seed 1 --quiet
	@$(BUILD)/descent train data/breast_cancer.csv -o $(BUILD)/breast_cancer.dsc --val 0.2 \
	    --seed 1 --quiet

clean:
	rm -rf build

# ---- Benchmark (see bench/README.md) ------------------------------------------------------
# `make bench` builds the driver against the static library and runs bench/run.py: data with
# a fixed seed, descent and its peers (scikit-learn, PyTorch, LIBLINEAR), the tables. It is
# never part of `make test`. `make bench BENCH_QUICK=1` is a smoke run about 10x smaller.
BENCH_PYTHON ?= /usr/bin/python3
BENCH_OPENBLAS := $(shell pkg-config --exists openblas 2>/dev/null && echo yes)
BENCH_CFLAGS := $(if $(BENCH_OPENBLAS),-DBENCH_HAVE_CBLAS $(shell pkg-config --cflags openblas))
BENCH_LIBS := $(if $(BENCH_OPENBLAS),$(shell pkg-config --libs openblas))
BENCH_QUICK_FLAG := $(if $(filter 1 yes true,$(BENCH_QUICK)),--quick)

.PHONY: bench bench-build

bench-build: $(BUILD)/bench/descent_bench

$(BUILD)/bench/descent_bench: bench/descent_bench.c include/descent.h $(BUILD)/libdescent.a
	mkdir -p $(BUILD)/bench
	$(CC) $(CFLAGS) $(BENCH_CFLAGS) -o $@ $< $(BUILD)/libdescent.a $(BENCH_LIBS) $(LDLIBS)

bench: bench-build
	$(MAKE) --no-print-directory $(BUILD)/descent || \
	    echo "bench: $(BUILD)/descent did not build; task 5 will say n/a"
	$(BENCH_PYTHON) bench/run.py --bench-bin $(BUILD)/bench/descent_bench \
	    --descent $(BUILD)/descent $(BENCH_QUICK_FLAG)

# ---- Fuzzing (tests/fuzz) ------------------------------------------------------------------
# `make fuzz` builds the libFuzzer harnesses with clang, ASan and UBSan in build/fuzz (the
# library and the command's sources compiled there) and runs each for FUZZ_SECONDS from its
# seed corpus tests/fuzz/corpus/NAME; what it finds goes to build/fuzz/corpus/NAME, crashes
# to build/fuzz/crash-NAME-*. `make fuzz-run-csv` runs one. Never part of `make test`.
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_DIR := build/fuzz
FUZZ_NAMES := csv libsvm npy idx model checkpoint options cache
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS = -O1 $(CFLAGS_BASE) -DDSC_NO_CLONES $(if $(HAVE_ZLIB),-DDSC_HAVE_ZLIB) $(FUZZ_SAN)
FUZZ_LIB_OBJ = $(patsubst src/%.c,$(FUZZ_DIR)/obj/%.o,$(LIB_SRC))
FUZZ_CLI_OBJ = $(patsubst cli/%.c,$(FUZZ_DIR)/cli/%.o,$(filter-out cli/main.c,$(CLI_SRC)))
FUZZ_MAXLEN_csv := 4096
FUZZ_MAXLEN_libsvm := 4096
FUZZ_MAXLEN_npy := 2048
FUZZ_MAXLEN_idx := 2048
FUZZ_MAXLEN_model := 4096
FUZZ_MAXLEN_checkpoint := 8192
FUZZ_MAXLEN_options := 512
FUZZ_MAXLEN_cache := 4096
FUZZ_FLAGS_options := -close_fd_mask=3

.PHONY: fuzz fuzz-check fuzz-build
.PRECIOUS: $(FUZZ_DIR)/obj/%.o $(FUZZ_DIR)/cli/%.o $(FUZZ_DIR)/fuzz_%

fuzz: $(addprefix fuzz-run-,$(FUZZ_NAMES))

fuzz-check:
	@printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }\n' | \
	    $(FUZZ_CC) -fsanitize=fuzzer,address,undefined -x c - -o /dev/null 2>/dev/null || \
	    { echo "fuzz: '$(FUZZ_CC)' cannot build libFuzzer targets with ASan and UBSan;" \
	      "install clang and its runtime (Debian: clang libclang-rt-14-dev) or set FUZZ_CC"; \
	      exit 1; }

fuzz-build: fuzz-check $(addprefix $(FUZZ_DIR)/fuzz_,$(FUZZ_NAMES))

$(FUZZ_DIR)/obj/%.o: src/%.c include/descent.h $(wildcard src/*.h) Makefile | fuzz-check
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_DIR)/cli/%.o: cli/%.c include/descent.h $(wildcard cli/*.h) | fuzz-check
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -Icli -c $< -o $@

$(FUZZ_DIR)/fuzz_options: $(FUZZ_CLI_OBJ)

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c $(wildcard tests/fuzz/*.h) $(FUZZ_LIB_OBJ) | fuzz-check
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -Icli -Itests/fuzz -o $@ $< $(FUZZ_LIB_OBJ) \
	    $(if $(filter fuzz_options,$(@F)),$(FUZZ_CLI_OBJ)) -lm $(if $(HAVE_ZLIB),-lz)

fuzz-run-%: $(FUZZ_DIR)/fuzz_%
	@mkdir -p $(FUZZ_DIR)/corpus/$*
	$< -max_total_time=$(FUZZ_SECONDS) -max_len=$(FUZZ_MAXLEN_$*) -timeout=10 \
	    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=$(FUZZ_DIR)/crash-$*- \
	    $(FUZZ_FLAGS_$*) $(if $(wildcard tests/fuzz/$*.dict),-dict=tests/fuzz/$*.dict) \
	    $(FUZZ_DIR)/corpus/$* tests/fuzz/corpus/$*

# ---- Valgrind ------------------------------------------------------------------------------
# `make test-valgrind` builds the suite plainly in build/valgrind (-O1 -g, no sanitizers, no
# OpenMP) and runs all of it under memcheck, following the runner's forks and the commands
# the tests start (descent, the example). Each process logs to build/valgrind/logs/PID.log;
# a memory error or a definite or indirect leak makes its process exit 97, which fails its
# test, and any log with errors fails the run. Slow (tens of minutes): never part of `make
# test`. DSC_TEST_TIME_SCALE stretches the runner's time limits; VALGRIND_TESTS=NAME... picks
# tests as the runner's arguments do.
VALGRIND ?= valgrind
VALGRIND_DIR := build/valgrind
VALGRIND_SCALE ?= 40
VALGRIND_SKIP := */rm,*/mkdir,*/python3*,*/xmllint,*/rsvg-convert
VALGRIND_FLAGS = --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect \
    --errors-for-leak-kinds=definite,indirect --error-exitcode=97 --num-callers=30 \
    --trace-children=yes --trace-children-skip='$(VALGRIND_SKIP)' \
    --log-file=$(CURDIR)/$(VALGRIND_DIR)/logs/%p.log $(VALGRIND_EXTRA)

.PHONY: test-valgrind
test-valgrind:
	$(MAKE) --no-print-directory BUILD=$(VALGRIND_DIR) OPT=-O1 OPENMP=no SAN= all \
	    $(VALGRIND_DIR)/run-tests
	rm -rf $(VALGRIND_DIR)/logs && mkdir -p $(VALGRIND_DIR)/logs
	DSC_BUILD=$(VALGRIND_DIR) DSC_TEST_TIME_SCALE=$(VALGRIND_SCALE) $(VALGRIND) \
	    $(VALGRIND_FLAGS) $(VALGRIND_DIR)/run-tests $(VALGRIND_TESTS); status=$$?; \
	bad=$$(grep -l 'ERROR SUMMARY: [1-9]' $(VALGRIND_DIR)/logs/*.log); \
	for f in $$bad; do echo "valgrind: errors in $$f"; done; \
	echo "valgrind: $$(ls $(VALGRIND_DIR)/logs | wc -l) processes," \
	    "$$(echo $$bad | wc -w) with errors"; \
	test $$status -eq 0 && test -z "$$bad"
