"""Extract and run the code examples of a Markdown file (README.md, docs/*.md).

Used by tests/test_docs_examples.py; also a script, run in a fresh interpreter
from the working directory the examples expect (the test makes a temporary
one holding a copy of the repository's ``configs/`` and ``tests/data/``)::

    python tests/docs_examples.py README.md

The conventions, per fenced block (its info string's first word):

- ``sh`` (or ``bash``, ``shell``): runs as written, in bash with ``-e -u -o
  pipefail`` (the first failing command fails the example), ``lobsim`` being
  this environment's command. Lines starting with ``make`` are the CI itself
  (``make test`` is what runs this) and are not run.
- ``python`` (or ``py``): runs as written. All python blocks of one file share
  one namespace, so a block may use what an earlier one defined.
- ``toml``: must parse (config excerpts; the configs they come from are run by
  tests/test_bundled_configs.py).
- anything else (no info string, ``text``): shown, not run: program output,
  and command synopses with placeholders such as ``CONFIG``.

The blocks of a file run in document order, in one working directory, so a
command may read what an earlier one wrote (``lobsim run ... --out bham.nc``,
then ``lobsim summary bham.nc``). Nothing can be skipped: an example too slow
for the suite is made smaller in the document, and a long run is shown as
output only.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import tomllib
import traceback
from dataclasses import dataclass
from pathlib import Path

#: Info-string language -> how the block is run.
KINDS = {"sh": "sh", "bash": "sh", "shell": "sh", "python": "python", "py": "python",
         "toml": "toml"}
_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_MAKE = re.compile(r"^\s*make(\s|$)")


@dataclass(frozen=True)
class Block:
    """One runnable fenced block: ``kind`` (sh, python, toml), its text, and the
    1-based line of its first text line in the file."""

    kind: str
    source: str
    line: int


class UnclosedFence(ValueError):
    """A fence opened and never closed: the rest of the file would be code."""


def extract(text: str, name: str = "<markdown>") -> list[Block]:
    """The runnable fenced blocks of a Markdown text, in order (CommonMark fences)."""
    lines = text.splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m is None or (m["fence"][0] == "`" and "`" in m["info"]):  # inline code, not a fence
            i += 1
            continue
        fence, indent = m["fence"], len(m["indent"])
        close = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        end = next((j for j in range(i + 1, len(lines)) if close.match(lines[j])), None)
        if end is None:
            raise UnclosedFence(f"{name}:{i + 1}: code block opened with {fence} is never closed")
        words = m["info"].split()
        kind = KINDS.get(words[0].lower()) if words else None
        if kind is not None:
            body = [_dedent(t, indent) for t in lines[i + 1:end]]
            blocks.append(Block(kind, "\n".join(body) + "\n", i + 2))
        i = end + 1
    return blocks


def _dedent(line: str, indent: int) -> str:
    # CommonMark: a fence indented by n spaces strips up to n from its lines
    strip = len(line) - len(line.lstrip(" "))
    return line[min(strip, indent):]


def shell_script(block: Block) -> str:
    """The bash script of an sh block: ``make`` lines blanked, padded so that
    ``$LINENO`` is the line in the Markdown file."""
    body = ["" if _MAKE.match(t) else t for t in block.source.splitlines()]
    return "\n" * (block.line - 1) + "\n".join(body) + "\n"


def run_file(path: Path) -> int:
    """Run the examples of ``path`` in the current directory; 0, or 1 after one
    line on stderr naming the failing block (``FILE:LINE``)."""
    blocks = extract(path.read_text(encoding="utf-8"), str(path))
    namespace: dict[str, object] = {"__name__": "__main__"}
    env = {**os.environ, "PS4": f"+ {path.name}:$LINENO: "}
    for b in blocks:
        where = f"{path}:{b.line} ({b.kind})"
        print(f"--- {where}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            if b.kind == "python":
                # padded so tracebacks give the Markdown file's line numbers
                code = compile("\n" * (b.line - 1) + b.source, str(path), "exec")
                exec(code, namespace)
            elif b.kind == "sh":
                done = subprocess.run(["bash", "-e", "-u", "-o", "pipefail", "-x", "-c",
                                       shell_script(b)], env=env, check=False)
                if done.returncode != 0:
                    raise RuntimeError(f"exit status {done.returncode}")
            else:
                tomllib.loads(b.source)
        except (Exception, SystemExit) as exc:
            traceback.print_exc()
            sys.stdout.flush()
            print(f"docs example failed: {where}: {exc}", file=sys.stderr)
            return 1
        sys.stdout.flush()
        print(f"--- {where}: {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run_file(Path(sys.argv[1]).resolve()))
