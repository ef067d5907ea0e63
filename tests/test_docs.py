"""The documentation as a user meets it: the site's pages (mkdocs.yml's nav) exist, every public name has an
API page, no page tells how the project was built, and the README stays a five-minute read.
scripts/test.sh builds the site itself (`mkdocs build --strict`); these checks need no mkdocs."""

import inspect
import re
from pathlib import Path

import pytest
import yaml

import smol_align

ROOT = Path(__file__).parents[1]
DOCS = ROOT / "docs"
README_MAX_LINES = 250

# Wording that tells the project's history (how and when it was built, what earlier versions measured, how a
# setting was tuned): that belongs in git and CHANGELOG.md, not in a page a user reads. Whitespace is \s+, as a
# phrase may be wrapped across lines.
HISTORY = [
    r"\bsessions?\s+\d",
    r"\bthis\s+session\b",
    r"\bearlier\s+(versions?|measurements?|settings|rules?)\b",
    r"\bwe\s+(tuned|tried)\b",
    r"\bwas\s+built\b",
    r"\bprevious(ly)?\s+measured\b",
    r"\bhow\s+the\s+(settings?|recipe)\s+(was|were)\s+(found|chosen)\b",
    r"\bthe\s+issue's\b",
    r"\b(before|after)\s+(the|a)\s+([\w-]+\s+){0,3}?fix\b",
    r"\bused\s+to\s+(run|be|measure|train)\b",
    r"\(was\s+\d",
    r"\bthe\s+predecessor\b",
    r"\bno\s+longer\s+does\b",
    r"\bnot\s+yet\s+repeated\b",
    r"\blent\s+so\s+far\b",
    r"\bfor\s+this\s+README\b",
    r"\b(was|were)\s+measured\s+first\b",
]


def _nav_pages(items):
    for item in items:
        for value in item.values() if isinstance(item, dict) else [item]:
            if isinstance(value, list):
                yield from _nav_pages(value)
            else:
                yield value


def _mkdocs():
    return yaml.safe_load((ROOT / "mkdocs.yml").read_text())


def _pages():
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def test_every_nav_page_exists_and_every_page_is_in_the_nav():
    config = _mkdocs()
    assert config["docs_dir"] == "docs"
    nav = list(_nav_pages(config["nav"]))
    assert len(nav) == len(set(nav)), "a page is listed twice in mkdocs.yml's nav"
    missing = [page for page in nav if not (DOCS / page).is_file()]
    assert not missing, f"mkdocs.yml's nav lists pages that docs/ lacks: {missing}"
    unlisted = sorted(
        str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md") if str(p.relative_to(DOCS)) not in nav
    )
    assert not unlisted, f"pages in docs/ that no nav entry reaches: {unlisted}"


def test_the_changelog_page_includes_changelog_md():
    """One copy of the changelog: the page includes CHANGELOG.md (pymdownx.snippets), it does not repeat it."""
    assert '--8<-- "CHANGELOG.md"' in (DOCS / "changelog.md").read_text()
    assert any(
        isinstance(ext, dict) and "pymdownx.snippets" in ext for ext in _mkdocs()["markdown_extensions"]
    ), "mkdocs.yml needs pymdownx.snippets for the changelog page"


def _documented():
    """(target, members or None) for every `::: target` block of the API pages."""
    blocks = []
    for page in (DOCS / "reference").glob("*.md"):
        for target, options in re.findall(r"^::: (\S+)\n((?:[ \t]+.*\n?)*)", page.read_text(), re.M):
            members = re.search(r"members:\s*\[([^\]]*)\]", options)
            blocks.append((target, [m.strip() for m in members.group(1).split(",")] if members else None))
    return blocks


def _qualified(name):
    obj = getattr(smol_align, name)
    if inspect.ismodule(obj):
        return obj.__name__
    if inspect.isclass(obj) or inspect.isfunction(obj):
        return f"{inspect.unwrap(obj).__module__}.{obj.__qualname__}"
    return f"smol_align.models.{name}"  # a constant (DEFAULT_MODEL)


@pytest.mark.parametrize("name", [n for n in smol_align.__all__ if n != "__version__"])
def test_every_public_name_has_an_api_page(name):
    qualified = _qualified(name)
    module, _, short = qualified.rpartition(".")
    assert any(
        target == qualified
        or (members is None and qualified.startswith(f"{target}."))
        or (members is not None and target == module and short in members)
        for target, members in _documented()
    ), f"smol_align.{name} ({qualified}) is on no page of docs/reference/: add it to a `::: ...` block"


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_page_tells_how_the_project_was_built(page):
    text = page.read_text()
    found = [
        f"line {text[: m.start()].count(chr(10)) + 1}: {m.group(0)!r}"
        for pattern in HISTORY
        for m in re.finditer(pattern, text, re.I)
    ]
    assert not found, (
        f"{page.relative_to(ROOT)} tells the project's history ({'; '.join(found)}): say what the tool does and "
        "what it measures now; how it came to be belongs in git and CHANGELOG.md"
    )


def test_readme_is_a_five_minute_read():
    lines = len((ROOT / "README.md").read_text().splitlines())
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines (at most {README_MAX_LINES}): the rest belongs on the docs pages"
    )
