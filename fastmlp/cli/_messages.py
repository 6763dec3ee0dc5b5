"""How the command line speaks to its user: one-line errors, and notes on stderr.

Design
------
What a user gets wrong is a `UsageError`: `main` prints it as one line, ``fastmlp: error: ...``,
and exits with status 2, as argparse does for bad options; never a traceback. Notes (warnings
worth reading, e.g. that training stopped at --epochs) go to stderr after what was printed
before them, so that stdout holds results alone.
"""

import sys


class UsageError(Exception):
    """A mistake of the user's: printed as one line, exit status 2."""


def first_line(exc):
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def print_notes(notes):
    sys.stdout.flush()  # notes come after what was printed before them, even through a pipe
    for note in notes:
        print(f"fastmlp: note: {note}", file=sys.stderr)
    sys.stderr.flush()
