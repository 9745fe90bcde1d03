"""Catalogs into the store: read rows, fetch pictures, embed, upsert, report, evaluate."""
