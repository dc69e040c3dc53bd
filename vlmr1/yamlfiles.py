"""YAML files validated by pydantic, with errors that name the file, the line and the field (recipes, training
configs)."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A YAML file that cannot be used; the message names file, line and field."""


def line_of(root: yaml.Node | None, loc: tuple) -> int | None:
    """1-based line of the YAML node at pydantic's error location (the deepest node that exists)."""
    node, line = root, (root.start_mark.line + 1 if root is not None else None)
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if getattr(k, "value", None) == str(key)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            match = node.value[key]
        else:
            match = None
        if match is None:
            break
        node, line = match, match.start_mark.line + 1
    return line


def _named_key(message: str, data: dict) -> tuple:
    """A whole-model check that names a top-level key (``'key': ...``) points at that key's line."""
    return next(((k,) for k in data if isinstance(k, str) and f"'{k}'" in message), ())


def validate_options(model: type[M], data: dict, what: str, error: type[ValueError] = ValueError) -> M:
    """``model`` from command-line options: the first mistake as one line naming the option (``what`` the kind of
    setting: "scorer option", "evaluation option")."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise error(f"{what} {'.'.join(str(x) for x in err['loc'])}: {err['msg']}") from None


def load_model(path: str | Path, model: type[M], error: type[ConfigError] = ConfigError) -> M:
    path = Path(path)
    text = path.read_text()
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a mapping at the top level")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = tuple(err["loc"]) or _named_key(err["msg"], data)
            field = ".".join(str(p) for p in loc) or "(top level)"
            lines.append(f"{path}:{line_of(root, loc)}: {field}: {err['msg']}")
        raise error("\n".join(lines)) from None
