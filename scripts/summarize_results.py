#!/usr/bin/env python3
"""Adds up JUnit XML reports (lit, pytest) into the one closing line CI reads:
"N passed, N failed, N skipped"."""

import sys
import xml.etree.ElementTree as ET


def counts(path):
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.iter("testsuite")
    tests = failed = skipped = 0
    for s in suites:
        tests += int(s.get("tests", 0))
        failed += int(s.get("failures", 0)) + int(s.get("errors", 0))
        skipped += int(s.get("skipped", 0))
    return tests - failed - skipped, failed, skipped


def main(paths):
    total = [0, 0, 0]
    for path in paths:
        try:
            c = counts(path)
        except (OSError, ET.ParseError):
            print(f"missing or unreadable report: {path}", file=sys.stderr)
            c = (0, 1, 0)  # a suite that did not report counts as a failure
        total = [a + b for a, b in zip(total, c)]
    print(f"{total[0]} passed, {total[1]} failed, {total[2]} skipped")
    return 1 if total[1] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
