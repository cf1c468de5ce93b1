//===- usmoe-runtime-info.cpp - what the CUDA runtime sees ----------------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// Prints the device the usmoe runtime would use, or why there is none (exit
// code 2): the quick check that a machine can run usmoe's GPU kernels.
//
//===----------------------------------------------------------------------===//

#include "usmoe/Runtime/UsmoeRuntime.h"

#include <cstdio>

int main() {
  if (usmoe_rt_init() != USMOE_RT_OK) {
    std::fprintf(stderr, "usmoe-runtime-info: %s\n", usmoe_rt_last_error());
    return 2;
  }
  int count = 0, major = 0, minor = 0;
  char name[256] = {0};
  if (usmoe_rt_device_count(&count) ||
      usmoe_rt_device_info(name, sizeof(name), &major, &minor)) {
    std::fprintf(stderr, "usmoe-runtime-info: %s\n", usmoe_rt_last_error());
    return 2;
  }
  std::printf("devices: %d\ndevice 0: %s (sm_%d%d)\n", count, name, major,
              minor);
  return 0;
}
