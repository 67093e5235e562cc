"""A pytest plugin of the compat runner (loaded with -p pytest_timeline): writes when each test started and
ended, one JSON line each, to the file named by DLPCTL_COMPAT_TIMELINE, so the runner can tell which of the
tunnel's denials happened during which test (a test that fails on a later assertion after a denial shows no
denial text of its own)."""

import json
import os
import time

_out = None


def pytest_configure(config):
    global _out
    path = os.environ.get("DLPCTL_COMPAT_TIMELINE")
    if path:
        _out = open(path, "a", buffering=1, encoding="utf-8")


def pytest_runtest_logstart(nodeid, location):
    if _out:
        _out.write(json.dumps({"test": nodeid, "start": time.time() * 1000}) + "\n")


def pytest_runtest_logfinish(nodeid, location):
    if _out:
        _out.write(json.dumps({"test": nodeid, "end": time.time() * 1000}) + "\n")


def pytest_unconfigure(config):
    if _out:
        _out.close()
