//===- CostReport.cpp - the usmoe-gpu-cost-report pass
//---------------------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#include "KernelTable.h"
#include "usmoe/Conversion/MoeToGPU/MoeToGPU.h"
#include "usmoe/Dialect/Moe/IR/MoeOps.h"
#include "usmoe/Support/ShapeExpr.h"

#include "llvm/ADT/SetVector.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>

namespace mlir::usmoe {
#define GEN_PASS_DEF_USMOEGPUCOSTREPORTPASS
#include "usmoe/Conversion/Passes.h.inc"
} // namespace mlir::usmoe

using namespace mlir;
using namespace mlir::usmoe;

namespace {

/// "B=1,T=16384" -> symbols; false (and `error`) on malformed text.
bool parseShape(StringRef text, llvm::StringMap<int64_t> &symbols,
                std::string &error) {
  SmallVector<StringRef> items;
  text.split(items, ',', -1, /*KeepEmpty=*/false);
  for (StringRef item : items) {
    auto [name, value] = item.split('=');
    int64_t v = 0;
    name = name.trim();
    if (name.empty() || value.trim().getAsInteger(10, v) || v < 0) {
      error = ("'" + item + "' is not NAME=<non-negative integer>").str();
      return false;
    }
    symbols[name] = v;
  }
  return true;
}

/// One kernel's evaluated cost.
struct Row {
  std::string name;
  int64_t launches = 0, grid = 0, block = 0, read = 0, written = 0, flops = 0,
          tail = 0, instructions = 0;
  std::optional<int64_t> floor;
  double micros = 0;
};

struct UsmoeGpuCostReportPass
    : usmoe::impl::UsmoeGpuCostReportPassBase<UsmoeGpuCostReportPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto table = module->getAttrOfType<DictionaryAttr>(kKernelTableAttr);
    if (!table)
      return; // no GPU kernels: nothing to report
    if (failed(verifyKernelTable(module)))
      return signalPassFailure();
    llvm::StringMap<int64_t> given;
    std::string error;
    if (!parseShape(shape, given, error)) {
      module.emitError() << "usmoe-gpu-cost-report: shape: " << error;
      return signalPassFailure();
    }
    if (bandwidthGBs <= 0 || sms < 1 || launchMicros < 0 || tensorTflops <= 0 ||
        teraInstructions <= 0) {
      module.emitError() << "usmoe-gpu-cost-report: bandwidth-gbs, sms, "
                            "tensor-tflops and tera-instructions must be "
                            "positive, launch-us non-negative";
      return signalPassFailure();
    }

    // Kernels in the order the host code first launches them.
    llvm::SetVector<StringRef> order;
    module.walk([&](gpu::LaunchFuncOp launch) {
      order.insert(launch.getKernelName().getValue());
    });
    SmallVector<Row> rows;
    for (StringRef name : order) {
      auto kernel = table.getAs<moe::KernelAttr>(name);
      if (!kernel)
        continue;
      FailureOr<Row> row = evaluate(name, kernel, given);
      if (failed(row))
        return signalPassFailure();
      rows.push_back(*row);
    }
    print(rows);
  }

  FailureOr<Row> evaluate(StringRef name, moe::KernelAttr kernel,
                          const llvm::StringMap<int64_t> &given) {
    llvm::StringMap<int64_t> symbols(given);
    // E, K, D and F default to what the kernel was built for.
    for (auto [key, symbol] :
         {std::pair{"experts", "E"}, {"k", "K"}, {"hidden", "D"}, {"ffn", "F"}})
      if (auto v = kernel.getInfo().getAs<IntegerAttr>(key))
        symbols.try_emplace(symbol, v.getInt());
    Row row;
    row.name = name.str();
    llvm::StringMap<StringRef> expressions;
    for (auto [key, text] : kernel.getExpressions())
      expressions[key] = text;
    auto value = [&](StringRef key) -> FailureOr<int64_t> {
      StringRef text = expressions.lookup(key);
      if (text.empty())
        return int64_t(0);
      std::string error;
      std::optional<int64_t> v = evaluateShapeExpr(text, symbols, error);
      if (!v) {
        getOperation().emitError()
            << "usmoe-gpu-cost-report: " << name << " " << key << " = \""
            << text << "\": " << error << " (give it in shape=...)";
        return failure();
      }
      return *v;
    };
    for (auto [key, field] : {std::pair{"launches", &row.launches},
                              {"grid", &row.grid},
                              {"bytes_read", &row.read},
                              {"bytes_written", &row.written},
                              {"flops", &row.flops},
                              {"tail_bytes", &row.tail},
                              {"instructions", &row.instructions}}) {
      FailureOr<int64_t> v = value(key);
      if (failed(v))
        return failure();
      *field = *v;
    }
    if (kernel.getFloorBytes()) {
      FailureOr<int64_t> v = value("floor_bytes");
      if (failed(v))
        return failure();
      row.floor = *v;
    }
    row.block = kernel.getBlock().asArrayRef()[0];
    if (row.launches > 0) {
      double share =
          std::min(1.0, double(row.grid) / double(static_cast<int64_t>(sms)));
      share = std::max(share, 1e-9);
      double bytesPerMicro = bandwidthGBs * 1e3 * share;
      double flopsPerMicro = tensorTflops * 1e6 * share;
      double instructionsPerMicro = teraInstructions * 1e6 * share;
      // The tail: one block alone, at one SM's share of the bandwidth.
      double oneSm = bandwidthGBs * 1e3 / double(static_cast<int64_t>(sms));
      row.micros =
          row.launches * launchMicros +
          std::max({double(row.read + row.written - row.tail) / bytesPerMicro,
                    double(row.flops) / flopsPerMicro,
                    double(row.instructions) / instructionsPerMicro}) +
          double(row.tail) / oneSm;
    }
    return row;
  }

  void print(ArrayRef<Row> rows) {
    llvm::raw_ostream &os = llvm::outs();
    os << "usmoe GPU cost model (" << shape << "; "
       << llvm::format("%.0f", double(bandwidthGBs)) << " GB/s, "
       << static_cast<int64_t>(sms) << " SMs, "
       << llvm::format("%.1f", double(launchMicros)) << " us per launch)\n";
    os << llvm::format("%-36s %8s %9s %6s %11s %11s %9s %9s %10s\n", "kernel",
                       "launches", "grid", "block", "MB read", "MB written",
                       "GFLOP", "G instr", "est. us");
    int64_t launches = 0, read = 0, written = 0, floor = 0, flops = 0,
            instructions = 0;
    double micros = 0;
    for (const Row &r : rows) {
      os << llvm::format(
          "%-36s %8lld %9lld %6lld %11.3f %11.3f %9.3f %9.3f %10.2f\n",
          r.name.c_str(), (long long)r.launches, (long long)r.grid,
          (long long)r.block, r.read / 1e6, r.written / 1e6, r.flops / 1e9,
          r.instructions / 1e9, r.micros);
      if (r.launches > 0) {
        launches += r.launches;
        read += r.read;
        written += r.written;
        flops += r.flops;
        instructions += r.instructions;
        micros += r.micros;
      }
      floor += r.floor.value_or(0);
    }
    os << llvm::format("%-36s %8lld %9s %6s %11.3f %11.3f %9.3f %9.3f %10.2f\n",
                       "total", (long long)launches, "", "", read / 1e6,
                       written / 1e6, flops / 1e9, instructions / 1e9, micros);
    double floorMicros = floor / (bandwidthGBs * 1e3);
    if (flops > 0) {
      // Arithmetic-bound ops: the floor is the larger of the two.
      double computeMicros = flops / (tensorTflops * 1e6);
      os << llvm::format("compute floor (%.0f tensor TFLOPS): %.3f GFLOP = "
                         "%.3g us\n",
                         double(tensorTflops), flops / 1e9, computeMicros);
      floorMicros = std::max(floorMicros, computeMicros);
    }
    os << llvm::format("HBM floor (operands read once, results written once): "
                       "%.3f MB = %.3g us; estimate / floor = %.3g\n",
                       floor / 1e6, floor / (bandwidthGBs * 1e3),
                       floorMicros > 0 ? micros / floorMicros : 0.0);
  }
};

} // namespace
