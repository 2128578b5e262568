"""Every code example of README.md and docs/*.md runs (conventions: tests/docs_examples.py).

Each file's examples run in a fresh interpreter (as for a new user: nothing
imported beforehand, which is what caught ``lobsim.analysis.risk`` needing an import),
in a temporary working directory holding a copy of ``configs/`` and
``tests/data/``, so that an example writing files cannot touch the repository.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from docs_examples import Block, UnclosedFence, extract, shell_script

ROOT = Path(__file__).resolve().parents[1]
RUNNER = Path(__file__).resolve().parent / "docs_examples.py"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: Seconds one file's examples may take (the README, the longest, takes about a minute).
TIMEOUT = 400


def run_examples(doc: Path, workdir: Path) -> subprocess.CompletedProcess[str]:
    """Run ``doc``'s examples in ``workdir`` with this environment's ``lobsim``."""
    env = {**os.environ, "MPLBACKEND": "Agg",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run([sys.executable, str(RUNNER), str(doc)], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT)


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_documented_examples_run(doc: Path, tmp_path: Path):
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    shutil.copytree(ROOT / "tests" / "data", tmp_path / "tests" / "data")
    proc = run_examples(doc, tmp_path)
    assert proc.returncode == 0, f"{_tail(proc.stdout)}\n{_tail(proc.stderr)}"


def test_the_documents_have_examples():
    blocks = {d.name: extract(d.read_text(encoding="utf-8"), d.name) for d in DOCS}
    kinds = [b.kind for bs in blocks.values() for b in bs]
    assert kinds.count("sh") >= 10 and kinds.count("python") >= 5
    # The README's risk-contribution example, as written, is in a runnable block.
    readme = "".join(b.source for b in blocks["README.md"] if b.kind == "python")
    assert 'plot.risk_contributions(lobsim.analysis.risk.risk_contributions(ds, "all"), by="bond")' in readme


# -- the extractor and the runner ----------------------------------------------------

DOC = '''# A page

```inline``` code at the start of a line is not a fence.

```sh
make test
lobsim terms configs/x.toml
```

```
shown output, not run
```

  ```python
  x = 1
  ```

~~~toml
a = 1
~~~

```text
lobsim run CONFIG
```
'''


def test_extract_finds_runnable_blocks_with_their_lines():
    assert extract(DOC) == [
        Block("sh", "make test\nlobsim terms configs/x.toml\n", 6),
        Block("python", "x = 1\n", 15),
        Block("toml", "a = 1\n", 19),
    ]


def test_extract_refuses_an_unclosed_fence():
    with pytest.raises(UnclosedFence, match=r"page\.md:3: code block"):
        extract("text\n\n```python\nx = 1\n", "page.md")


def test_make_lines_are_blanked_and_line_numbers_kept():
    script = shell_script(Block("sh", "make test\nlobsim terms x.toml\n", 6))
    assert script.splitlines()[5:] == ["", "lobsim terms x.toml"]


def _run(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    doc = tmp_path / "page.md"
    doc.write_text(text, encoding="utf-8")
    return run_examples(doc, tmp_path)


def test_runner_passes_good_examples_sharing_a_namespace_and_a_directory(tmp_path):
    proc = _run(tmp_path, "```sh\nmake no-such-target\necho 41 > n.txt\n```\n\n"
                          "```python\nn = int(open('n.txt').read())\n```\n\n"
                          "```python\nassert n + 1 == 42\nprint('ok', n + 1)\n```\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok 42"


def test_runner_fails_on_a_broken_python_example(tmp_path):
    proc = _run(tmp_path, "# t\n\n```python\nimport lobsim\n\nlobsim.no_such_thing\n```\n")
    assert proc.returncode == 1
    assert "docs example failed: " in proc.stderr and "page.md:4 (python)" in proc.stderr
    assert 'page.md", line 6' in proc.stderr  # the traceback points at the Markdown line


def test_runner_fails_on_a_broken_command_and_stops_there(tmp_path):
    proc = _run(tmp_path, "```sh\nlobsim terms no_such.toml\ntouch after.txt\n```\n")
    assert proc.returncode == 1
    assert "page.md:2 (sh): exit status 2" in proc.stderr
    assert "no_such.toml" in proc.stderr
    assert not (tmp_path / "after.txt").exists()


def test_runner_fails_on_a_broken_toml_excerpt(tmp_path):
    proc = _run(tmp_path, "```toml\n[[bonds]\n```\n")
    assert proc.returncode == 1
    assert "page.md:2 (toml)" in proc.stderr
