// A tiny test framework for the native tests: TEST() registers a case,
// CHECK*() record a failure (with file and line) and go on, REQUIRE()
// ends the case. main() runs every case, or the ones whose name contains
// argv[1], and ends with the line "N passed, M failed".
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace sipc_test {

struct Case {
  const char* name;
  void (*fn)();
};

inline std::vector<Case>& Registry() {
  static std::vector<Case> cases;
  return cases;
}

inline int& FailuresInCase() {
  static int failures = 0;
  return failures;
}

struct Registrar {
  Registrar(const char* name, void (*fn)()) { Registry().push_back(Case{name, fn}); }
};

struct RequireFailed {};

inline void Fail(const char* file, int line, const std::string& what) {
  std::fprintf(stderr, "    %s:%d: %s\n", file, line, what.c_str());
  FailuresInCase()++;
}

template <typename T>
std::string Show(const T& v) {
  std::ostringstream os;
  os << v;
  return os.str();
}
inline std::string Show(const std::string& v) { return "\"" + v + "\""; }
inline std::string Show(const char* v) { return v == nullptr ? "(null)" : "\"" + std::string(v) + "\""; }
inline std::string Show(const std::vector<uint8_t>& v) {
  std::string s(v.begin(), v.end());
  if (s.size() > 80) s = s.substr(0, 80) + "...(" + std::to_string(v.size()) + " bytes)";
  return "\"" + s + "\"";
}
template <typename E>
auto ShowEnum(E e) -> decltype(static_cast<int>(e)) {
  return static_cast<int>(e);
}

inline int RunAll(int argc, char** argv) {
  const char* filter = argc > 1 ? argv[1] : nullptr;
  int passed = 0;
  int failed = 0;
  for (const Case& c : Registry()) {
    if (filter != nullptr && std::strstr(c.name, filter) == nullptr) continue;
    std::fprintf(stderr, "[ RUN  ] %s\n", c.name);
    FailuresInCase() = 0;
    try {
      c.fn();
    } catch (const RequireFailed&) {
    } catch (const std::exception& e) {
      Fail(__FILE__, __LINE__, std::string("exception: ") + e.what());
    }
    if (FailuresInCase() == 0) {
      passed++;
      std::fprintf(stderr, "[  OK  ] %s\n", c.name);
    } else {
      failed++;
      std::fprintf(stderr, "[ FAIL ] %s\n", c.name);
    }
  }
  // The closing line test-step scripts read.
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 && passed > 0 ? 0 : 1;
}

}  // namespace sipc_test

#define SIPC_CAT2(a, b) a##b
#define SIPC_CAT(a, b) SIPC_CAT2(a, b)

#define TEST(name)                                                                  \
  static void SIPC_CAT(test_, name)();                                              \
  static ::sipc_test::Registrar SIPC_CAT(registrar_, name)(#name, &SIPC_CAT(test_, name)); \
  static void SIPC_CAT(test_, name)()

#define CHECK(cond)                                                 \
  do {                                                              \
    if (!(cond)) ::sipc_test::Fail(__FILE__, __LINE__, "CHECK(" #cond ")"); \
  } while (0)

#define CHECK_EQ(a, b)                                                                                \
  do {                                                                                                \
    auto&& sipc_a = (a);                                                                              \
    auto&& sipc_b = (b);                                                                              \
    if (!(sipc_a == sipc_b)) {                                                                        \
      ::sipc_test::Fail(__FILE__, __LINE__,                                                           \
                        "CHECK_EQ(" #a ", " #b "): " + ::sipc_test::Show(sipc_a) + " != " +           \
                            ::sipc_test::Show(sipc_b));                                               \
    }                                                                                                 \
  } while (0)

#define REQUIRE(cond)                                                 \
  do {                                                                \
    if (!(cond)) {                                                    \
      ::sipc_test::Fail(__FILE__, __LINE__, "REQUIRE(" #cond ")");    \
      throw ::sipc_test::RequireFailed();                             \
    }                                                                 \
  } while (0)

#define TEST_MAIN() \
  int main(int argc, char** argv) { return ::sipc_test::RunAll(argc, argv); }
