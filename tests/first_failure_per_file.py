"""A pytest plugin (`-p tests.first_failure_per_file`): after a test fails, the rest of its file is skipped, as `-x`
does for a whole session. Running every piece's tests on the skeletons needs one failure per file, not the minutes
of fixtures behind the later tests."""

import pytest

_failed_files: set[str] = set()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    if item.path.name in _failed_files:
        pytest.skip(f"an earlier test of {item.path.name} failed")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        _failed_files.add(item.path.name)
