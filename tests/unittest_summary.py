"""Runs a test module's unittest cases and ends with the suite's "NAME: N passed, M failed" line,
which tests/run.sh counts. Used by the Python tests (Debian's python3)."""
import sys
import unittest


def main(name):
    module = sys.modules["__main__"]
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(
        unittest.defaultTestLoader.loadTestsFromModule(module))
    failed = len(result.failures) + len(result.errors)
    print("%s: %d passed, %d failed" % (name, result.testsRun - failed - len(result.skipped), failed))
    sys.exit(1 if failed else 0)
