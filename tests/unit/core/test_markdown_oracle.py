"""The Markdown plan (a pull-request comment) read by a parser we did not write:
markdown-it-py, CommonMark with GFM tables (and GFM's strikethrough), over plans whose
paths, field keys and values, diagnostics and row ids are hostile (hostile_plans.py).

Whatever they hold, the comment keeps its shape: one table row per folder and per
change, four cells a change row, each cell showing its value as written (the source
path as code, the reason as text, both in `printable`'s form); one ```diff block
holding every field line and nothing after it; no HTML but the comment's own
<details>, no link, no image, no emphasis from a value. What this found, before the
fix: a path with `|` or a backtick broke its row, a reason's `<img>` was live HTML,
its `[x](url)` a link, its `*b*` emphasis; a field key holding a line break and
three backticks closed the ```diff block, the rest of the plan read as Markdown.
"""

from __future__ import annotations

import re

from hypothesis import HealthCheck, example, given, settings
from markdown_it import MarkdownIt
from markdown_it.token import Token

from reconciler.core import render
from reconciler.core.plan import Plan
from reconciler.core.render import render_markdown
from reconciler.printable import printable
from reconciler.spec.diagnostics import Diagnostic
from tests.unit.core.hostile_plans import hostile_plans
from tests.unit.core.planning import applied, desired, plan, spec

PARSER = MarkdownIt("commonmark").enable(["table", "strikethrough"])
OUR_HTML = ["<details><summary>Field changes and next fire times</summary>\n", "</details>\n"]
# What no value may become, anywhere in the comment.
LIVE = {"html_inline", "link_open", "image", "em_open", "s_open"}
# A character a terminal or a bidi algorithm obeys (a line break only between lines).
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def tables(tokens: list[Token]) -> list[list[list[Token]]]:
    """Each table's rows (header first), each row its cells' inline tokens."""
    found: list[list[list[Token]]] = []
    opens_a_cell = False
    for token in tokens:
        if token.type == "table_open":
            found.append([])
        elif token.type == "tr_open":
            found[-1].append([])
        elif token.type == "inline" and opens_a_cell:
            found[-1][-1].append(token)
        opens_a_cell = token.type in ("th_open", "td_open")
    return found


def text_of(inline: Token) -> str:
    return "".join(child.content for child in inline.children or [])


def kinds(inline: Token) -> list[str]:
    return [child.type for child in inline.children or []]


def every_child(tokens: list[Token]) -> list[Token]:
    return [child for token in tokens for child in (token.children or [])]


def assert_reads_as_meant(result: Plan) -> None:
    text = render_markdown(result)
    tokens = PARSER.parse(text)
    changes = result.changes

    assert not LIVE & {child.type for child in every_child(tokens)}
    assert [t.content for t in tokens if t.type == "html_block"] == (
        OUR_HTML if result.has_changes else []
    )
    found = tables(tokens)
    assert len(found) == (0 if not changes else 2 if len(changes) >= render.SUMMARY_FROM else 1)
    if changes:
        assert_changes_table(result, found[-1])
        if len(found) == 2:
            assert_summary_table(result, found[0])
        assert_diff_block(result, tokens)
    assert_trailer(result, tokens)


def assert_changes_table(result: Plan, table: list[list[Token]]) -> None:
    header, *rows = table
    assert [text_of(cell) for cell in header] == ["action", "job", "source", "reason"]
    assert len(rows) == len(result.changes)
    for row, change in zip(rows, result.changes, strict=True):
        assert len(row) == 4
        action, job, source, reason = row
        assert text_of(action) == f"{change.action.symbol} {change.action}"
        renamed = f" (was {change.renamed_from})" if change.renamed_from else ""
        assert text_of(job) == change.job + renamed
        # The path as code, exactly its printable form.
        assert kinds(source) == ["code_inline"]
        assert text_of(source) == printable(change.source or "")
        # The reason as plain text, exactly its printable form.
        assert set(kinds(reason)) <= {"text"}
        assert text_of(reason) == printable(change.reason)


def assert_summary_table(result: Plan, table: list[list[Token]]) -> None:
    header, *rows, total = table
    folders = sorted({render._folder(change.source) for change in result.changes})
    assert len(rows) == len(folders)
    for row, folder in zip(rows, folders, strict=True):
        assert len(row) == len(header)
        assert kinds(row[0]) == ["code_inline"]
        assert text_of(row[0]) == printable(folder)
        assert all(text_of(cell).isdigit() for cell in row[1:])
    assert text_of(total[0]) == "total"
    assert text_of(total[-1]) == str(len(result.changes))


def assert_diff_block(result: Plan, tokens: list[Token]) -> None:
    fences = [token for token in tokens if token.type in ("fence", "code_block")]
    assert len(fences) == 1
    assert fences[0].info == "diff"
    lines = render._markdown_diff(result)
    assert fences[0].content == "\n".join(lines) + "\n"
    assert not CONTROL.search(fences[0].content.replace("\n", ""))
    heads = [line for line in lines if re.match(r"[-+!] [a-z]+ ", line)]
    assert len(heads) == len(result.changes)


def assert_trailer(result: Plan, tokens: list[Token]) -> None:
    """The quarantined files one item each, the foreign rows as text, the plan's hash
    last (nothing before swallowed it)."""
    items = [
        tokens[index + 2]
        for index, token in enumerate(tokens)
        if token.type == "list_item_open" and tokens[index + 2].type == "inline"
    ]
    diagnostics = [
        diagnostic.render()
        for path in sorted(result.quarantined)
        for diagnostic in result.quarantined[path]
    ]
    assert [text_of(item) for item in items[: len(diagnostics)]] == diagnostics
    assert all(kinds(item) == ["code_inline"] for item in items[: len(diagnostics)])
    paragraphs = [t for t in tokens if t.type == "inline" and t.level == 1]
    if result.foreign:
        foreign = [p for p in paragraphs if text_of(p).startswith("Foreign scheduler rows")]
        assert len(foreign) == 1 and set(kinds(foreign[0])) == {"text"}
        shown = ", ".join(map(printable, result.foreign))
        assert text_of(foreign[0]) == "Foreign scheduler rows (left alone): " + shown
    assert kinds(paragraphs[-1]) == ["text", "code_inline"]
    assert text_of(paragraphs[-1]) == f"Plan hash: {result.plan_hash}"


def _one_hostile_plan() -> Plan:
    """The cases found first, one of each."""
    path = "we`ird|<img src=x onerror=alert(1)>/[l](http://e) *b* _i_ \x1b[31m\u202e```.yaml"
    job = spec(
        "a",
        description="x\n```\n</details><script>1</script>",
        kwargs={"k`\n```\ny": "```", "e": "\x1b[2J\u202e\x9b"},
    )
    quarantined = {"q|`x`\n- y.yaml": (Diagnostic("q|`x`\n- y.yaml", 1, 1, "SCHEMA", "`*a*`"),)}
    state = desired(job, spec("b"), sources={"a": path, "b": "ok/b.yaml"}, quarantined=quarantined)
    return plan(state, applied(spec("b"), sources={"b": "was|<b>/b.yaml"}))


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@example(result=_one_hostile_plan())
@given(result=hostile_plans())
def test_a_hostile_plan_reads_as_meant(result: Plan) -> None:
    assert_reads_as_meant(result)


def test_the_varied_plan_reads_as_meant() -> None:
    from tests.unit.core.test_render_varied import varied_plan

    assert_reads_as_meant(varied_plan())
