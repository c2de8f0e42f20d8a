# Copyright (c) tlsops.haproxy_acme contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The guides of docs/*.md as the collection's extra docs (docs/docsite/rst/*.rst).

The Markdown files are the source: GitHub shows them and README.md links them. The
docs site (antsibull-docs) takes extra docs only as reStructuredText under
docs/docsite/rst/, listed in docs/docsite/extra-docs.yml, so this writes one .rst per
guide named there. ``make docs`` runs it; ``--check`` (the docs stage of make test)
fails when a written file is not what the Markdown gives.

Covers the Markdown the guides use (CommonMark with tables, parsed by markdown-it-py):
headings, paragraphs, nested lists, fenced code, tables, inline code, strong, emphasis
and links. A link to another guide becomes a :ref: to its page; a link to a file that
is not a guide becomes the file's path.

Usage: python scripts/md2rst.py [--check] [--out DIR]
  --out DIR  write the .rst files into DIR instead of docs/docsite/rst (the docs build
             writes them into its installed copy of the collection, so the site always
             shows the guides as they are)
"""

from __future__ import annotations

import argparse
import posixpath
import sys
from pathlib import Path

import yaml
from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
OUT = DOCS / "docsite" / "rst"
INDEX = DOCS / "docsite" / "extra-docs.yml"
LABEL = "ansible_collections.tlsops.haproxy_acme.docsite."
REPOSITORY = "https://github.com/tlsops/haproxy_acme/blob/main/"
ADORNMENTS = "=-~^\"'"
# Characters after which inline markup may start, and before which it may end (docutils' rules).
START_OK = set(" \n\t-:/'\"<([{")
END_OK = set(" \n\t-.,:;!?\\/'\")]}>")


def escape(text: str) -> str:
    out = []
    for i, ch in enumerate(text):
        nxt = text[i + 1] if i + 1 < len(text) else " "
        if ch in "\\*`|":
            out.append("\\" + ch)
        elif ch == "_" and not (nxt.isalnum() or nxt == "_"):
            out.append("\\_")  # word_ is a reference in RST
        else:
            out.append(ch)
    return "".join(out)


def plain(node: SyntaxTreeNode) -> str:
    if node.type in ("text", "code_inline"):
        return node.content
    if node.type in ("softbreak", "hardbreak"):
        return " "
    return "".join(plain(c) for c in node.children)


class Converter:
    def __init__(self, name: str, guides: set[str]) -> None:
        self.name = name
        self.guides = guides
        self.levels: list[int] = []

    # ---- inline -------------------------------------------------------------------------
    def inline(self, nodes: list[SyntaxTreeNode]) -> str:
        pieces: list[tuple[str, bool]] = []  # (text, is_markup)
        for node in nodes:
            pieces.extend(self.inline_node(node))
        out = ""
        for i, (text, markup) in enumerate(pieces):
            if markup:
                if out and out[-1] not in START_OK:
                    out += "\\ "
                out += text
                nxt = pieces[i + 1][0] if i + 1 < len(pieces) else ""
                if nxt and nxt[0] not in END_OK:
                    out += "\\ "
            else:
                out += text
        return out

    def inline_node(self, node: SyntaxTreeNode) -> list[tuple[str, bool]]:
        handler = {
            "text": lambda n: [(escape(n.content), False)],
            "softbreak": lambda n: [("\n", False)],
            "hardbreak": lambda n: [("\n", False)],
            "code_inline": self.code,
            "strong": self.emphasis,
            "em": self.emphasis,
            "link": self.link,
            "image": lambda n: [(escape(plain(n)), False)],
        }.get(node.type)
        if handler is None:
            raise ValueError(f"docs/{self.name}.md: unsupported inline element {node.type}")
        return handler(node)

    @staticmethod
    def code(node: SyntaxTreeNode) -> list[tuple[str, bool]]:
        content = node.content
        if content.strip() != content or "``" in content:
            return [(escape(content), False)]
        return [(f"``{content}``", True)]

    def emphasis(self, node: SyntaxTreeNode) -> list[tuple[str, bool]]:
        mark = "**" if node.type == "strong" else "*"
        if all(c.type == "text" for c in node.children):
            return [(mark + escape(plain(node)) + mark, True)]
        return [p for c in node.children for p in self.inline_node(c)]  # RST does not nest markup

    def link(self, node: SyntaxTreeNode) -> list[tuple[str, bool]]:
        href = str(node.attrs.get("href", ""))
        text = plain(node)
        title = text.replace("\\", "\\\\").replace("<", "\\<").replace("`", "\\`")
        if "://" in href or href.startswith("mailto:"):
            return [(f"`{title} <{href}>`__", True)]
        path = href.split("#", 1)[0]
        if not path:  # an anchor in the same guide
            return [(escape(text), False)]
        target = posixpath.normpath(posixpath.join("docs", path))
        stem = target[len("docs/"):-len(".md")] if target.startswith("docs/") and target.endswith(".md") else None
        if stem in self.guides:
            return [(f":ref:`{title} <{LABEL}{stem}>`", True)]
        # A file of the collection that is no page of the site: its path, linked to the repository.
        return [(f"`{title} <{REPOSITORY}{target}>`__", True)]

    # ---- blocks -------------------------------------------------------------------------
    def blocks(self, nodes: list[SyntaxTreeNode]) -> list[str]:
        out: list[str] = []
        for node in nodes:
            text = self.block(node)
            if text is not None:
                out.append(text)
        return out

    def block(self, node: SyntaxTreeNode) -> str | None:
        handler = {
            "heading": self.heading,
            "paragraph": lambda n: self.inline(n.children[0].children),
            "fence": self.fence,
            "code_block": self.fence,
            "bullet_list": lambda n: "\n\n".join(self.item("- ", item) for item in n.children),
            "ordered_list": self.ordered,
            "table": self.table,
            "hr": lambda n: "----",
            "blockquote": lambda n: indent("\n\n".join(self.blocks(n.children)), "   "),
            "html_block": lambda n: None,
        }.get(node.type)
        if handler is None:
            raise ValueError(f"docs/{self.name}.md: unsupported block {node.type}")
        return handler(node)

    def heading(self, node: SyntaxTreeNode) -> str:
        # RST takes levels from the order adornments appear in: never skip one.
        level = int(node.tag[1])
        while self.levels and self.levels[-1] >= level:
            self.levels.pop()
        self.levels.append(level)
        title = self.inline(node.children[0].children).replace("\n", " ")
        return title + "\n" + ADORNMENTS[len(self.levels) - 1] * max(len(title), 4)

    @staticmethod
    def fence(node: SyntaxTreeNode) -> str:
        lang = (node.info or "").strip().split(" ")[0] or "text"
        body = "\n".join(("   " + line) if line else "" for line in node.content.rstrip("\n").split("\n"))
        return f".. code-block:: {lang}\n\n{body}"

    def ordered(self, node: SyntaxTreeNode) -> str:
        start = int(str(node.attrs.get("start", 1)))
        return "\n\n".join(self.item(f"{start + i}. ", item) for i, item in enumerate(node.children))

    def item(self, marker: str, node: SyntaxTreeNode) -> str:
        body = "\n\n".join(self.blocks(node.children)) or escape("")
        return marker + indent(body, " " * len(marker))[len(marker):]

    def table(self, node: SyntaxTreeNode) -> str:
        rows: list[list[str]] = []
        header = 0
        for section in node.children:
            for tr in section.children:
                rows.append([self.inline(cell.children[0].children if cell.children else []).replace("\n", " ")
                             or " " for cell in tr.children])
                if section.type == "thead":
                    header += 1
        lines = [".. list-table::", f"   :header-rows: {header}", ""]
        for row in rows:
            for i, cell in enumerate(row):
                lines.append(("   * - " if i == 0 else "     - ") + cell)
        return "\n".join(lines)

    def convert(self, markdown: str) -> str:
        tree = SyntaxTreeNode(MarkdownIt("commonmark").enable("table").parse(markdown))
        body = "\n\n".join(self.blocks(tree.children))
        head = (f"..\n  Generated from docs/{self.name}.md by scripts/md2rst.py (make docs): edit that file.\n\n"
                f".. _{LABEL}{self.name}:\n\n")
        return head + body + "\n"


def indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line if line else "" for line in text.split("\n"))


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def guides() -> list[str]:
    index = yaml.safe_load(INDEX.read_text())
    return [entry if isinstance(entry, str) else entry["ref"]
            for section in index["sections"] for entry in section["toctree"]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; fail if a file is out of date")
    parser.add_argument("--out", type=Path, default=OUT, help="directory to write to (default: docs/docsite/rst)")
    args = parser.parse_args()
    out = args.out.resolve()
    names = guides()
    wanted = {out / f"{name}.rst": Converter(name, set(names)).convert((DOCS / f"{name}.md").read_text())
              for name in names}
    stale = [path for path, text in wanted.items() if not path.exists() or path.read_text() != text]
    extra = [path for path in out.glob("*.rst") if path not in wanted] if out.exists() else []
    unlisted = sorted(p.stem for p in DOCS.glob("*.md") if p.stem not in names)
    if unlisted:
        print(f"md2rst: docs/{{{','.join(unlisted)}}}.md not in docs/docsite/extra-docs.yml", file=sys.stderr)
    if args.check:
        for path in stale + extra:
            print(f"md2rst: {shown(path)} is out of date: run make docs and commit it", file=sys.stderr)
        return 1 if stale or extra or unlisted else 0
    out.mkdir(parents=True, exist_ok=True)
    for path in stale:
        path.write_text(wanted[path])
        print(f"md2rst: wrote {shown(path)}")
    for path in extra:
        path.unlink()
        print(f"md2rst: removed {shown(path)}")
    return 1 if unlisted else 0


if __name__ == "__main__":
    sys.exit(main())
