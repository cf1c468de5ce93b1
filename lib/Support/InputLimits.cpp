//===- InputLimits.cpp - input the parser cannot take safely --------------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#include "usmoe/Support/InputLimits.h"

std::string mlir::usmoe::checkNesting(llvm::StringRef source) {
  int depth = 0;
  bool inString = false;
  for (size_t i = 0; i < source.size(); ++i) {
    char c = source[i];
    if (inString) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        inString = false;
      continue;
    }
    if (c == '"')
      inString = true;
    else if (c == '(' || c == '[' || c == '{')
      ++depth;
    else if ((c == ')' || c == ']' || c == '}') && depth > 0)
      --depth;
    if (depth > kMaxNesting)
      return "the IR nests brackets more than " + std::to_string(kMaxNesting) +
             " levels deep; usmoe does not parse it";
  }
  return "";
}
