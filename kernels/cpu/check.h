// Internal invariant checks for CPU kernels.
//
// TESSERA_KCHECK is for our own bugs only (mismatched shapes or types handed to a kernel by
// Tessera code). It prints file:line, the failed condition and a message, then aborts. Never
// use it on data that comes from outside the process (files, the network, requests): such
// data is validated at the boundary and reported with absl::Status.
#pragma once

namespace tessera::kernels::internal {

[[noreturn]] void CheckFail(const char* file, int line, const char* cond, const char* msg);

}  // namespace tessera::kernels::internal

#define TESSERA_KCHECK(cond, msg)                                                  \
  do {                                                                             \
    if (!(cond)) ::tessera::kernels::internal::CheckFail(__FILE__, __LINE__, #cond, msg); \
  } while (0)
