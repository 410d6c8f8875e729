"""``python -m eventdocs``: the same command as ``eventdocs``."""

from eventdocs.cli import main

if __name__ == "__main__":
    main(prog_name="eventdocs")
