"""Parsed recipes are cached by their text: the same tree comes back, and a bad entry is remade."""

from __future__ import annotations

from pathlib import Path

from kbuild.lang.parse import ParseCache, parse

TEXT = 'image(name = "x", packages = {"deb": ["curl"]})\n'


def test_a_cached_tree_is_the_parsed_tree(tmp_path: Path) -> None:
    cache = ParseCache(tmp_path)
    first = cache.parse(TEXT, "x.kb")
    entries = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(entries) == 1
    again = cache.parse(TEXT, "x.kb")
    assert again == first == parse(TEXT, "x.kb")
    assert again is not first  # read back from the entry
    assert again.children[0].meta.line == 1  # positions survive


def test_a_damaged_entry_is_parsed_again(tmp_path: Path) -> None:
    cache = ParseCache(tmp_path)
    cache.parse(TEXT, "x.kb")
    [entry] = [p for p in tmp_path.rglob("*") if p.is_file()]
    entry.write_bytes(b"not a pickle")
    assert cache.parse(TEXT, "x.kb") == parse(TEXT, "x.kb")
    other = 'image(name = "y")\n'
    assert cache.parse(other, "y.kb") == parse(other, "y.kb")  # another text, another entry
