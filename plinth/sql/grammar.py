"""A grammar for the ask loop's reply: one read-only SELECT over the dataset's own tables and columns.

:func:`sql_grammar` writes a Lark grammar (for llguidance, :class:`~plinth.llm.grammar.GrammarSpec`)
from a catalog's schema. Under it the model can only write the reply shape the prompts ask for -- one
```` ```sql ```` block holding one query -- and inside it:

- ``[WITH name AS (...)] SELECT [DISTINCT] items FROM ... [WHERE] [GROUP BY] [HAVING] [ORDER BY]
  [LIMIT]``; items with ``AS`` aliases; ``[LEFT|INNER] JOIN ... ON``; subqueries in FROM, IN and
  comparisons; one CTE, named from :data:`CTE_NAMES`; no second statement, no DDL/DML, no comment;
- table and column names drawn from the schema (quoted when they need it), so a misspelt name cannot
  be generated; a table alias or qualifier is short (1-3 letters: ``c.line_item_product_code``);
- aggregates (``SUM AVG MIN MAX COUNT``, ``COUNT(DISTINCT ...)``, ``COUNT(*)``, ``FILTER (WHERE ...)``),
  the scalar functions of :data:`FUNCTIONS` (every one allowed by the safety layer; none reads a file),
  ``CAST``, ``CASE``, arithmetic, comparisons, ``AND OR NOT IN BETWEEN LIKE IS NULL``, ``DATE '...'``
  and ``INTERVAL`` literals.

Names the grammar cannot check: an ``ORDER BY``/``HAVING`` may name an output alias, and a query over a
CTE or a subquery names that query's output columns; those are free identifiers, left to the engine's
binder (and the repair loop). Everything the grammar admits still goes through the safety layer.

Keywords are upper case, whitespace is one space or a newline (with up to 4 spaces of indent), numbers
and strings are bounded: a model cannot pad a reply forever inside the grammar. ::

    spec = reply_grammar(catalog.schema, "duckdb")  # GrammarSpec.ebnf(sql_grammar(catalog.schema))
    await chat.chat(messages, ChatOptions(max_tokens=512, response_format=spec))

Written for DuckDB (the functions are DuckDB's; most exist in the other engines); another dialect gets
the same grammar with its own identifier quote.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plinth.llm.grammar import GrammarSpec

__all__ = ["AGGREGATES", "CTE_NAMES", "FUNCTIONS", "reply_grammar", "sql_grammar"]

AGGREGATES = ("SUM", "AVG", "MIN", "MAX", "COUNT")
FUNCTIONS = (
    "date_trunc", "date_part", "strftime", "round", "coalesce", "abs", "nullif", "greatest", "least",
    "lower", "upper", "length", "concat", "substr", "trim", "year", "month", "day", "ceil", "floor",
)  # fmt: skip
TYPES = ("DOUBLE", "INTEGER", "BIGINT", "VARCHAR", "DATE", "TIMESTAMP", "DECIMAL(18, 2)")
CTE_NAMES = ("d", "t", "x", "base", "daily", "monthly", "totals", "costs", "cte", "sub")
UNITS = ("DAY", "DAYS", "MONTH", "MONTHS", "YEAR", "YEARS", "WEEK", "WEEKS", "HOUR", "HOURS")
QUOTES = {"spark": "`"}  # identifier quote by dialect; the others use '"'
_BARE = re.compile(r"^[a-z_][a-z0-9_]*$")
_RESERVED_WORDS = """all and any as asc between by case cast desc distinct else end from group having in is
    join left like limit not null on or order select then union when where with"""
_RESERVED = frozenset(_RESERVED_WORDS.split())  # noqa: SIM905 -- a word list reads better as text

# Two expression "worlds": `b` reads the schema's columns (a query FROM dataset tables), `d` reads the
# output columns of a CTE or subquery (free identifiers). The rules are the same text with the suffix.
_EXPRESSIONS = """
head_{w}: "SELECT" _S ("DISTINCT" _S)? items_{w} _S "FROM" _S
tail_{w}: (_S where_{w})? (_S group_{w})? (_S having_{w})? (_S order_{w})? (_S limit)?
items_{w}: "*" | item_{w} (_C item_{w})*
item_{w}: expr_{w} (_S "AS" _S ALIAS)?
where_{w}: "WHERE" _S expr_{w}
group_{w}: "GROUP BY" _S group_key_{w} (_C group_key_{w})*
group_key_{w}: INT | expr_{w}
having_{w}: "HAVING" _S expr_{w}
order_{w}: "ORDER BY" _S order_key_{w} (_C order_key_{w})*
order_key_{w}: (INT | NAME | expr_{w}) (_S ("ASC" | "DESC"))? (_S "NULLS" _S ("FIRST" | "LAST"))?
expr_{w}: and_{w} (_S "OR" _S and_{w})*
and_{w}: not_{w} (_S "AND" _S not_{w})*
not_{w}: ("NOT" _S)? predicate_{w}
predicate_{w}: sum_{w} (_S? CMP _S? sum_{w})?
    | sum_{w} _S "IS" _S ("NOT" _S)? "NULL"
    | sum_{w} _S ("NOT" _S)? "IN" _S? "(" _S? (query | sum_{w} (_C sum_{w})*) _S? ")"
    | sum_{w} _S ("NOT" _S)? "BETWEEN" _S sum_{w} _S "AND" _S sum_{w}
    | sum_{w} _S ("NOT" _S)? ("LIKE" | "ILIKE") _S sum_{w}
sum_{w}: product_{w} (_S? ("+" | "-" | "||") _S? product_{w})*
product_{w}: unary_{w} (_S? ("*" | "/" | "%") _S? unary_{w})*
unary_{w}: "-"? atom_{w}
atom_{w}: ref_{w} | literal | call_{w} | aggregate_{w} | case_{w} | cast_{w}
    | "(" _S? expr_{w} _S? ")" | "(" _S? query _S? ")"
call_{w}: FUNC _S? expr_{w} (_C expr_{w})* _S? ")"
aggregate_{w}: AGG _S? ("*" | ("DISTINCT" _S)? expr_{w}) _S? ")" filter_{w}?
filter_{w}: _S "FILTER" _S? "(" "WHERE" _S expr_{w} ")"
case_{w}: "CASE" (_S "WHEN" _S expr_{w} _S "THEN" _S expr_{w})+ (_S "ELSE" _S expr_{w})? _S "END"
cast_{w}: "CAST(" _S? expr_{w} _S "AS" _S TYPE _S? ")" | "EXTRACT(" UNIT _S "FROM" _S expr_{w} ")"
"""

_TOP = """
start: "```sql\\n" query ";"? "\\n```"
query: select_b | select_sub | "WITH" _S with_query
inner: select_b | select_sub
select_b: head_b source_b (_S join_b)* tail_b
select_sub: head_d "(" _S? inner _S? ")" ((_S "AS")? _S SHORT)? tail_d
source_b: table ((_S "AS")? _S SHORT)?
join_b: ("LEFT" _S | "INNER" _S)? "JOIN" _S source_b _S "ON" _S expr_b
ref_b: QUALIFIER? column
ref_d: QUALIFIER? NAME
literal: NUMBER | STRING | "NULL" | "TRUE" | "FALSE" | ("DATE" | "TIMESTAMP") _S STRING
    | "INTERVAL" _S (STRING | INT _S UNIT)
limit: "LIMIT" _S INT
_S: / |\\n {0,4}/
_C: /,( |\\n {0,4})?/
CMP: "=" | "<>" | "!=" | "<" | "<=" | ">" | ">="
INT: /[0-9]{1,9}/
NUMBER: /[0-9]{1,12}(\\.[0-9]{1,6})?/
STRING: /'[^'\\n]{0,80}'/
ALIAS: /[a-z_][a-z0-9_]{0,30}/
SHORT: /[a-z][a-z0-9]{0,2}/
"""


def sql_grammar(schema: Mapping[str, Sequence[Any]], quote: str = '"') -> str:
    """The Lark grammar of one ```` ```sql ```` block holding one SELECT over ``schema`` (table ->
    columns, each a :class:`~plinth.sql.catalog.Column` or a name); ``quote`` quotes odd names."""
    tables = sorted(schema)
    columns = sorted({getattr(c, "name", c) for cols in schema.values() for c in cols})
    assert tables and columns, "a grammar needs at least one table and one column"
    qualifiers = [f"{_name(t, quote)}." for t in tables]
    return "\n".join([
        _TOP,
        _ctes(),
        _EXPRESSIONS.format(w="b"),
        _EXPRESSIONS.format(w="d"),
        f"table: {_alternatives(_name(t, quote) for t in tables)}",
        f"column: {_alternatives(_name(c, quote) for c in columns)}",
        f"QUALIFIER: {_alternatives(qualifiers)} | /[a-z][a-z0-9]{{0,2}}\\./",
        f"AGG: {_alternatives(f'{a}(' for a in AGGREGATES)}",
        f"FUNC: {_alternatives(f'{f}(' for f in FUNCTIONS)}",
        f"TYPE: {_alternatives(TYPES)}",
        f"UNIT: {_alternatives(UNITS)}",
        _free_name(columns),
    ])  # fmt: skip


def reply_grammar(schema: Mapping[str, Sequence[Any]], dialect: str = "duckdb") -> GrammarSpec:
    """:func:`sql_grammar` as the ``response_format`` of a chat call (imported here, not at the top:
    :mod:`plinth.llm.grammar` pulls in torch, which asking a remote model never needs)."""
    from plinth.llm.grammar import GrammarSpec

    return GrammarSpec.ebnf(sql_grammar(schema, QUOTES.get(dialect, '"')), param="grammar")


def _ctes() -> str:
    """One CTE, named from :data:`CTE_NAMES`, and a query over it: a rule per name ties the name the
    query reads to the one it defined, so an undefined name (a table the safety layer refuses) cannot
    be written."""
    rules = [f"with_query: {' | '.join(f'cte_{n}' for n in CTE_NAMES)}"]
    for n in CTE_NAMES:
        over = f'head_d "{n}" ((_S "AS")? _S SHORT)? tail_d'
        rules.append(f'cte_{n}: "{n}" _S "AS" _S "(" _S? inner _S? ")" _S (select_b | {over})')
    return "\n".join(rules)


def _free_name(columns: Sequence[str]) -> str:
    """The lexeme of a name the grammar cannot check (an output alias, a CTE's column): any identifier
    except one in the namespace of a schema column (``line_item_...``, ``product_...``), so a misspelt
    column never passes as one."""
    prefixes = sorted({c.split("_", 1)[0] for c in columns if _BARE.match(c) and "_" in c.strip("_")})
    free = "/[a-z_][a-z0-9_]{0,30}/"
    if not prefixes:
        return f"NAME: {free}"
    return f"NAME: {free} & ~/({'|'.join(prefixes)})_[a-z0-9_]*/"


def _alternatives(literals: Iterable[str]) -> str:
    """Lark string literals, one alternative each."""
    return " | ".join(json.dumps(text, ensure_ascii=False) for text in literals)


def _name(name: str, quote: str) -> str:
    """``name`` as SQL writes it: bare when it is a plain lower-case word, else quoted."""
    if _BARE.match(name) and name not in _RESERVED:
        return name
    return quote + name.replace(quote, quote * 2) + quote
