//===- HostCall.cpp - calls of compiled host code
//--------------------------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// Host code compiled into a library (usmoe's Python package does that per
// router and layer) runs without MLIR and without the JIT: the caller hands
// its packed interface to usmoe_rt_host_call. A failed run-time check of
// the code (cf.assert, e.g. an input over the 32-bit limits) must end the
// call, not the caller's process, so the compiler renames the check's
// puts/abort to the functions below, and the abort jumps back here (what
// the code allocated before the check is not freed, as in the JIT).
//
//===----------------------------------------------------------------------===//

#include "usmoe/Runtime/UsmoeRuntime.h"

#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {
thread_local std::jmp_buf *checkGuard = nullptr;
thread_local std::string checkMessage;

/// Calls `packed` with failed checks jumping back; false if one failed.
/// Kept apart from usmoe_rt_host_call so that no C++ object lives in the
/// frame longjmp returns to.
bool callGuarded(void (*packed)(void **), void **args) {
  std::jmp_buf here;
  std::jmp_buf *outer = checkGuard;
  checkGuard = &here;
  if (setjmp(here) != 0) {
    checkGuard = outer;
    return false;
  }
  packed(args);
  checkGuard = outer;
  return true;
}
} // namespace

extern "C" {

int usmoe_rt_check_message(const char *message) {
  checkMessage = message ? message : "";
  return 0;
}

void usmoe_rt_check_abort(void) {
  if (checkGuard)
    std::longjmp(*checkGuard, 1);
  std::fprintf(stderr, "usmoe: a run-time check failed: %s\n",
               checkMessage.c_str());
  std::abort();
}

} // extern "C"

namespace {
/// One guarded call of host code, as a stream call on `stream` or (not
/// `streamCall`) as the code itself says: its own streams and
/// synchronizations, buffers it reads on the host in managed memory.
int hostCall(void (*packed)(void **), void **args, bool streamCall,
             void *stream, char *message, size_t size) {
  if (!packed || !args || (size && !message))
    return USMOE_RT_INVALID_ARGUMENT;
  if (size)
    message[0] = '\0';
  uint64_t failuresBefore = usmoe_rt_mgpu_failure_count();
  checkMessage.clear();
  if (streamCall)
    usmoe_rt_mgpu_begin_stream_call(stream);
  bool checksPassed = callGuarded(packed, args);
  if (streamCall)
    usmoe_rt_mgpu_end_stream_call();
  if (!checksPassed) {
    if (size)
      std::snprintf(message, size,
                    "a run-time check of the compiled code failed: %s",
                    checkMessage.c_str());
    return USMOE_RT_CHECK_FAILED;
  }
  if (usmoe_rt_mgpu_failure_count() != failuresBefore) {
    if (size) {
      char last[448] = {0};
      usmoe_rt_mgpu_last_failure(last, sizeof(last));
      std::snprintf(message, size, "the GPU function failed: %s", last);
    }
    return USMOE_RT_CUDA_ERROR;
  }
  return USMOE_RT_OK;
}
} // namespace

extern "C" {

int usmoe_rt_host_call(void (*packed)(void **), void **args, void *stream,
                       char *message, size_t size) {
  return hostCall(packed, args, /*streamCall=*/true, stream, message, size);
}

int usmoe_rt_host_call_sync(void (*packed)(void **), void **args, char *message,
                            size_t size) {
  return hostCall(packed, args, /*streamCall=*/false, nullptr, message, size);
}

void usmoe_rt_read_results(const int64_t *words, int32_t count,
                           const int32_t *ranks, const int32_t *element_bytes,
                           const uint64_t *args, int32_t num_args,
                           uint64_t *allocation, uint64_t *data,
                           int64_t *shapes) {
  for (int32_t i = 0; i < count; ++i) {
    auto allocated = static_cast<uint64_t>(words[0]);
    data[i] = static_cast<uint64_t>(words[1]) +
              static_cast<uint64_t>(words[2] * element_bytes[i]);
    for (int32_t d = 0; d < ranks[i]; ++d)
      *shapes++ = words[3 + d];
    bool owned = allocated == 0;
    for (int32_t j = 0; j < num_args && !owned; ++j)
      owned = args[j] == allocated;
    for (int32_t j = 0; j < i && !owned; ++j)
      owned = allocation[j] == allocated;
    allocation[i] = owned ? 0 : allocated;
    words += 3 + 2 * ranks[i];
  }
}

} // extern "C"
