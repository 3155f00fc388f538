"""Random plans whose file paths, field keys and values, quarantine diagnostics and
foreign row ids are hostile: Markdown syntax (fences, pipes, links, images, HTML,
emphasis, entities), terminal controls (ESC sequences, BEL, CR, C1's CSI), bidi
overrides and isolates, backslashes, non-ASCII. A path holds any character but `/`
and NUL (what Linux allows in a file name); the reasons quote the paths and keys.
Used by the oracles of the Markdown (test_markdown_oracle.py) and text
(test_printable_text.py) outputs."""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import strategies as st

from reconciler.core.plan import Plan
from reconciler.spec.diagnostics import Diagnostic
from reconciler.spec.model import JobSpec
from tests.unit.core.planning import applied, desired, foreign_row, plan, spec, with_rows

PIECES = [
    "```",
    "````diff",
    "\n```\n",
    "~~~",
    "</details>",
    "<details>",
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "<!-- c -->",
    "[x](https://evil.example)",
    "![i](https://evil.example/i.png)",
    "[r]: https://evil.example",
    "<https://evil.example>",
    "&lt;b&gt;",
    "&#96;",
    "*b*",
    "**s**",
    "_i_",
    "__u__",
    "~~del~~",
    "$x$",
    "a|b",
    "|",
    "\\|",
    "\\",
    "\\`",
    "`",
    "``",
    " ",
    "\u00a0",
    "\u3000",
    "# h",
    "- item",
    "1. x",
    "> q",
    "---",
    "@user",
    "\x1b[31m",
    "\x1b]8;;https://evil.example\x07link\x1b]8;;\x07",
    "\x1b[2J",
    "\r",
    "\n",
    "\r\n",
    "\t",
    "\x07",
    "\x7f",
    "\x9b31m",
    "\x85",
    "\u061c",
    "\u200f",
    "\u202e",
    "\u2066",
    "\u2069",
    "\u2028",
    "ünï",
    "✓",
]
_ALPHABET = "`|*_[]()<>&!~$\\#-+=:. \n\r\t\x1b\x07\x7f\x9b\u202e\u2067aZ1ü"

hostile_text = st.lists(
    st.sampled_from(PIECES) | st.text(alphabet=_ALPHABET, min_size=1, max_size=3),
    min_size=1,
    max_size=4,
).map("".join)
# One name of a path (no `/`, no NUL), never empty.
path_names = hostile_text.map(lambda text: text.replace("/", "").replace("\x00", "") or "x")
sources = st.builds(
    lambda folders, stem, name: "/".join([*folders, f"{stem}{name}.yaml"]),
    st.lists(path_names | st.sampled_from(["team-a", "team b"]), max_size=2),
    path_names | st.just(""),
    st.sampled_from(["", "-job"]),
)
json_values = st.recursive(
    st.none() | st.integers(-2, 2) | st.booleans() | hostile_text,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(hostile_text, inner, max_size=2),
    max_leaves=4,
)
NAMES = [f"job-{n}" for n in range(6)]


@st.composite
def hostile_specs(draw: st.DrawFn, name: str) -> JobSpec:
    fields: dict[str, Any] = {}
    if draw(st.booleans()):
        fields["description"] = draw(hostile_text)
    if draw(st.booleans()):
        fields["labels"] = draw(st.dictionaries(hostile_text, hostile_text, max_size=2))
    if draw(st.booleans()):
        fields["kwargs"] = draw(st.dictionaries(hostile_text, json_values, max_size=2))
    if draw(st.booleans()):
        fields["args"] = draw(st.lists(json_values, max_size=2))
    fields["paused"] = draw(st.booleans())
    return spec(name, **fields)


@st.composite
def hostile_plans(draw: st.DrawFn) -> Plan:
    """Adds, updates (fields changed, moved to another file), pauses, resumes, renames,
    removes, repairs of quarantined files' jobs, foreign rows; at times repeated to 20
    changes and more (the summary table by folder)."""
    before = [draw(hostile_specs(n)) for n in sorted(draw(st.sets(st.sampled_from(NAMES))))]
    after = [draw(hostile_specs(n)) for n in sorted(draw(st.sets(st.sampled_from(NAMES))))]
    gone = sorted({s.name for s in before} - {s.name for s in after})
    if gone and draw(st.booleans()):
        after.append(spec("renamed", previous_names=[gone[0]]))
    after_sources = {s.name: draw(sources) for s in after}
    before_sources = {
        s.name: draw(st.sampled_from([after_sources.get(s.name, "x.yaml"), "old.yaml"]))
        for s in before
    }
    quarantined = {}
    for path in draw(st.lists(sources, max_size=2, unique=True)):
        message = draw(hostile_text)
        quarantined[path] = (Diagnostic(path, 1, 2, "YAML_SYNTAX", message),)
    foreign = {row_id: foreign_row(row_id) for row_id in draw(st.lists(hostile_text, max_size=2))}
    actual = with_rows(applied(*before, sources=before_sources), **foreign)
    state = desired(*after, quarantined=quarantined, sources=after_sources)
    result = plan(state, actual, allow_mass_delete=True)
    repeat = draw(st.sampled_from([1, 1, 4]))
    if repeat > 1 and result.changes:
        result = dataclasses.replace(result, changes=result.changes * repeat)
    return result
