"""Job functions for the RQ tests (imported by the in-process and the subprocess workers)."""

import time


def ok(*args):
    return len(args)


def divide(*_):
    return 1 / 0  # ZeroDivisionError


def bad_value(*_):
    raise ValueError("bad value")


def slow(seconds):
    time.sleep(seconds)
