"""The safety layer: SQL text in, a :class:`VettedQuery` out -- or :class:`UnsafeSQLError` with a rule code.

It works on sqlglot's syntax tree, never on the text, and every layer is its own function so each can
be tested alone::

    tree = parse_single(sql, dialect)          # parse_error | empty | multiple_statements
    check_statement_kind(tree)                 # statement_kind: SELECT / WITH ... SELECT / set ops only
    check_tables(tree, tables)                 # table_not_allowed | table_function
    check_functions(tree)                      # function_not_allowed
    check_cross_joins(tree, tables)            # cross_join
    force_limit(tree, max_rows)                # never refuses: adds or caps the LIMIT

What reaches an engine is SQL *regenerated* from the checked tree (comments dropped), in the engine's
dialect, so nothing the checks did not see -- a comment hiding a statement, odd quoting -- survives.

Functions: an allow-list for the open world, a deny-list for the closed one. sqlglot parses every
function it knows into a typed node (``exp.Sum``, ``exp.DateTrunc`` ...); that set is closed and
versioned with the pinned sqlglot, so it is audited once: the few typed functions that touch files,
secrets, the session or generate unbounded rows are denied here, and a test fails when a sqlglot upgrade
adds a typed function whose name looks like I/O (``read_*``, ``*file*``, ``*env*`` ...) that nobody has
classified. A name sqlglot does *not* know becomes ``exp.Anonymous`` -- that set is open (any engine
built-in, any extension, ``getenv``, ``query_table``, ``duckdb_settings``), so an anonymous function
runs only if its name is on :data:`ALLOWED_ANONYMOUS`. Table-valued functions (anything called in a
FROM clause except ``UNNEST``) are refused outright: a cost question never needs one, and they are how
engines read files (``read_csv``, ``glob``, ``read_text``) and expose their internals.

Cross joins: a join with no condition (``CROSS JOIN``, a comma, ``ON TRUE``) between two *row-level*
sources -- dataset tables, or CTEs/subqueries that pass their rows through unaggregated -- is the
N x M product of fact tables and is refused. Joining a one-row aggregate (a total, for a share of spend)
is how the CUR Query Library computes percentages, so aggregated sides are allowed; the engine's
timeout bounds whatever remains.

This layer is the first of four (then: the forced LIMIT, a read-only locked-down engine, a timeout);
it does not rely on the others and they do not rely on it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from plinth.sql.function_lists import ALLOWED_ANONYMOUS, DENIED_FUNCTIONS
from plinth.sql.types import UnsafeSQLError, VettedQuery

__all__ = [
    "ALLOWED_ANONYMOUS",
    "DENIED_FUNCTIONS",
    "check_cross_joins",
    "check_functions",
    "check_generated_sizes",
    "check_size",
    "check_statement_kind",
    "check_tables",
    "force_limit",
    "parse_single",
    "vet",
]

# sqlglot warns when it falls back to an opaque Command (LOAD, CALL ...); this layer refuses those anyway.
logging.getLogger("sqlglot").setLevel(logging.ERROR)

MAX_SQL_CHARS = 20_000  # a query longer than this is no question's answer
MAX_SQL_NESTING = 32  # parentheses deep; the parser recurses per level (50 exhausts Python's stack)
MAX_GENERATED_CHARS = 10_000  # repeat()/lpad()/rpad() sizes: DuckDB allocates them outside memory_limit
_QUOTED = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")

_WRITE_NODES: tuple[type[exp.Expr], ...] = (
    exp.Insert,
    exp.Update,
    exp.Delete,
    exp.Merge,
    exp.Create,
    exp.Drop,
    exp.Alter,
    exp.TruncateTable,
    exp.Copy,
    exp.Command,
    exp.Set,
    exp.Pragma,
    exp.Attach,
    exp.Detach,
    exp.Use,
    exp.Install,
    exp.Into,
    exp.Lock,
    exp.Describe,
    exp.Summarize,
    exp.Show,
)


def vet(
    sql: str,
    *,
    read_dialect: str,
    write_dialect: str,
    tables: Collection[str],
    max_rows: int = 1000,
    rewrite: Callable[[exp.Expr], exp.Expr] | None = None,
) -> VettedQuery:
    """Check ``sql`` (in ``read_dialect``) layer by layer; return it in ``write_dialect`` with a LIMIT.

    ``tables`` are the only table names it may read (CTE names are allowed where they are in scope).
    Raises :class:`UnsafeSQLError` whose ``rule`` names the layer that refused. ``rewrite`` (e.g. the
    Athena fixes of :mod:`plinth.sql.dialects`) transforms the parsed tree *before* the checks, so
    they judge exactly what will run.

    >>> vet("SELECT 1 AS x", read_dialect="duckdb", write_dialect="duckdb", tables=[]).sql
    'SELECT 1 AS x LIMIT 1001'
    """
    assert max_rows > 0, "max_rows must be positive"
    check_size(sql)
    try:
        tree = parse_single(sql, read_dialect)
        if rewrite is not None:
            tree = rewrite(tree)
        check_statement_kind(tree)
        used = check_tables(tree, tables)
        check_functions(tree)
        check_generated_sizes(tree)
        check_cross_joins(tree, tables)
        limited = force_limit(tree, max_rows)
        out = limited.sql(dialect=write_dialect, comments=False)
    except RecursionError as exc:  # deeper than the nesting check could see (e.g. long operator chains)
        raise UnsafeSQLError("the query is nested too deeply to check", "too_complex") from exc
    except SqlglotError as exc:
        raise UnsafeSQLError(
            f"cannot write this query in the {write_dialect} dialect: {exc}", "parse_error"
        ) from exc
    return VettedQuery(out, sql, write_dialect, tuple(sorted(used)), max_rows)


def check_size(sql: str) -> None:
    """Refuse SQL longer than :data:`MAX_SQL_CHARS` or nested deeper than :data:`MAX_SQL_NESTING`
    parentheses (quoted text does not count), before the recursive parser sees it."""
    if len(sql) > MAX_SQL_CHARS:
        raise UnsafeSQLError(f"the SQL is longer than {MAX_SQL_CHARS} characters", "too_long")
    depth = deepest = 0
    for char in _QUOTED.sub("", sql):
        if char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif char == ")":
            depth -= 1
    if deepest > MAX_SQL_NESTING:
        raise UnsafeSQLError(
            f"the SQL nests parentheses {deepest} deep; at most {MAX_SQL_NESTING} are allowed", "too_complex"
        )


def check_generated_sizes(tree: exp.Expr) -> None:
    """``repeat``/``lpad``/``rpad`` only with a literal size up to :data:`MAX_GENERATED_CHARS`: DuckDB
    builds such strings outside its ``memory_limit``, so ``repeat('x', 2000000000)`` would take gigabytes."""
    for func in tree.find_all(exp.Repeat, exp.Pad):
        size = func.args.get("times" if isinstance(func, exp.Repeat) else "expression")
        digits = str(size.this) if isinstance(size, exp.Literal) and not size.is_string else ""
        if not digits.isdigit() or int(digits) > MAX_GENERATED_CHARS:
            raise UnsafeSQLError(
                f"{_func_name(func)}() needs a literal size of at most {MAX_GENERATED_CHARS}",
                "result_too_large",
            )


def parse_single(sql: str, dialect: str) -> exp.Expr:
    """Exactly one statement, parsed strictly; empty ones (a trailing ``;``, or ``; -- comment``, as
    the CUR Query Library ends some files) are ignored."""
    try:
        parsed = sqlglot.parse(sql, read=dialect)
        statements = [s for s in parsed if s is not None and not isinstance(s, exp.Semicolon)]
    except SqlglotError as exc:
        raise UnsafeSQLError(
            f"the SQL does not parse as {dialect}: {_first_line(exc)}", "parse_error"
        ) from exc
    if not statements:
        raise UnsafeSQLError("there is no SQL statement to run", "empty")
    if len(statements) > 1:
        raise UnsafeSQLError(
            f"exactly one statement is allowed, this has {len(statements)}", "multiple_statements"
        )
    return statements[0]


def check_statement_kind(tree: exp.Expr) -> None:
    """Only a query (SELECT, WITH ... SELECT, UNION/INTERSECT/EXCEPT), with no write anywhere inside:
    PostgreSQL runs ``WITH d AS (DELETE ... RETURNING *) SELECT``, and ``SELECT ... INTO`` creates a
    table, so the whole tree is searched, not just its root."""
    if not isinstance(tree, exp.Query):
        kind = str(tree.this).upper() if isinstance(tree, exp.Command) else tree.key.upper()
        kind = kind if isinstance(tree, _WRITE_NODES) else "this statement"
        raise UnsafeSQLError(
            f"only read-only SELECT queries are allowed, not {kind}: this data cannot be modified here",
            "statement_kind",
        )
    for node in tree.find_all(*_WRITE_NODES):
        raise UnsafeSQLError(
            f"only read-only SELECT queries are allowed; this one contains {node.key.upper()}",
            "statement_kind",
        )


def check_tables(tree: exp.Expr, tables: Collection[str]) -> set[str]:
    """Every table read is a dataset table, or a CTE visible at that point; returns the dataset tables.

    Names compare case-insensitively (as DuckDB, Spark and Athena do). Qualified names
    (``information_schema.tables``, ``other_db.cur``) are refused: a dataset table has a bare name. A
    CTE hides a dataset table only after it is defined -- ``WITH a AS (SELECT * FROM b), b AS (...)``
    reads the *real* ``b`` in DuckDB -- so visibility follows definition order.
    """
    allowed = {t.casefold() for t in tables}
    used: set[str] = set()
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            name = table.this.sql() if table.this else "?"
            raise UnsafeSQLError(
                f"table functions are not allowed ({_func_name(table.this) or name}): "
                "query the dataset's tables by name",
                "table_function",
            )
        name = table.name.casefold()
        if table.args.get("db") or table.args.get("catalog"):
            raise UnsafeSQLError(
                f"table {table.sql()!r} is not allowed: use a bare table name from this dataset "
                f"({_listing(allowed)})",
                "table_not_allowed",
            )
        if name in _visible_ctes(table):
            continue  # a CTE defined in scope, checked where it is defined
        if name not in allowed:
            raise UnsafeSQLError(
                f"table {table.name!r} is not in this dataset; the tables are: {_listing(allowed)}",
                "table_not_allowed",
            )
        used.add(name)
    return used


def check_functions(tree: exp.Expr) -> None:
    """Typed functions run unless denied; anonymous ones only if allow-listed (see module docstring)."""
    for func in tree.find_all(exp.Func):
        if isinstance(func, DENIED_FUNCTIONS):
            raise UnsafeSQLError(
                f"function {_func_name(func)} is not allowed (it reads files, the session or generates "
                "unbounded rows)",
                "function_not_allowed",
            )
        if isinstance(func, exp.Anonymous | exp.AnonymousAggFunc):
            name = _func_name(func).casefold()
            if name not in ALLOWED_ANONYMOUS:
                raise UnsafeSQLError(
                    f"function {name}() is not on the allow-list of functions for cost queries",
                    "function_not_allowed",
                )


def check_cross_joins(tree: exp.Expr, tables: Collection[str]) -> None:
    """Refuse a condition-less join whose both sides are row-level (see module docstring)."""
    allowed = {t.casefold() for t in tables}
    for select in tree.find_all(exp.Select):
        source = select.args.get("from_")
        if source is None:
            continue
        row_level = _is_row_level(source.this, allowed)
        for join in select.args.get("joins") or []:
            right = _is_row_level(join.this, allowed)
            if row_level and right and _unconditioned(join, select):
                raise UnsafeSQLError(
                    f"a join without a condition between {source.this.sql()} and {join.this.sql()} "
                    "multiplies every row by every row; add ON ... or aggregate one side first",
                    "cross_join",
                )
            row_level = row_level or right


def force_limit(tree: exp.Expr, max_rows: int) -> exp.Expr:
    """The query with ``LIMIT max_rows + 1`` (the extra row tells the engine the result was cut); a
    smaller literal LIMIT the caller wrote is kept, a larger or computed one is replaced."""
    assert isinstance(tree, exp.Query)
    current = tree.args.get("limit")
    if current is not None:
        expression = current.expression
        if isinstance(expression, exp.Literal) and expression.is_int and int(expression.this) <= max_rows:
            return tree
    return tree.limit(max_rows + 1, copy=True)


# --- helpers --------------------------------------------------------------------------------------


def _visible_ctes(table: exp.Table) -> dict[str, exp.CTE]:
    """CTEs in scope at ``table`` by name: all of each enclosing WITH, but inside a CTE body only the
    ones defined before it (and itself, for WITH RECURSIVE). The innermost definition wins."""
    found: dict[str, exp.CTE] = {}
    child: exp.Expr = table
    parent = table.parent
    while parent is not None:
        if isinstance(parent, exp.With):  # inside a CTE body: only the earlier CTEs
            ctes = list(parent.expressions)
            index = ctes.index(child) if child in ctes else len(ctes)
            visible = ctes[: index + 1] if parent.args.get("recursive") else ctes[:index]
        elif isinstance(parent, exp.Query) and parent.args.get("with_") is not None:
            visible = [] if child is parent.args["with_"] else list(parent.args["with_"].expressions)
        else:
            visible = []
        for cte in visible:
            found.setdefault(cte.alias_or_name.casefold(), cte)
        child, parent = parent, parent.parent
    return found


def _is_row_level(source: exp.Expr, allowed: set[str], depth: int = 0) -> bool:
    """Does ``source`` yield one row per row of some dataset table (no aggregation in between)?"""
    if depth > 32:  # a recursive CTE feeding itself: assume the worst
        return True
    if isinstance(source, exp.Table) and isinstance(source.this, exp.Identifier):
        cte = _visible_ctes(source).get(source.name.casefold())
        if cte is not None:
            return _is_row_level(cte.this, allowed, depth + 1)
        return source.name.casefold() in allowed
    if isinstance(source, exp.Subquery):
        return _is_row_level(source.this, allowed, depth + 1)
    if isinstance(source, exp.SetOperation):
        return _is_row_level(source.left, allowed, depth + 1) or _is_row_level(
            source.right, allowed, depth + 1
        )
    if isinstance(source, exp.Select):
        if source.args.get("group") or _aggregates_only(source):
            return False
        limit = source.args.get("limit")
        if limit is not None and isinstance(limit.expression, exp.Literal):
            return False
        parts = [source.args["from_"].this] if source.args.get("from_") else []
        parts += [j.this for j in source.args.get("joins") or []]
        return any(_is_row_level(p, allowed, depth + 1) for p in parts)
    return False  # UNNEST, VALUES, lateral: bounded by the row they expand


def _aggregates_only(select: exp.Select) -> bool:
    """SELECT SUM(x) FROM t without GROUP BY: one row."""
    return bool(select.expressions) and all(
        e.find(exp.AggFunc) is not None and e.find(exp.Window) is None for e in select.expressions
    )


def _unconditioned(join: exp.Join, select: exp.Select) -> bool:
    """No ON/USING (or ``ON TRUE``), and no WHERE equality linking the joined source to another."""
    on = join.args.get("on")
    if join.args.get("using") or (on is not None and on != exp.true()):
        return False
    alias = join.this.alias_or_name
    where = select.args.get("where")
    for eq in where.find_all(exp.EQ) if where else []:
        sides = [{c.table for c in side.find_all(exp.Column)} for side in (eq.left, eq.right)]
        if any(alias in s for s in sides) and sides[0] != sides[1] and all(sides):
            return False
    return True


def _func_name(func: exp.Expr | None) -> str:
    if isinstance(func, exp.Anonymous | exp.AnonymousAggFunc):
        return str(func.name)
    if isinstance(func, exp.Func):
        return func.sql_name().lower()
    return ""


def _listing(names: Collection[str]) -> str:
    return ", ".join(sorted(names)) or "(none)"


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
