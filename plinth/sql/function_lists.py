"""Which functions generated SQL may call: the audited deny-list of sqlglot's typed functions and the
allow-list of functions sqlglot does not model. :mod:`plinth.sql.safety` explains why the two worlds
differ; the lists live here so that reviewing them is reviewing one short file."""

from __future__ import annotations

from sqlglot import exp

__all__ = ["ALLOWED_ANONYMOUS", "DENIED_FUNCTIONS"]

# Typed sqlglot functions that reach outside the query's data, reveal the session, or explode rows.
DENIED_FUNCTIONS: tuple[type[exp.Func], ...] = (
    exp.ReadCSV,
    exp.ReadParquet,
    exp.ToFile,
    exp.Secret,
    exp.GenerateTable,
    exp.GenerateSeries,
    exp.ExplodingGenerateSeries,
    exp.CurrentUser,
    exp.CurrentUserId,
    exp.CurrentOrganizationUser,
    exp.SessionUser,
    exp.CurrentSession,
    exp.CurrentVersion,
    exp.SplitToTable,
    exp.StrtokSplitToTable,
)

# Functions sqlglot does not model but cost SQL (Presto/Athena, DuckDB, Spark, PostgreSQL) needs. Each
# is a pure function of its arguments.
ALLOWED_ANONYMOUS: frozenset[str] = frozenset(
    {
        # date and time
        "date_add", "date_diff", "datediff", "date_sub", "day_of_week", "dow", "day_of_month",
        "day_of_year", "doy", "week_of_year", "yearweek", "isodow", "isoyear", "last_day",
        "last_day_of_month",
        "from_iso8601_date", "from_unixtime", "to_unixtime", "epoch", "epoch_ms", "make_date",
        "make_timestamp", "strftime", "strptime", "try_strptime", "date_part", "datepart", "dayname",
        "monthname", "quarter", "hour", "minute", "second", "millisecond", "timezone", "at_timezone",
        "with_timezone", "parse_datetime", "format_datetime", "human_readable_seconds", "age",
        "to_timestamp", "to_date", "current_timezone",
        # strings
        "split_part", "strpos", "position", "instr", "lpad", "rpad", "ltrim", "rtrim", "btrim",
        "replace", "reverse", "regexp_replace", "regexp_extract", "regexp_like", "regexp_matches",
        "regexp_split_to_array", "regexp_extract_all", "starts_with", "ends_with", "prefix", "suffix",
        "contains", "word_stem", "translate", "chr", "ascii", "codepoint", "format", "printf",
        "concat_ws", "split", "string_split", "str_split", "left", "right", "len", "char_length",
        "character_length", "octet_length", "normalize", "url_extract_host", "url_extract_path",
        "initcap", "strip_accents", "to_hex", "from_hex", "md5", "sha1", "sha256", "hash",
        # numbers
        "truncate", "trunc", "sign", "cbrt", "degrees", "radians", "pi", "e", "mod", "width_bucket",
        "bit_count", "is_nan", "is_finite", "is_infinite", "isnan", "isfinite", "isinf", "nanvl",
        "random", "rand", "greatest", "least", "gcd", "lcm", "factorial", "even", "round_even",
        "try_divide", "divide", "format_number",
        # conditional, json, arrays and maps
        "nullif", "ifnull", "nvl", "nvl2", "coalesce", "typeof", "try", "element_at", "cardinality",
        "array_join", "array_position", "array_distinct", "array_sort", "array_max", "array_min",
        "array_length", "array_has", "list_contains", "list_has", "list_value", "list_extract",
        "map_keys", "map_values", "map_extract", "map_from_entries", "json_extract_scalar",
        "json_format", "json_parse", "json_array_length", "json_array_get", "json_size",
        "json_value", "json_query", "json_exists", "get_json_object", "json_extract_path_text",
        "json_extract_string", "to_json", "from_json",
        # aggregates and windows
        "approx_percentile", "approx_quantile", "approx_count_distinct", "arbitrary", "any_value",
        "bool_and", "bool_or", "every", "count_if", "countif", "sum_if", "max_by", "min_by", "arg_max",
        "arg_min", "geometric_mean", "median", "mode", "kurtosis", "skewness", "histogram",
        "map_agg", "multimap_agg", "string_agg", "listagg", "list", "checksum", "entropy",
        "corr", "covar_pop", "covar_samp", "regr_slope", "regr_intercept", "regr_r2", "bit_and",
        "bit_or", "bit_xor", "product", "fsum", "favg", "percent_rank", "cume_dist", "ntile",
        "nth_value", "first", "last",
    }
)  # fmt: skip
