//===- Fiber.h - cooperative fibers for emulated GPU threads ----*- C++ -*-===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//
//
// Every emulated GPU thread runs as a stackful fiber, so a kernel keeps its
// natural straight-line code and a barrier or a shuffle is just a switch back
// to the scheduler. On x86-64 the switch is a few instructions (callee-saved
// registers, MXCSR and the x87 control word); elsewhere, or with
// USMOE_EMU_FIBERS=ucontext, it is glibc's swapcontext (about five times
// slower: it makes a system call per switch).
//
//===----------------------------------------------------------------------===//

#ifndef USMOE_LIB_RUNTIME_EMULATOR_FIBER_H
#define USMOE_LIB_RUNTIME_EMULATOR_FIBER_H

#include <cstddef>
#include <memory>
#include <ucontext.h>

namespace usmoe::emu {

class Fiber {
public:
  using Entry = void (*)(void *);

  Fiber();
  ~Fiber();
  Fiber(const Fiber &) = delete;
  Fiber &operator=(const Fiber &) = delete;

  /// Makes the next resume() start `entry(arg)` from the top of the stack,
  /// whatever the fiber was doing (an abandoned fiber is simply restarted).
  void start(Entry entry, void *arg);
  /// Scheduler side: runs the fiber until it calls suspend().
  void resume();
  /// Fiber side: returns to the scheduler that resumed it.
  void suspend();

  /// Whether the portable (ucontext) switch is in use.
  static bool portable();
  /// The portable switch's first entry into `fiber` (internal).
  static void runMain(Fiber *fiber);

private:
  /// Where every fiber starts: tells AddressSanitizer about the new stack
  /// (builds with -fsanitize=address), then runs the entry.
  static void main(void *self);
  void enteredFiber();  ///< ASan: now on the fiber's stack
  void leavingFiber();  ///< ASan: about to switch to the scheduler
  void enteringFiber(); ///< ASan: about to switch to the fiber
  void backInScheduler();

  Entry entry = nullptr;
  void *entryArg = nullptr;
  // Used in -fsanitize=address builds only.
  [[maybe_unused]] void *fiberFakeStack = nullptr;
  [[maybe_unused]] void *schedulerFakeStack = nullptr;
  [[maybe_unused]] const void *schedulerStackBottom = nullptr;
  [[maybe_unused]] size_t schedulerStackSize = 0;
  void *stackBase = nullptr; // mapping, guard page first
  size_t mappingBytes = 0;
  void *fiberSp = nullptr;     // fast switch: the fiber's saved stack pointer
  void *schedulerSp = nullptr; // fast switch: the scheduler's
  ucontext_t fiberContext, schedulerContext;
  bool pendingStart = false; // portable switch: started at the next resume
  bool usePortable;
};

} // namespace usmoe::emu

#endif // USMOE_LIB_RUNTIME_EMULATOR_FIBER_H
