"""The indexer's command line (`python -m indexer`) over `fashion_clip.ingest`: catalog →
embeddings → Qdrant, incremental and resumable.

`cli` parses the arguments, `commands` runs one library call per command and prints, and
`__main__` turns errors into exit codes (`exit_codes`).
"""
