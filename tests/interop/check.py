"""Interop check: pyarrow and DuckDB read every Parquet output of twinflow, and
DuckDB computes TwinBench W straight from events.parquet with the same results.

usage: check.py LOG_DIR OUT_DIR
"""
import json
import math
import sys
from pathlib import Path

import duckdb
import pyarrow.dataset as ds
import pyarrow.parquet as pq

log, out = Path(sys.argv[1]), Path(sys.argv[2])
summary = json.loads((out / "summary.json").read_text())

# 1. pyarrow reads every file and dataset, with the documented schemas.
events = pq.read_table(log / "events.parquet")
expected_events = [
    ("ts_us", "int64"), ("arrival_us", "int64"), ("asset", "string"), ("sensor", "string"),
    ("kind", "string"), ("value", "double"), ("seq", "uint64"), ("quality", "uint8"), ("tag", "binary"),
]
assert [(f.name, str(f.type)) for f in events.schema] == expected_events, events.schema
assert pq.read_table(log / "truth.parquet").num_rows > 0
tables = {name: ds.dataset(out / name, format="parquet").to_table() for name in ("windows", "late", "quarantine")}
assert tables["windows"].num_rows == summary["windows"], (tables["windows"].num_rows, summary)
assert tables["late"].num_rows == summary["late_events"]
assert tables["quarantine"].num_rows == summary["quarantined"]

# 2. DuckDB reads them too, as one table per dataset.
con = duckdb.connect()
for name in ("windows", "late", "quarantine"):
    n = con.execute(f"SELECT count(*) FROM read_parquet('{out / name}/*.parquet')").fetchone()[0]
    assert n == tables[name].num_rows, (name, n)

# 3. W in SQL: lateness by a window function over arrival order (the file's row order).
con.execute(f"""
CREATE VIEW marked AS
SELECT *, max(ts_us) OVER (ORDER BY pos ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_max
FROM (SELECT *, file_row_number AS pos FROM read_parquet('{log / "events.parquet"}', file_row_number = true))
""")
con.execute("""
CREATE VIEW accepted AS
SELECT *, prev_max IS NOT NULL AND ts_us < prev_max - 2000000 AS late FROM marked WHERE isfinite(value)
""")
con.execute("""
CREATE TABLE w AS
SELECT sensor, (ts_us // 1000000) * 1000000 AS window_start_us, count(*) AS count, avg(value) AS mean,
       min(value) AS min, max(value) AS max, arg_max(value, (ts_us, pos)) AS last
FROM accepted WHERE NOT late GROUP BY ALL
""")
late_sql = con.execute("SELECT count(*) FROM accepted WHERE late").fetchone()[0]
windows_sql, sum_means_sql = con.execute("SELECT count(*), sum(mean) FROM w").fetchone()

assert windows_sql == summary["windows"], (windows_sql, summary["windows"])
assert late_sql == summary["late_events"], (late_sql, summary["late_events"])
assert math.isclose(sum_means_sql, summary["sum_window_means"], rel_tol=1e-6), (sum_means_sql, summary)

# 4. Row by row: the same windows with the same statistics.
mismatches = con.execute(f"""
SELECT count(*) FROM w FULL OUTER JOIN read_parquet('{out}/windows/*.parquet') t
  ON w.sensor = t.sensor AND w.window_start_us = t.window_start_us
WHERE t.sensor IS NULL OR w.sensor IS NULL OR w.count <> t.count OR w.min <> t.min OR w.max <> t.max
   OR w.last <> t.last OR abs(w.mean - t.mean) > 1e-9 * greatest(abs(w.mean), 1)
""").fetchone()[0]
assert mismatches == 0, f"{mismatches} windows differ"

print(f"interop ok: {summary['windows']} windows, {summary['late_events']} late, "
      f"sum of means {summary['sum_window_means']:.6f} (duckdb {sum_means_sql:.6f})")
