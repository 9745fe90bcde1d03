"""The indexer's exit codes, part of its contract with scripts: every command returns one."""

OK = 0  # everything done
SKIPPED = 1  # done, but some rows or images were skipped (each reported), or a prune refused
ERROR = 2  # a usage or configuration error, or a failure that stopped the run
INTERRUPTED = 130  # Ctrl-C
