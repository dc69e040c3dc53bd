"""Load untrusted pickles that should hold only plain data (RefCOCO refs, D3 sentence files).

A pickle is a program: ``GLOBAL``/``STACK_GLOBAL`` fetch any callable and
``REDUCE`` calls it, so ``pickle.load`` on a downloaded file runs whatever
the file says. Plain lists, dicts, tuples, strings, numbers, booleans and
None have opcodes of their own and need no lookup; ``find_class`` here
allows only ``set``/``frozenset`` (how protocol 2 stores sets) and refuses
everything else *before* anything is called. Python 2 ``str`` values arrive
as bytes and are decoded as UTF-8 (latin-1 when that fails), keys included.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

_ALLOWED = {("builtins", "set"), ("builtins", "frozenset"), ("__builtin__", "set"), ("__builtin__", "frozenset")}


class UnsafePickle(pickle.UnpicklingError):
    """The pickle asked for something other than plain data."""


class _PlainDataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return set if name == "set" else frozenset
        raise UnsafePickle(f"refused: the pickle wants to call {module}.{name}; only plain data is allowed")

    def persistent_load(self, pid):
        raise UnsafePickle("refused: the pickle uses persistent ids; only plain data is allowed")


def _text(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value.decode("latin-1")
    if isinstance(value, dict):
        return {_text(k): _text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_text(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_text(v) for v in value)
    return value


def load_plain(path: str | Path) -> Any:
    """The plain data in a pickle file; ``UnsafePickle`` naming the file and what it tried, ValueError if
    unreadable."""
    data = Path(path).read_bytes()
    try:
        return _text(_PlainDataUnpickler(io.BytesIO(data), encoding="bytes").load())
    except UnsafePickle as exc:
        raise UnsafePickle(f"{path}: {exc}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, IndexError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a readable pickle: {type(exc).__name__}: {exc}") from None
