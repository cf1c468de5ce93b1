//===- ShapeExpr.cpp - integer expressions over a call's shape ------------===//
//
// Part of the usmoe project, under the Apache License v2.0 with LLVM
// Exceptions.
//
//===----------------------------------------------------------------------===//

#include "usmoe/Support/ShapeExpr.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CheckedArithmetic.h"
#include "llvm/Support/MathExtras.h"

using namespace mlir;
using llvm::StringRef;

namespace {

/// Recursive descent over the text; the first error wins.
class Parser {
public:
  Parser(StringRef text, const llvm::StringMap<int64_t> &symbols)
      : rest(text), symbols(symbols) {}

  std::optional<int64_t> parse(std::string &errorOut) {
    int64_t value = sum();
    skipSpaces();
    if (error.empty() && !rest.empty())
      fail("unexpected '" + rest.str() + "'");
    if (!error.empty()) {
      errorOut = error;
      return std::nullopt;
    }
    return value;
  }

private:
  void fail(const std::string &message) {
    if (error.empty())
      error = message;
  }
  void skipSpaces() { rest = rest.ltrim(); }
  bool consume(char c) {
    skipSpaces();
    if (!rest.starts_with(std::string(1, c)))
      return false;
    rest = rest.drop_front();
    return true;
  }
  int64_t checked(std::optional<int64_t> v) {
    if (!v) {
      fail("overflow");
      return 0;
    }
    return *v;
  }

  int64_t sum() {
    int64_t value = product();
    while (error.empty()) {
      if (consume('+'))
        value = checked(llvm::checkedAdd(value, product()));
      else if (consume('-'))
        value = checked(llvm::checkedSub(value, product()));
      else
        break;
    }
    return value;
  }

  int64_t product() {
    int64_t value = atom();
    while (error.empty() && consume('*'))
      value = checked(llvm::checkedMul(value, atom()));
    return value;
  }

  int64_t atom() {
    skipSpaces();
    if (consume('(')) {
      int64_t value = sum();
      if (!consume(')'))
        fail("expected ')'");
      return value;
    }
    size_t digits = 0;
    while (digits < rest.size() && llvm::isDigit(rest[digits]))
      ++digits;
    if (digits) {
      int64_t value = 0;
      if (rest.take_front(digits).getAsInteger(10, value))
        fail("number too large");
      rest = rest.drop_front(digits);
      return value;
    }
    size_t length = 0;
    while (length < rest.size() &&
           (llvm::isAlnum(rest[length]) || rest[length] == '_'))
      ++length;
    if (!length) {
      fail(rest.empty() ? "unexpected end" : "unexpected '" + rest.str() + "'");
      return 0;
    }
    StringRef name = rest.take_front(length);
    rest = rest.drop_front(length);
    if (consume('('))
      return call(name);
    auto it = symbols.find(name);
    if (it == symbols.end()) {
      fail("no value for '" + name.str() + "'");
      return 0;
    }
    return it->second;
  }

  int64_t call(StringRef name) {
    int64_t a = sum();
    if (!consume(','))
      fail("expected ',' in " + name.str() + "(...)");
    int64_t b = sum();
    if (!consume(')'))
      fail("expected ')' after " + name.str() + "(...)");
    if (!error.empty())
      return 0;
    if (name == "ceildiv") {
      if (b <= 0) {
        fail("ceildiv by " + std::to_string(b));
        return 0;
      }
      return a / b + (a % b > 0 ? 1 : 0);
    }
    if (name == "min")
      return std::min(a, b);
    if (name == "max")
      return std::max(a, b);
    if (name == "gt")
      return a > b ? 1 : 0;
    fail("unknown function '" + name.str() + "'");
    return 0;
  }

  StringRef rest;
  const llvm::StringMap<int64_t> &symbols;
  std::string error;
};

} // namespace

std::optional<int64_t>
mlir::usmoe::evaluateShapeExpr(StringRef text,
                               const llvm::StringMap<int64_t> &symbols,
                               std::string &error) {
  return Parser(text, symbols).parse(error);
}

bool mlir::usmoe::isShapeExpr(StringRef text, std::string &error) {
  // Bind every name to 1: what matters is that the text parses.
  llvm::StringMap<int64_t> symbols;
  for (size_t i = 0; i < text.size();) {
    if (!llvm::isAlpha(text[i]) && text[i] != '_') {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < text.size() && (llvm::isAlnum(text[j]) || text[j] == '_'))
      ++j;
    symbols[text.slice(i, j)] = 1;
    i = j;
  }
  return evaluateShapeExpr(text, symbols, error).has_value();
}
