"""Every relative link in the repository's Markdown resolves.

Checks README.md, DEVELOPERS.md, docs/**/*.md and any other Markdown file in the tree (virtual
environments, simulator output and hidden directories excepted): each relative link or image
must name an existing file or directory, and each ``#anchor`` must name a heading of the target
Markdown file (or of the same file), slugged as GitHub slugs it. Links inside code are ignored.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import pytest

pytestmark = pytest.mark.model

ROOT = Path(__file__).resolve().parents[2]
SKIP_DIRS = {".venv", "sim_out", "node_modules", "build", "dist", "__pycache__"}

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_CODE_SPAN = re.compile(r"(`+)(?:.+?)\1")
# [text](target) and ![alt](target); the target may be <...> and may carry a "title".
_INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*(<[^>]*>|[^)\s]*)(?:\s+\"[^\"]*\")?\s*\)")
_REFDEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
_HTML = re.compile(r"<(?:a|img)\b[^>]*?\b(?:href|src)\s*=\s*\"([^\"]*)\"", re.IGNORECASE)
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def markdown_files(root: Path = ROOT) -> list[Path]:
    """All ``*.md`` files under ``root``, skipping hidden and generated directories."""
    found = []
    for path in sorted(root.rglob("*.md")):
        rel = path.relative_to(root).parts
        if any(p in SKIP_DIRS or p.startswith(".") or p.endswith(".egg-info") for p in rel[:-1]):
            continue
        found.append(path)
    return found


def _prose_lines(text: str):
    """(line number, line) outside fenced code blocks."""
    fence = None
    for n, line in enumerate(text.splitlines(), 1):
        m = _FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)
            continue
        if fence is not None:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) \
                    and not line.strip()[len(m.group(1)):].strip():
                fence = None
            continue
        yield n, line


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: rendered text, lower case, punctuation dropped,
    spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)     # links/images -> text
    text = re.sub(r"<[^>]+>", "", text)                             # inline HTML
    text = text.replace("`", "")
    text = re.sub(r"(\*\*|__|\*|(?<!\w)_|_(?!\w))", "", text)       # emphasis markers
    text = text.strip().lower()
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch in "-_" or ch.isalnum() or cat.startswith("M"):
            out.append(ch)
        elif ch == " ":
            out.append("-")
    return "".join(out)


def anchors(text: str) -> set[str]:
    """Every heading anchor of a Markdown text, duplicates numbered as GitHub does."""
    seen: dict[str, int] = {}
    result = set()
    for _, line in _prose_lines(text):
        m = _HEADING.match(line)
        if not m:
            continue
        slug = github_slug(m.group(2))
        if slug in seen:
            seen[slug] += 1
            slug = f"{slug}-{seen[slug]}"
        else:
            seen[slug] = 0
        result.add(slug)
    return result


def link_targets(text: str):
    """(line number, target) of every link, image and reference definition outside code."""
    for n, line in _prose_lines(text):
        prose = _CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line)
        for rx in (_INLINE, _REFDEF, _HTML):
            for m in rx.finditer(prose):
                target = m.group(1).strip()
                if target.startswith("<") and target.endswith(">"):
                    target = target[1:-1]
                yield n, target


def broken_links(md: Path, root: Path = ROOT) -> list[str]:
    """One message per relative link of ``md`` that does not resolve."""
    text = md.read_text(encoding="utf-8")
    problems = []
    for n, target in link_targets(text):
        if not target or _SCHEME.match(target) or target.startswith("//"):
            continue
        path_part, _, anchor = target.partition("#")
        path_part = unquote(path_part.split("?")[0])
        where = f"{md.relative_to(root)}:{n}: {target}"
        if path_part:
            dest = (root / path_part.lstrip("/")) if path_part.startswith("/") \
                else (md.parent / path_part)
            dest = dest.resolve()
            if not dest.is_relative_to(root.resolve()):
                problems.append(f"{where}: points outside the repository")
                continue
            if not dest.exists():
                problems.append(f"{where}: no such file")
                continue
        else:
            dest = md
        if anchor and dest.is_file() and dest.suffix.lower() == ".md":
            if unquote(anchor).lower() not in anchors(dest.read_text(encoding="utf-8")):
                problems.append(f"{where}: no heading with anchor #{anchor} "
                                f"in {dest.relative_to(root.resolve())}")
    return problems


def test_markdown_files_found():
    names = {p.relative_to(ROOT).as_posix() for p in markdown_files()}
    assert {"README.md", "DEVELOPERS.md", "docs/README.md"} <= names
    assert not any(n.startswith((".venv/", "sim_out/")) for n in names)


@pytest.mark.parametrize("md", markdown_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(md):
    problems = broken_links(md)
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_github_slugs():
    assert github_slug("Synthesis: what it costs on an FPGA") == "synthesis-what-it-costs-on-an-fpga"
    assert github_slug("Pipelining (`--pipeline`)") == "pipelining---pipeline"
    assert github_slug("In RTL: `systolix infer`") == "in-rtl-systolix-infer"
    assert github_slug("Cycle model (`engine_cycles`)") == "cycle-model-engine_cycles"
    assert github_slug("Systolic vs tensor-core engine") == "systolic-vs-tensor-core-engine"
    assert anchors("# A\n## A\n```\n# B\n```\n### A\n") == {"a", "a-1", "a-2"}


def test_checker_reports_broken_links(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "img.png").write_bytes(b"")
    (tmp_path / "sub" / "page.md").write_text("# Page\n\n## Cycle model\n")
    md = tmp_path / "README.md"
    md.write_text(
        "# Top\n\n## Two commands\n\n"
        "[ok](sub/page.md) [ok](sub/page.md#cycle-model) [ok](#two-commands) ![ok](img.png)\n"
        "[ok](https://example.org/x.md) `[code](missing.md)`\n"
        "```\n[in a fence](missing.md)\n```\n"
        "[bad file](sub/nope.md) [bad anchor](sub/page.md#cycle-models) [bad](#three-commands)\n"
        "![bad image](sub/img.png) [outside](../x.md)\n"
        "[ref]: docs/missing.md\n")
    problems = broken_links(md, tmp_path)
    assert [p.split(": ", 1)[1].split(":")[0] for p in problems] == [
        "sub/nope.md", "sub/page.md#cycle-models", "#three-commands", "sub/img.png", "../x.md",
        "docs/missing.md"]
    assert all(p.startswith("README.md:") for p in problems)
