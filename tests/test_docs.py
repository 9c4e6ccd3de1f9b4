"""The docs the code cites live in the repository, and every section it cites exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [p for d in ("ganinvert", "models", "scripts", "benchmarks", "examples") for p in (ROOT / d).rglob("*.py")]


def test_code_cites_no_file_outside_the_repository():
    cited = {p.relative_to(ROOT).as_posix(): m.group(0) for p in SOURCES
             for m in [re.search(r"DESIGN\.md|\.\./shared/[A-Z]+\.md", p.read_text())] if m}
    assert cited == {}


def test_every_cited_section_of_the_design_doc_exists():
    design = (ROOT / "docs" / "design.md").read_text()
    sections = set(re.findall(r"§(\d+(?:\.\d+)?)", design)) | set(re.findall(r"^## (\d+)\.", design, re.M))
    cited = {s for p in [*SOURCES, ROOT / "README.md", ROOT / "docs" / "reproduction.md"]
             for s in re.findall(r"docs/design\.md`? §(\d+(?:\.\d+)?)", p.read_text())}
    assert cited, "the code cites the design doc"
    assert cited <= sections, sorted(cited - sections)


def test_every_experiment_has_its_section_with_both_commands_and_its_figure():
    doc = (ROOT / "docs" / "reproduction.md").read_text()
    for path in sorted((ROOT / "conf" / "experiment").glob("*.yaml")):
        name = path.stem
        assert f"python scripts/invert.py +experiment={name}\n" in doc, name
        assert f"python scripts/aggregate.py multirun/{name}\n" in doc, name
        figure = re.search(r"plot: (docs/\S+\.png)", path.read_text()).group(1)
        assert f"]({Path(figure).name})" in doc and (ROOT / figure).stat().st_size > 10_000, figure
    assert not re.search(r"\b[A-Z]+_(TABLE|OURS)\b|GUARANTEES\n", doc), "a placeholder left in the doc"
