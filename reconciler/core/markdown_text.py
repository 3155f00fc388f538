"""Text from outside placed in Markdown (CommonMark with GFM tables) as text: a file's
path, a reason quoting one, a row id. Whatever it holds, it stays in its table cell,
list item or fence, shows as the text itself (`printable`'s form), and never becomes
HTML, a link, an image, emphasis or code. Text without a character Markdown reads
(nearly every one) is written as it is.
"""

from __future__ import annotations

import re

from reconciler.printable import printable

# A character Markdown reads in running text: escaped with a backslash (CommonMark
# escapes any ASCII punctuation). `>` alone opens nothing once `<` is escaped (plans
# say `a -> b`); `_` between two letters or digits opens and closes no emphasis
# (`apscheduler_jobs`); `$` is GitHub's inline math. Controls go to `printable` first;
# white space at either end, which a table cell or a paragraph trims, is written as a
# character reference.
_MARKDOWN_CHARACTER = re.compile(r"[\\`*\[\]<&~|$]")
# An `_` not between two letters or digits (`_` first: the search skips to each one).
_LONE_UNDERSCORE = re.compile(r"_(?:(?<![^\W_]_)|(?![^\W_]))")
_TO_ESCAPE = re.compile(f"{_MARKDOWN_CHARACTER.pattern}|{_LONE_UNDERSCORE.pattern}")
_BACKTICKS = re.compile("`+")
# The ASCII characters an ASCII text shown as itself holds none of: those above, `_`
# (then asked about as above), the controls (ASCII's only white space besides the space).
_READ_IN_ASCII = b"\\`*[]<&~|$_" + bytes(range(32)) + b"\x7f"


def inline_text(text: str) -> str:
    """`text` as Markdown text showing `printable(text)`, in a table cell or not."""
    if _reads_as_itself(text):
        return text
    escaped = _TO_ESCAPE.sub(r"\\\g<0>", printable(text))
    middle = escaped.strip()
    if middle == escaped:
        return escaped
    start = escaped.index(middle) if middle else len(escaped)
    end = start + len(middle)
    return _references(escaped[:start]) + middle + _references(escaped[end:])


def _reads_as_itself(text: str) -> bool:
    """Whether Markdown shows `text` as it is (a reason per change of a plan: an ASCII
    text, nearly every one, costs a bytes.translate, under half a regex search)."""
    if text.isascii():
        encoded = text.encode()
        if len(encoded.translate(None, _READ_IN_ASCII)) == len(encoded):
            return text[:1] != " " and text[-1:] != " "
    return (
        text.isprintable()  # false for controls, bidi characters, separators but the space
        and _MARKDOWN_CHARACTER.search(text) is None
        and not (text[:1].isspace() or text[-1:].isspace())
        and ("_" not in text or _LONE_UNDERSCORE.search(text) is None)
    )


def _references(spaces: str) -> str:
    """White space as character references (`&#32;`), kept where it stands."""
    return "".join(f"&#{ord(space)};" for space in spaces)


def code_span(shown: str, *, in_table: bool = False) -> str:
    """A code span showing `shown` (already `printable`): delimited by one backtick
    more than its longest run of them, a space inside each when it starts or ends with
    one (CommonMark strips that space); `|` escaped in a table (GFM splits cells on
    `|` before reading code spans, and turns `\\|` back into `|`)."""
    if (
        "`" not in shown
        and not (in_table and "|" in shown)
        and (shown[:1] != " " or not _stripped_of_a_space(shown))
    ):
        return f"`{shown}`" if shown else ""
    if in_table:
        shown = shown.replace("|", "\\|")
    fence = "`" * (1 + max(map(len, _BACKTICKS.findall(shown)), default=0))
    if shown.startswith("`") or shown.endswith("`") or _stripped_of_a_space(shown):
        shown = f" {shown} "
    return f"{fence}{shown}{fence}"


def _stripped_of_a_space(content: str) -> bool:
    """Whether CommonMark would strip a space from each end of a code span's content."""
    return content.startswith(" ") and content.endswith(" ") and content.strip(" ") != ""


def fence_for(block: str) -> str:
    """A code fence longer than every run of backticks in `block` (three at least)."""
    if "`" not in block or "```" not in block:  # one backtick looked for first: memchr
        return "```"
    return "`" * (1 + max(map(len, _BACKTICKS.findall(block))))
