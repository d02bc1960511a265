"""Loading, validating and saving operand / result matrices (``.npy``, ``.csv``, ``.txt``)."""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from ..config import Numerics
from ..errors import SystolixError
from ..fileio import atomic_open

__all__ = ["load_matrix", "check_operand", "check_gemm_shapes", "check_output_path",
           "save_matrix"]

TEXT_SUFFIXES = (".csv", ".txt")
#: The first bytes of every .npy file.
NPY_MAGIC = b"\x93NUMPY"


def load_matrix(path, label, ndims=(2,)):
    """Read an integer matrix (or, with ``ndims=(2, 3)``, a stack of them, ``.npy`` only);
    ``label`` (e.g. ``"A"``) names it in error messages."""
    path = Path(path)
    try:
        if path.is_dir():
            raise SystolixError(f"{label}: cannot read {path}: it is a directory")
        if not path.is_file():
            raise SystolixError(f"{label}: cannot read {path}: no such file")
    except OSError as e:
        raise SystolixError(f"{label}: cannot read {path}: {e.strerror}") from None
    try:
        if path.suffix == ".npy":
            with open(path, "rb") as f:
                if f.read(len(NPY_MAGIC)) != NPY_MAGIC:
                    # (np.load would take it for pickled data and say so)
                    raise SystolixError(f"{label}: {path} is not a .npy file (it does not "
                                        f"start with the NumPy header)")
            arr = np.load(path, allow_pickle=False)
        elif path.suffix in TEXT_SUFFIXES:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "empty input" warnings: we report it ourselves
                arr = np.loadtxt(path, delimiter="," if path.suffix == ".csv" else None,
                                 dtype=np.float64, ndmin=2)
        else:
            raise SystolixError(f"{label}: {path} has unsupported type {path.suffix!r} "
                                f"(use .npy, .csv or .txt)")
    except SystolixError:
        raise
    except (OSError, ValueError, EOFError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise SystolixError(f"{label}: {path} is not a valid matrix file ({reason})") from None
    return _as_int_matrix(arr, label, path, ndims)


def _as_int_matrix(arr, label, path, ndims=(2,)):
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf":
        raise SystolixError(f"{label}: {path} does not hold a numeric matrix")
    if arr.ndim not in ndims:
        raise SystolixError(f"{label}: {path} holds a {arr.ndim}-D array, expected "
                            + " or ".join(f"{d}-D" for d in ndims))
    if arr.size == 0:
        raise SystolixError(f"{label}: {path} is empty (shape {arr.shape})")
    if arr.dtype.kind == "b":
        raise SystolixError(f"{label}: {path} holds booleans, expected integers")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise SystolixError(f"{label}: {path} contains NaN or infinite values")
        if not np.all(arr == np.round(arr)):
            i, j = (int(x) for x in np.argwhere(arr != np.round(arr))[0])
            raise SystolixError(f"{label}: {path} has non-integer value {arr[i, j]} "
                                f"at [{i}, {j}]")
        if np.abs(arr).max() >= 2**62:
            raise SystolixError(f"{label}: {path} has values too large for any operand")
    elif arr.dtype.kind == "u" and arr.max() >= 2**63:
        raise SystolixError(f"{label}: {path} has values too large for any operand")
    return arr.astype(np.int64)


def check_operand(arr, numerics: Numerics, label):
    """Raise unless every element of ``arr`` is a valid operand for ``numerics``."""
    lo, hi = numerics.in_min, numerics.in_max
    bad = np.argwhere((arr < lo) | (arr > hi))
    if len(bad):
        i, j = (int(x) for x in bad[0])
        raise SystolixError(f"{label}[{i}, {j}] = {int(arr[i, j])} is outside the "
                            f"{numerics.operand_type} range {lo}..{hi}")


def check_gemm_shapes(a, b):
    if a.shape[1] != b.shape[0]:
        raise SystolixError(f"shape mismatch: A is {a.shape[0]}x{a.shape[1]} but B is "
                            f"{b.shape[0]}x{b.shape[1]} (A's columns must equal B's rows)")


def check_output_path(path):
    """Raise now, before any work, if ``path`` could not be written as a matrix later."""
    path = Path(path)
    if path.suffix not in (".npy",) + TEXT_SUFFIXES:
        raise SystolixError(f"output {path} has unsupported type {path.suffix!r} "
                            f"(use .npy, .csv or .txt)")
    try:
        if not path.parent.is_dir():
            raise SystolixError(f"cannot write {path}: directory {path.parent} does not exist")
        if path.is_dir():
            raise SystolixError(f"cannot write {path}: it is a directory")
        # Prove the directory is writable now rather than after a long simulation.
        fd, probe = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise SystolixError(f"cannot write {path}: {e.strerror}") from None
    return path


def save_matrix(arr, path):
    """Write ``arr`` to ``path`` (.npy, .csv or .txt) atomically: all or nothing."""
    path = check_output_path(path)
    try:
        with atomic_open(path, "wb") as f:
            if path.suffix == ".npy":
                np.save(f, arr)
            else:
                np.savetxt(f, arr, fmt="%d", delimiter="," if path.suffix == ".csv" else " ")
    except OSError as e:
        raise SystolixError(f"cannot write {path}: {e.strerror}") from None
