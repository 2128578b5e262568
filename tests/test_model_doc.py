"""The model specification ships with the code: docs/model.md, and citations of it.

Code comments, help texts, the report, configs and notebooks cite the model
as "docs/model.md section N" (or "model.md §N"). These tests fail if a file
cites a section heading that docs/model.md does not have, or if a shipped
file still cites the project's internal design notes, which users never see.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "docs" / "model.md"
#: What ships to users (and the tests, which cite the model too).
SHIPPED = ("src", "configs", "docs", "notebooks", "benchmarks", "tests", "README.md")
TEXT_SUFFIXES = {".py", ".md", ".toml", ".ipynb", ".txt", ".cfg", ".csv", ".json", ".html"}
SKIP_DIRS = {"__pycache__", ".ipynb_checkpoints"}

# "model.md section 3.2", "model.md sections 5 to 8", "[model.md](model.md) §4.4, §4.6",
# "model.md sections 3-4"; a list ends at the first word that is not a separator
_REFS = (r"(?P<refs>[0-9][0-9.,§\s\-\u2013]*(?:(?:and|to)\s*§?\s*[0-9][0-9.,§\s\-\u2013]*)*)")
_CITATION = re.compile(r"model\.md\)?,?\s+(?:sections?\b|§)\s*" + _REFS)
# model.md's references to its own sections ("(section 4.4)"), told apart from its
# references to other pages and to the report by what precedes them
_OWN_REFERENCE = re.compile(r"\bsections?\s+" + _REFS)
_OTHER_SOURCE = re.compile(r"\.md|report|Neighbourhood|README", re.IGNORECASE)
_NUMBER = re.compile(r"\d+(?:\.\d+)*")
_HEADING = re.compile(r"^#{2,4}\s+(\d+(?:\.\d+)*)\.?\s", re.MULTILINE)
# the internal design notes, by any of the names they have been cited by
_DESIGN = re.compile(r"\bDESIGN\b|(?i:design notes|design\.md)")


def shipped_files() -> list[Path]:
    out = []
    for name in SHIPPED:
        path = ROOT / name
        candidates = [path] if path.is_file() else sorted(path.rglob("*"))
        for p in candidates:
            if (p.is_file() and p.suffix in TEXT_SUFFIXES
                    and not SKIP_DIRS & set(p.relative_to(ROOT).parts)
                    and not any(part.endswith(".egg-info") for part in p.parts)):
                out.append(p)
    return out


def model_sections(text: str) -> set[str]:
    """Section numbers of the headings of model.md: '3' for '## 3. ...', '3.2' for '### 3.2 ...'."""
    return set(_HEADING.findall(text))


def _numbers(refs: str) -> list[str]:
    """The section numbers of a reference list, ranges ("5 to 8", "3-7") expanded."""
    numbers = [(n.start(), n.group()) for n in _NUMBER.finditer(refs)]
    out: list[str] = []
    for i, (pos, num) in enumerate(numbers):
        out.append(num)
        if i + 1 < len(numbers):
            nxt = numbers[i + 1][1]
            between = refs[pos + len(num): numbers[i + 1][0]]
            if re.search(r"\bto\b|[-\u2013]", between) and "." not in num + nxt:
                out += [str(k) for k in range(int(num) + 1, int(nxt))]
    return out


def cited_sections(text: str) -> list[str]:
    """Every docs/model.md section number a text cites."""
    return [n for m in _CITATION.finditer(text) for n in _numbers(m.group("refs"))]


def own_references(text: str) -> list[str]:
    """The section numbers model.md refers to in its own text ("see section 4.4")."""
    out = []
    for m in _OWN_REFERENCE.finditer(text):
        # the clause before the reference: from the last "(", ";" or sentence end
        before = text[max(0, m.start() - 160): m.start()]
        clause = before[max(before.rfind(c) for c in ("(", ";", ". ", "\n\n")) + 1:]
        if not _OTHER_SOURCE.search(clause):
            out += _numbers(m.group("refs"))
    return out


def test_the_citation_parser_reads_the_forms_in_use() -> None:
    # the forms the repository uses, with what they must resolve to
    assert cited_sections("see docs/model.md section 3.2.") == ["3.2"]
    assert cited_sections("([model.md](model.md) sections 5 to 8)") == ["5", "6", "7", "8"]
    assert cited_sections("(model.md §3.4, §4.4)") == ["3.4", "4.4"]
    assert cited_sections("docs/model.md sections 3-4: x = x0") == ["3", "4"]
    assert cited_sections("(docs/model.md sections 9.4 and 10), per") == ["9.4", "10"]
    assert cited_sections("docs/model.md\nsection 2): price") == ["2"]
    assert cited_sections("model.md §4.2, §10.") == ["4.2", "10"]
    assert cited_sections("sections 5 (ramp, relapse), 6 (the cap") == []
    assert cited_sections("docs/model.md sections 5 (ramp, relapse), 6") == ["5"]
    assert model_sections("## 3. Areas\n### 3.2 The process\ntext 4.4\n") == {"3", "3.2"}
    assert own_references("as in section 4.1. See docs/scale.md section 2.") == ["4.1"]
    assert own_references("(the report, section 5.2); the payers (section 7.2)") == ["7.2"]
    assert own_references("The report's section 3.2 covers it,\nits section 5.2 bonds") == []


def test_model_md_has_the_ten_numbered_sections() -> None:
    sections = model_sections(MODEL.read_text(encoding="utf-8"))
    assert {str(k) for k in range(1, 11)} <= sections
    # subsections are numbered within their section
    for s in sections:
        assert s.split(".")[0] in sections, s


def test_citations_point_to_sections_that_exist() -> None:
    sections = model_sections(MODEL.read_text(encoding="utf-8"))
    bad = []
    for path in shipped_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        missing = sorted(set(cited_sections(text)) - sections)
        if missing:
            bad.append(f"{path.relative_to(ROOT)}: section(s) {', '.join(missing)}")
    assert not bad, ("docs/model.md has no heading for the sections cited by\n"
                     + "\n".join(bad))


def test_model_md_refers_only_to_its_own_sections() -> None:
    text = MODEL.read_text(encoding="utf-8")
    refs = own_references(text)
    assert len(refs) >= 50  # the scan sees them
    missing = sorted(set(refs) - model_sections(text))
    assert not missing, f"docs/model.md refers to sections it does not have: {missing}"


def test_no_shipped_file_cites_the_internal_design_notes() -> None:
    this = Path(__file__).resolve()
    found = []
    for path in shipped_files():
        if path.resolve() == this:
            continue
        for i, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines()):
            if _DESIGN.search(line):
                found.append(f"{path.relative_to(ROOT)}:{i + 1}: {line.strip()[:80]}")
    assert not found, ("cite docs/model.md (section N) instead of the design notes, which "
                       "users do not have:\n" + "\n".join(found))


def test_the_shipped_citations_are_many() -> None:
    # the scan must see the citations: a broken pattern would pass every file
    count = sum(len(cited_sections(p.read_text(encoding="utf-8", errors="replace")))
                for p in shipped_files())
    assert count >= 90
