"""The tables stage: trials + baselines -> rows (assemble.py), the output contract's Parquet
tables written atomically (tables.py), manifest.json and its schema version (manifest.py)."""
