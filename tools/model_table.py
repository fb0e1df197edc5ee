"""Print the README's model table, generated from the registries (``tfseg.models.table``).

    python tools/model_table.py            # print it (every model at 512x1024, symbolic: ~1 min)
    python tools/model_table.py --write    # replace the table between the README's markers
    python tools/model_table.py --check    # fail if the README's rows do not name the registered
                                           # models with their kind, stride and paper (no build)

Like the other tools it imports the installed package (``pip install -e .``, or run it from the
repository root with ``PYTHONPATH=.``).
"""

import argparse
import os
import sys

from tfseg.models import table

START = "<!-- model-table:start -->"
END = "<!-- model-table:end -->"
README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "README.md")


def split_readme(text):
    """``(before, table, after)`` of the README text; the markers stay in ``before`` / ``after``."""
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise ValueError(f"README.md needs exactly one {START} ... {END} pair")
    before, rest = text.split(START)
    inner, after = rest.split(END)
    return before + START, inner, END + after


def table_rows(inner):
    """The data rows (not the header) of the table between the markers."""
    lines = [line for line in inner.splitlines() if line.strip().startswith("|")]
    return lines[2:]


def check(readme):
    """Differences between the README's rows and the registry, as a list of lines."""
    with open(readme) as f:
        _, inner, _ = split_readme(f.read())
    found = [table.parse_row(line) for line in table_rows(inner)]
    wanted = [
        table.parse_row(table.row(*entry, measure=False)) for entry in table.table_entries()
    ]
    problems = [f"missing or different: {w}" for w in wanted if w not in found]
    problems += [f"not registered (or different): {f}" for f in found if f not in wanted]
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="replace the README's table in place")
    mode.add_argument("--check", action="store_true", help="compare the README's rows (no build)")
    parser.add_argument("--readme", default=README, help="the README to write or check")
    args = parser.parse_args(argv)
    if args.check:
        problems = check(args.readme)
        for line in problems:
            print(line)
        if problems:
            print("run `python tools/model_table.py --write` (or paste its output) to regenerate")
        return 1 if problems else 0
    text = table.markdown()
    if args.write:
        with open(args.readme) as f:
            before, _, after = split_readme(f.read())
        with open(args.readme, "w") as f:
            f.write(f"{before}\n{text}\n{after}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
