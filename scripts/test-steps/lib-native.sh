# Shared by the native test steps (sourced, not a step itself: test-all
# only runs NN-*.sh). Installs clang and its sanitizer/fuzzer runtimes from
# Debian if missing, and builds native/test with CMake.

# ensure_clang: clang++, compiler-rt (ASan/TSan/UBSan/libFuzzer), cmake, a
# build tool. Quiet and idempotent.
ensure_clang() {
  local need=()
  command -v clang++ >/dev/null 2>&1 || need+=(clang)
  command -v cmake >/dev/null 2>&1 || need+=(cmake)
  command -v ninja >/dev/null 2>&1 || command -v make >/dev/null 2>&1 || need+=(ninja-build)
  # compiler-rt: libFuzzer and the sanitizer runtimes of Debian's clang
  # (libclang-rt-dev follows the default clang version).
  compgen -G '/usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-*.a' >/dev/null || need+=(libclang-rt-dev)
  [ ${#need[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "missing: ${need[*]} (install clang, compiler-rt, cmake)" >&2
    return 1
  fi
  echo "installing ${need[*]} ..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null 2>&1
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 || {
    echo "apt-get install ${need[*]} failed" >&2
    return 1
  }
}

# build_native <variant> <cmake args...>: configures (once) and builds
# native/test/build/<variant> with clang, RelWithDebInfo.
build_native() {
  local variant=$1
  shift
  local dir=native/test/build/$variant gen=()
  command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
  mkdir -p native/test/build
  if [ ! -f "$dir/CMakeCache.txt" ]; then
    if ! CC=clang CXX=clang++ cmake -S . -B "$dir" "${gen[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" \
      >"$dir.configure.log" 2>&1; then
      cat "$dir.configure.log"
      rm -rf "$dir"
      return 1
    fi
  fi
  if ! cmake --build "$dir" -j 2 >"$dir.build.log" 2>&1; then
    tail -40 "$dir.build.log"
    return 1
  fi
}
