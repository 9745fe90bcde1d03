"""The indexer: catalog → embeddings → Qdrant, incremental and resumable (`python -m indexer`).

Read as a pipeline: `catalog` reads and checks rows, `sources` resolves image references,
`pipeline` fetches, decodes, embeds and upserts, `state` decides what a re-run skips, `report`
tells the user; `job` runs one catalog end to end, `evaluate` measures a collection, and
`cli`/`commands`/`__main__` are the command line.
"""
