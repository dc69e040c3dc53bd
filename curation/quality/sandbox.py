"""Recipe predicates run where they cannot touch the catalog or the disk.

Recipes travel between colleagues like code, so a predicate is parsed before use and evaluated apart:

- **Parsed** with DuckDB's own parser (``json_serialize_sql``) as ``SELECT (<predicate>) FROM sample_features``:
  exactly one SELECT statement with that one expression and nothing else (a ``;``, a second statement or a
  closed parenthesis that smuggles clauses fails here), and no subquery anywhere in the expression tree (so no
  ``read_csv`` and no other table).
- **Evaluated** on a private in-memory DuckDB holding only a copy of ``sample_features``, opened with
  ``enable_external_access=false`` (no file reads or writes, no ATTACH, no COPY, no extension install or
  load) and ``lock_configuration=true`` (no ``SET`` undoes that). The catalog connection never sees the
  predicate; what comes back is a list of sample ids per rule.
"""

from __future__ import annotations

import json

import duckdb
import pyarrow as pa

SANDBOX_CONFIG = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}
REFUSED_CLASSES = {"SUBQUERY"}  # expression classes a predicate may not contain


class PredicateError(ValueError):
    """The predicate is not a single expression over sample_features; the message says why."""


def sandbox(features: pa.Table) -> duckdb.DuckDBPyConnection:
    """A fresh in-memory connection with ``sample_features`` and no way out."""
    con = duckdb.connect(":memory:", config=SANDBOX_CONFIG)
    con.register("_features", features)
    con.execute("CREATE TABLE sample_features AS SELECT * FROM _features")
    con.unregister("_features")
    con.execute("SET lock_configuration = true")
    return con


def check_predicate(sql: str) -> None:
    """Refuse anything but one expression over ``sample_features`` (PredicateError says why)."""
    parsed = json.loads(_serialized(f"SELECT ({sql}) FROM sample_features"))
    if parsed.get("error"):
        raise PredicateError(f"not a single SQL expression: {parsed.get('error_message')}")
    statements = parsed.get("statements", [])
    if len(statements) != 1:
        raise PredicateError(f"one expression expected, the text holds {len(statements)} statements")
    node = statements[0]["node"]
    clauses = [k for k in ("where_clause", "having", "qualify", "sample") if node.get(k)]
    table = (node.get("from_table") or {}).get("table_name")
    if len(node.get("select_list", [])) != 1 or node.get("group_expressions") or clauses or table != "sample_features":
        raise PredicateError("one expression expected: the text closes the predicate and adds clauses of its own")
    if node.get("cte_map", {}).get("map") or node.get("modifiers"):
        raise PredicateError("one expression expected: the text adds a WITH, ORDER BY or LIMIT")
    found = _classes(node["select_list"][0]) & REFUSED_CLASSES
    if found:
        raise PredicateError("a subquery is not allowed: a predicate may only read this sample's features")


def _serialized(statement: str) -> str:
    """DuckDB's parse tree of ``statement`` as JSON (parsing only: nothing is bound or run)."""
    with duckdb.connect(":memory:", config=SANDBOX_CONFIG) as con:
        return con.execute("SELECT json_serialize_sql(?)", [statement]).fetchone()[0]


def _classes(tree) -> set[str]:
    """Every expression class in a serialized expression tree (iterative: a deep tree cannot overflow)."""
    found, stack = set(), [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("class"), str):
                found.add(item["class"])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found
