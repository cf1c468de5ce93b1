//===- Fiber.cpp - cooperative fibers for emulated GPU threads ------------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#include "Fiber.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sys/mman.h>
#include <unistd.h>

using namespace usmoe::emu;

namespace {
/// Stack of one emulated thread. Kernels need a few hundred bytes; the
/// runtime's checks format messages (snprintf), so leave room for that.
constexpr size_t kStackBytes = 128 * 1024;
} // namespace

#if defined(__x86_64__)
extern "C" void usmoe_emu_switch_stack(void **saveSp, void *loadSp);
extern "C" void usmoe_emu_fiber_trampoline();

// Saves the callee-saved registers, MXCSR and the x87 control word on the
// current stack, stores the stack pointer in *saveSp, and restores the same
// from loadSp. A fresh stack returns into the trampoline, which calls
// r12(r13) with a 16-byte aligned stack.
asm(R"(
  .text
  .globl usmoe_emu_switch_stack
  .type usmoe_emu_switch_stack,@function
usmoe_emu_switch_stack:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size usmoe_emu_switch_stack, .-usmoe_emu_switch_stack

  .globl usmoe_emu_fiber_trampoline
  .type usmoe_emu_fiber_trampoline,@function
usmoe_emu_fiber_trampoline:
  movq %r13, %rdi
  callq *%r12
  ud2
  .size usmoe_emu_fiber_trampoline, .-usmoe_emu_fiber_trampoline
)");
#endif

bool Fiber::portable() {
#if defined(__x86_64__)
  static const bool chosen = [] {
    const char *v = std::getenv("USMOE_EMU_FIBERS");
    return v && std::strcmp(v, "ucontext") == 0;
  }();
  return chosen;
#else
  return true;
#endif
}

Fiber::Fiber() : usePortable(portable()) {
  size_t page = size_t(sysconf(_SC_PAGESIZE));
  mappingBytes = kStackBytes + page;
  stackBase = mmap(nullptr, mappingBytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (stackBase == MAP_FAILED) {
    std::fprintf(stderr, "usmoe-emu: cannot map a fiber stack\n");
    std::abort();
  }
  // A stack overflow hits the guard page instead of another fiber's stack.
  mprotect(stackBase, page, PROT_NONE);
}

Fiber::~Fiber() { munmap(stackBase, mappingBytes); }

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define USMOE_EMU_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define USMOE_EMU_ASAN 1
#endif
#ifdef USMOE_EMU_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

namespace {
/// makecontext passes ints only: the fiber to start goes through here, set
/// just before the first switch into it.
thread_local Fiber *portableStarting = nullptr;
void portableTrampoline() {
  Fiber *fiber = portableStarting;
  portableStarting = nullptr;
  Fiber::runMain(fiber);
}
} // namespace

void Fiber::runMain(Fiber *fiber) { main(fiber); }

void Fiber::main(void *self) {
  auto *fiber = static_cast<Fiber *>(self);
  fiber->enteredFiber();
  fiber->entry(fiber->entryArg);
}

void Fiber::enteredFiber() {
#ifdef USMOE_EMU_ASAN
  __sanitizer_finish_switch_fiber(fiberFakeStack, &schedulerStackBottom,
                                  &schedulerStackSize);
#endif
}

void Fiber::leavingFiber() {
#ifdef USMOE_EMU_ASAN
  __sanitizer_start_switch_fiber(&fiberFakeStack, schedulerStackBottom,
                                 schedulerStackSize);
#endif
}

void Fiber::enteringFiber() {
#ifdef USMOE_EMU_ASAN
  __sanitizer_start_switch_fiber(&schedulerFakeStack,
                                 static_cast<char *>(stackBase) +
                                     (mappingBytes - kStackBytes),
                                 kStackBytes);
#endif
}

void Fiber::backInScheduler() {
#ifdef USMOE_EMU_ASAN
  __sanitizer_finish_switch_fiber(schedulerFakeStack, nullptr, nullptr);
#endif
}

void Fiber::start(Entry entryFn, void *arg) {
  entry = entryFn;
  entryArg = arg;
  fiberFakeStack = nullptr; // a fresh stack has no fake frames yet
  char *top = static_cast<char *>(stackBase) + mappingBytes;
  if (usePortable) {
    getcontext(&fiberContext);
    fiberContext.uc_stack.ss_sp =
        static_cast<char *>(stackBase) + (mappingBytes - kStackBytes);
    fiberContext.uc_stack.ss_size = kStackBytes;
    fiberContext.uc_link = nullptr;
    pendingStart = true;
    makecontext(&fiberContext, portableTrampoline, 0);
    return;
  }
#if defined(__x86_64__)
  // The frame usmoe_emu_switch_stack pops: control words, r15, r14, r13,
  // r12, rbx, rbp, return address (the trampoline), from low to high.
  auto *slots = reinterpret_cast<uint64_t *>(
      (reinterpret_cast<uintptr_t>(top) & ~uintptr_t(15)) - 64);
  uint32_t mxcsr;
  uint16_t fpucw;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fpucw));
  slots[0] = uint64_t(mxcsr) | (uint64_t(fpucw) << 32);
  slots[1] = 0;                                        // r15
  slots[2] = 0;                                        // r14
  slots[3] = reinterpret_cast<uint64_t>(this);         // r13
  slots[4] = reinterpret_cast<uint64_t>(&Fiber::main); // r12
  slots[5] = 0;                                        // rbx
  slots[6] = 0;                                        // rbp
  slots[7] = reinterpret_cast<uint64_t>(&usmoe_emu_fiber_trampoline);
  fiberSp = slots;
#else
  (void)top;
#endif
}

void Fiber::resume() {
  enteringFiber();
  if (usePortable) {
    if (pendingStart) { // first switch into a fresh context
      portableStarting = this;
      pendingStart = false;
    }
    swapcontext(&schedulerContext, &fiberContext);
  } else {
#if defined(__x86_64__)
    usmoe_emu_switch_stack(&schedulerSp, fiberSp);
#endif
  }
  backInScheduler();
}

void Fiber::suspend() {
  leavingFiber();
  if (usePortable) {
    swapcontext(&fiberContext, &schedulerContext);
  } else {
#if defined(__x86_64__)
    usmoe_emu_switch_stack(&fiberSp, schedulerSp);
#endif
  }
  enteredFiber();
}
