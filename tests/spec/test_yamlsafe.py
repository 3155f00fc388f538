"""The event-based YAML builder: same values as PyYAML, positions, refusals."""

from __future__ import annotations

from unittest.mock import patch

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.spec import yamlsafe
from reconciler.spec.yamlsafe import check_text, locate_nodes, parse_yaml


def data_of(text: str) -> list[object]:
    parsed = parse_yaml(text.encode(), path="f", max_depth=32)
    assert parsed.diagnostics == ()
    return [document.data for document in parsed.documents]


def test_values_match_pyyaml_yaml11_resolution() -> None:
    text = (
        "a: no\nb: on\nc: 1:30\nd: 0755\ne: 1.10\nf: 2024-01-01\ng: 2024-01-01 10:00:00+02:00\n"
        "h: ~\ni:\nj: 0x1f\nk: 1_000\nl: .inf\nm: 'no'\nn: \"0755\"\n"
        "o: |\n  block\np: [1, x, {q: r}]\n"
        "<<: merge-key-as-text\n"
    )
    expected = yaml.load(text.replace("<<: merge-key-as-text\n", ""), Loader=yaml.CSafeLoader)
    (ours,) = data_of(text)
    assert isinstance(ours, dict)
    assert ours.pop("<<") == "merge-key-as-text"
    assert ours == expected


def test_several_documents_and_their_positions() -> None:
    parsed = parse_yaml(b"# c\na: 1\n---\n\n  - x\n...\n---\nname: n\n", path="f", max_depth=32)
    assert [(d.data, d.line, d.column) for d in parsed.documents] == [
        ({"a": 1}, 2, 1),
        (["x"], 5, 3),
        ({"name": "n"}, 8, 1),
    ]
    assert (parsed.documents[2].name_line, parsed.documents[2].name_column) == (8, 1)


def test_node_index_has_value_and_key_positions() -> None:
    (index,) = locate_nodes(b"a:\n  - x\n  - {b: 'q', c: [d]}\n", max_depth=32)
    assert {path: (n.line, n.column, n.key_line, n.key_column) for path, n in index.items()} == {
        (): (1, 1, 1, 1),
        ("a",): (2, 3, 1, 1),
        ("a", 0): (2, 5, 2, 5),
        ("a", 1): (3, 5, 3, 5),
        ("a", 1, "b"): (3, 9, 3, 6),
        ("a", 1, "c"): (3, 17, 3, 14),
        ("a", 1, "c", 0): (3, 18, 3, 18),
    }
    assert index[("a", 0)].plain and not index[("a", 1, "b")].plain


def test_columns_count_characters_not_bytes() -> None:
    (index,) = locate_nodes("é: [ü, x]\n".encode(), max_depth=32)
    assert (index[("é", 1)].line, index[("é", 1)].column) == (1, 8)


def test_nesting_limit_is_exact() -> None:
    ok = parse_yaml(b"[" * 4 + b"]" * 4, path="f", max_depth=4)
    deep = parse_yaml(b"[" * 5 + b"]" * 5, path="f", max_depth=4)
    assert ok.diagnostics == () and ok.documents[0].data == [[[[]]]]
    assert [(d.line, d.column, d.code) for d in deep.diagnostics] == [(1, 5, "NESTING_TOO_DEEP")]


def test_structural_problems_mark_only_their_document_unclean() -> None:
    parsed = parse_yaml(b"a: 1\n---\nb: !!str 2\n---\nc: 3\n", path="f", max_depth=32)
    assert [d.clean for d in parsed.documents] == [True, False, True]


def test_bom_is_accepted_and_nel_is_not_a_control_character() -> None:
    assert check_text("\ufeffa: b\u0085c\n".encode(), path="f") is None


def test_control_byte_position_is_reported() -> None:
    diagnostic = check_text(b"a: 1\nbb: \x07\n", path="f")
    assert diagnostic is not None
    assert (diagnostic.line, diagnostic.column, diagnostic.code) == (2, 5, "BINARY_FILE")


# Plain scalars a builder may remember (or must report at every occurrence): text, YAML
# 1.1 forms YAML 1.2 reads otherwise, conversions that fail, dates, numbers.
_SCALARS = (
    "x", "no", "On", "0755", "08", "1.10", "2.5", "1e3", "0o17", "0x1F", "~", "null",
    "2024-01-01", "2024-02-30", "2024-01-01 10:00:00+02:00", "1:30", "1_000", ".inf",
    ".nan", "12345678901234567890123", "true", "y", "-1", "+2.0",
)  # fmt: skip


@given(
    st.lists(
        st.tuples(
            st.sampled_from(("a", "kwargs", "args", "at", "pin", "no", "1", "0755")),
            st.lists(st.sampled_from(_SCALARS), min_size=1, max_size=4),
        ),
        min_size=1,
        max_size=12,
    ),
    st.integers(min_value=1, max_value=3),
)
@settings(max_examples=150, deadline=None)
def test_remembered_scalars_read_as_resolved_each_time(
    fields: list[tuple[str, list[str]]], documents: int
) -> None:
    """The builder remembers what a plain scalar text resolved to (per parse): the
    documents, values, diagnostics and positions are exactly those of a parse that
    remembers nothing, however often a text repeats, as a key or a value, inside a
    free-form field or not."""
    lines = []
    for key, values in fields:
        lines.append(f"{key}: {values[0]}")
        lines.append(f"{key}_list: [{', '.join(values)}]")
        lines.append(f"{key}_map:\n" + "".join(f"  {v}: {v}\n" for v in values).rstrip("\n"))
    text = "---\n".join(["\n".join(lines) + "\n"] * documents).encode()
    remembered = parse_yaml(text, path="f.yaml", max_depth=32)
    with patch.object(yamlsafe, "_REMEMBERED", 0):
        fresh = parse_yaml(text, path="f.yaml", max_depth=32)
    assert repr(remembered) == repr(fresh)
