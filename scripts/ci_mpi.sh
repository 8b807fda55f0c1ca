#!/usr/bin/env bash
# CI for the `mpi` feature (data-parallel training, src/parallel.rs). Installs what it needs
# when missing (Debian/Ubuntu): OpenMPI (`mpirun`, `mpicc` and headers, which rsmpi's build
# probes), libclang with clang's builtin headers (for rsmpi's bindgen), and OpenBLAS. Then
# lints the feature, smoke-runs the example under `mpirun -n 2`, and runs the MPI test last:
# it re-launches itself under `mpirun -n 2` and `mpirun -n 3 --oversubscribe` (the checks of
# data-parallel training and its error paths), kills or stops a rank mid-training in four ways
# (mpirun must end within a bound), and kills a run and restarts it from its checkpoint at 2
# and 3 ranks (bitwise equal to an uninterrupted run); it closes with `mpi: N passed, N failed`.
#
# Works as root (OpenMPI's run-as-root switches are exported) and in a fresh container.
set -euo pipefail
cd "$(dirname "$0")/.."

# OpenMPI refuses to run as root without both of these.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# One OpenBLAS thread per rank: the ranks already fill the cores.
export OPENBLAS_NUM_THREADS=1

has_libclang() {
  # bindgen loads libclang.so at build time and needs clang's own stddef.h & co.
  if [ -n "${LIBCLANG_PATH:-}" ]; then return 0; fi
  compgen -G '/usr/lib/llvm-*/lib/libclang*.so*' >/dev/null &&
    compgen -G '/usr/lib/llvm-*/lib/clang/*/include/stddef.h' >/dev/null
}

packages=()
if ! command -v mpirun >/dev/null 2>&1 || ! command -v mpicc >/dev/null 2>&1; then
  packages+=(openmpi-bin libopenmpi-dev)
fi
if ! has_libclang; then
  # The shared library and the builtin headers are enough for bindgen (~50 MB); the
  # libclang-dev metapackage would pull libclang-14-dev, ~240 MB of static libraries.
  packages+=(libclang1-14 libclang-common-14-dev)
fi
if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists openblas; then
  packages+=(libopenblas-dev pkg-config)
fi
if [ ${#packages[@]} -gt 0 ]; then
  echo "== installing ${packages[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  if ! apt-get install -y -q --no-install-recommends "${packages[@]}"; then
    # Another Debian/Ubuntu release: its default libclang instead of version 14.
    echo "== retrying with libclang-dev"
    retry=()
    for p in "${packages[@]}"; do
      case "$p" in
        libclang1-14) retry+=(libclang-dev) ;;
        libclang-common-14-dev) ;;
        *) retry+=("$p") ;;
      esac
    done
    apt-get install -y -q --no-install-recommends "${retry[@]}"
  fi
fi
echo "== $(mpirun --version 2>&1 | head -n 1)"

echo "== cargo clippy --all-targets --features mpi -- -D warnings"
cargo clippy --all-targets --features mpi -- -D warnings

echo "== cargo test --features mpi --lib parallel (the sharding helper)"
cargo test --features mpi --lib parallel

echo "== the example under mpirun -n 2"
cargo build --features mpi --example data_parallel
oversubscribe=()
if mpirun --version 2>&1 | grep -q 'Open MPI'; then oversubscribe=(--oversubscribe); fi
mpirun -n 2 "${oversubscribe[@]}" "${CARGO_TARGET_DIR:-target}/debug/examples/data_parallel" --per-class 300 --epochs 30

echo "== the MPI test: cargo test --features mpi --test mpi_data_parallel"
cargo test --features mpi --test mpi_data_parallel
