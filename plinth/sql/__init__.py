"""Ask your data: questions in plain language -> one vetted, read-only SQL query -> rows, chart, answer."""
