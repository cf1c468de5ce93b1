#!/usr/bin/env python3
"""Flags FileCheck `PREFIX-NOT` lines that come before any positive match of
their prefix in a test block (blocks split by `// -----`), in the .mlir and .test files under a
directory (Inputs/ fixture folders below it excluded).

Such a line only checks the text before the first match, so it usually
cannot fail on what it claims (put it after the match it guards, or use
FileCheck's --implicit-check-not). Exit 1 with one line per offence.
"""

import os
import re
import sys

DIRECTIVE = re.compile(r"//\s*([A-Z][A-Z0-9_]*?)(-NOT|-LABEL|-NEXT|-SAME|-DAG|-COUNT-\d+|-EMPTY)?:")
POSITIVE = (None, "-LABEL", "-NEXT", "-SAME", "-DAG", "-EMPTY")
IGNORED = {"RUN", "REQUIRES", "UNSUPPORTED", "XFAIL", "DEFINE", "REDEFINE", "ALLOW_RETRIES", "END"}


def offences(path):
    seen_positive = set()
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            if line.strip().startswith("// -----"):
                seen_positive = set()
                continue
            for match in DIRECTIVE.finditer(line):
                prefix, kind = match.group(1), match.group(2)
                if prefix in IGNORED:
                    continue
                if kind == "-NOT":
                    if prefix not in seen_positive:
                        yield f"{path}:{number}: {prefix}-NOT before any {prefix} match of its block"
                elif kind in POSITIVE or (kind or "").startswith("-COUNT"):
                    seen_positive.add(prefix)


def main(root):
    found = []
    for directory, subdirectories, files in os.walk(root):
        # Inputs/ holds fixtures, not tests (lit skips them too), unless asked for.
        subdirectories[:] = [d for d in subdirectories if d != "Inputs"]
        for name in sorted(files):
            if name.endswith((".mlir", ".test")):
                found += offences(os.path.join(directory, name))
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "test"))
