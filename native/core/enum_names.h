// Names of an enum's values for JS and the command line: one table per
// enum, in declaration order, next to the enum's name function. Pure C++.
#pragma once

#include <cstddef>

namespace sipc {

// The name of `value` in `names`, which lists the enum's values in
// declaration order up to `Last`, its last value: a table that misses a
// value does not compile.
template <auto Last, size_t N>
const char* NameOf(decltype(Last) value, const char* const (&names)[N]) {
  static_assert(N == static_cast<size_t>(Last) + 1, "one name per enum value");
  size_t i = static_cast<size_t>(value);
  return i < N ? names[i] : names[0];
}

}  // namespace sipc
