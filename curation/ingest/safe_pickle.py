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

MAX_OBJECTS = 20_000_000  # containers and values after expanding shared references (RefCOCOg: about 1.5M)
MAX_DEPTH = 100  # RefCOCO refs are 5 deep
_CONTAINERS = (list, tuple, dict, set, frozenset)
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


def _bounded(root: Any) -> None:
    """Refuse data that would expand past ``MAX_OBJECTS`` or nest past ``MAX_DEPTH``.

    A pickle can reference one container many times (a 197-byte "billion laughs" pickle expands to 10^9
    objects when walked); the expanded size is counted on the shared graph, once per distinct container, so
    the check costs what the pickle holds, not what it expands to. Iterative: deep data cannot overflow it.
    """
    size: dict[int, int] = {}
    stack = [(root, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        if depth > MAX_DEPTH:
            raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
        if not isinstance(node, _CONTAINERS) or (id(node) in size and not done):
            continue  # a value, or a container already counted
        children = [c for pair in node.items() for c in pair] if isinstance(node, dict) else list(node)
        if done:
            size[id(node)] = 1 + sum(size.get(id(c), 1) for c in children)
            if size[id(node)] > MAX_OBJECTS:
                raise ValueError(f"expands to more than {MAX_OBJECTS} objects (shared references)")
            continue
        stack.append((node, depth, True))
        stack.extend((c, depth + 1, False) for c in children)


def load_plain(path: str | Path) -> Any:
    """The plain data in a pickle file; ``UnsafePickle`` naming the file and what it tried, ValueError if
    unreadable or too big or deep once expanded."""
    data = Path(path).read_bytes()
    try:
        value = _PlainDataUnpickler(io.BytesIO(data), encoding="bytes").load()
        _bounded(value)
        return _text(value)
    except UnsafePickle as exc:
        raise UnsafePickle(f"{path}: {exc}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, IndexError, KeyError, TypeError, MemoryError) as exc:
        raise ValueError(f"{path}: not a readable pickle: {type(exc).__name__}: {exc}") from None
