"""Tapes as files: save, load, pickle. (Being written.)"""

from .errors import TapeError


def load(path):
    raise TapeError("ft.load is not implemented yet")
