"""The chaos checker's attribution of duplicated call-result events
(tests/chaos/check.py, blame): each duplicate is put down to the fault that
most recently came before its second copy, within a window."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "chaos"))
import check  # noqa: E402


def test_a_duplicate_is_put_down_to_the_latest_fault_before_its_second_copy():
    faults = [(100.0, "worker_sigkill"), (103.0, "kafka_restart"), (120.0, "worker_sigkill")]
    dups = [[101.0, 104.5],     # second copy after the restart: the restart
            [102.9, 102.0],     # copies out of order; second at 102.9: the kill
            [121.0, 123.5],     # the second kill
            [90.0, 99.0],       # before any fault
            [130.0, 140.5]]     # the last fault is 20.5 s before it: outside the window
    assert dict(check.blame(dups, faults)) == {"kafka_restart": 1, "worker_sigkill": 2, "none": 2}


def test_no_faults_blames_none():
    assert dict(check.blame([[1.0, 2.0]], [])) == {"none": 1}
