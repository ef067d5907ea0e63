"""MkDocs hook (mkdocs.yml `hooks:`): the API pages show the docstrings' Sphinx roles as plain code.

The docstrings name other objects as Sphinx does (:func:`load`, :class:`~smol_align.data.Pairs`), which
mkdocstrings renders as the role's text before the code: ":func:load". This drops the role and, as Sphinx does
for a leading ``~``, shows only the last part of the name; a paragraph that ends in reST's ``::`` before a code
block ends in one colon.
"""

import re

ROLE = re.compile(r":(?:func|class|meth|mod|data|attr|exc|obj):<code>(~?)([^<]*)</code>")


def _code(match: re.Match) -> str:
    name = match.group(2).rsplit(".", 1)[-1] if match.group(1) else match.group(2)
    return f"<code>{name}</code>"


def on_page_content(html: str, **kwargs) -> str:
    return ROLE.sub(_code, html).replace("::</p>", ":</p>")
