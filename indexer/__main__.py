"""`python -m indexer` (and the `indexer` console script): errors become exit codes here only.

0: all rows indexed; 1: finished, some rows skipped or a prune refused; 2: usage,
configuration or fatal error, told in one message (the traceback too with `--verbose`);
130: interrupted (re-run resumes).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback

from fashion_clip.errors import FashionCLIPError
from indexer.cli import parse
from indexer.commands import COMMANDS
from indexer.exit_codes import ERROR as EXIT_ERROR
from indexer.exit_codes import INTERRUPTED as EXIT_INTERRUPTED


def main(argv: list[str] | None = None) -> int:
    code = _run(argv)
    if argv is None and code in (EXIT_ERROR, EXIT_INTERRUPTED):
        # We own the process (the console script, `python -m`). A run stopped mid-way can
        # leave fetch threads blocked on a hung image server, and Python joins them at exit:
        # Ctrl-C took ~50 s (three 15 s HTTP attempts). Everything of ours is closed by now
        # (the store, the report, the decoding processes), so leave without waiting.
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing to save
                stream.flush()
        os._exit(code)
    return code


def _run(argv: list[str] | None) -> int:
    given = sys.argv[1:] if argv is None else argv
    verbose = "-v" in given or "--verbose" in given
    if not verbose:  # read when huggingface_hub is imported: hides "Loading weights" bars
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

    args = None
    try:
        args, settings = parse(argv)
        verbose = args.verbose
        _configure_logging(verbose)
        return int(COMMANDS[args.run](args, settings))
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2, message printed)
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    except KeyboardInterrupt:
        again = "the same command again"
        if getattr(args, "recreate", False):  # with it, the re-run would drop the work done
            again = "it again without --recreate"
        print(f"indexer: interrupted; run {again} to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except FashionCLIPError as exc:
        return _fail(str(exc), verbose, unexpected=False)
    except Exception as exc:  # a bug or an unforeseen environment problem: still one message
        return _fail(f"unexpected {type(exc).__name__}: {exc}", verbose, unexpected=True)


def _fail(message: str, verbose: bool, *, unexpected: bool) -> int:
    """Print `message` (the traceback first with --verbose); only an unexpected error, which
    no message of ours explains, points to --verbose."""
    if verbose:
        traceback.print_exc()
    hint = " (--verbose shows the traceback)" if unexpected and not verbose else ""
    print(f"indexer: error: {message}{hint}", file=sys.stderr)
    return EXIT_ERROR


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="indexer: %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not verbose:
        for noisy in ("transformers", "huggingface_hub", "botocore", "urllib3", "httpx"):
            logging.getLogger(noisy).setLevel(logging.ERROR)


if __name__ == "__main__":
    sys.exit(main())
