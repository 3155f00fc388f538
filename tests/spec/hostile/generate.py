"""The hostile corpus: files that have hurt YAML loaders, written at test time.

Nothing here is committed as data: `write_corpus` builds every file in a temporary
folder (the 50 MB one included), and returns what each must be refused with.
Run as a script to look at them: `python -m tests.spec.hostile.generate DIR`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path


def valid_job(name: str) -> bytes:
    """A valid job document; each file uses its own name (no duplicates in the corpus)."""
    return f"name: {name}\ntask: reconciler.tasks.x\nschedule: {{cron: '*/5 * * * *'}}\n".encode()


SECRET = "hunter2-do-not-print"


@dataclass(frozen=True)
class HostileFile:
    """A file (relative to the corpus folder) and the code it must be refused with."""

    name: str
    code: str
    why: str


def _alias_bomb() -> bytes:
    # The "billion laughs": 9 levels of 9 aliases each, 478 bytes, 387 million leaves.
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, 9):
        refs = ",".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return ("\n".join(lines) + "\n").encode()


def _impossible_crons(count: int) -> bytes:
    # Distinct expressions (no memo helps): 30/31 February at every minute of the day.
    documents = [
        f"name: never-{n}\ntask: reconciler.tasks.x\n"
        f"schedule: {{cron: '{n % 60} {n // 60 % 24} {30 + n // 1440 % 2} 2 *'}}\n"
        for n in range(count)
    ]
    return "---\n".join(documents).encode()


def _deep_block(depth: int) -> bytes:
    # One space per level keeps it small: 500 levels are 130 KB.
    return b"".join(b" " * level + b"k:\n" for level in range(depth)) + b" " * depth + b"x\n"


CORPUS: dict[str, tuple[str, str]] = {
    # name: (code, why)
    "alias-bomb.yaml": ("YAML_ALIAS", "billion laughs: explodes when walked or dumped"),
    "alias-flood.yaml": ("YAML_ALIAS", "200,000 aliases: the report must stay short"),
    "impossible-crons.yaml": ("CRON_NEVER_FIRES", "3,000 distinct crons that never fire"),
    "deep-flow.yaml": ("NESTING_TOO_DEEP", "50,000 nested '[': CSafeLoader segfaults"),
    "deep-flow-map.yaml": ("NESTING_TOO_DEEP", "50,000 nested '{a: '"),
    "deep-block.yaml": ("NESTING_TOO_DEEP", "500 levels of block mappings"),
    "deep-compact.yaml": ("NESTING_TOO_DEEP", "50,000 '- ' on one line"),
    "huge.yaml": ("FILE_TOO_LARGE", "50 MB: took 52 s and 1.9 GB to parse"),
    "duplicate-keys.yaml": ("DUPLICATE_KEY", "the last key silently wins"),
    "python-tag.yaml": ("YAML_TAG", "!!python/object/apply runs code in unsafe loaders"),
    "custom-tag.yaml": ("YAML_TAG", "a local tag"),
    "str-tag.yaml": ("YAML_TAG", "even !!str: tags are not part of the format"),
    "binary.yaml": ("BINARY_FILE", "NUL bytes"),
    "latin1.yaml": ("NOT_UTF8", "ISO-8859-1 text"),
    "utf16.yaml": ("NOT_UTF8", "UTF-16 with a BOM (no NUL: all non-ASCII)"),
    "empty.yaml": ("EMPTY_FILE", "zero bytes"),
    "comments-only.yaml": ("EMPTY_FILE", "comments and blank documents only"),
    "secret-syntax.yaml": ("YAML_SYNTAX", "a syntax error on a line holding a secret"),
    "not-a-mapping.yaml": ("NOT_A_MAPPING", "a list of jobs instead of documents"),
    "escape-link.yaml": ("SYMLINK_REFUSED", "a symlink to /etc/passwd"),
    "fifo.yaml": ("FILE_UNREADABLE", "a FIFO: reading it would block forever"),
}


def write_corpus(folder: Path, *, huge_bytes: int = 50 * 1024 * 1024) -> list[HostileFile]:
    """Write every hostile file into `folder` (created); return them with their codes."""
    folder.mkdir(parents=True, exist_ok=True)
    contents: dict[str, bytes] = {
        "alias-bomb.yaml": _alias_bomb(),
        "alias-flood.yaml": b"a: &a x\nb: [" + b"*a, " * 200_000 + b"]\n",
        "impossible-crons.yaml": _impossible_crons(3_000),
        "deep-flow.yaml": b"[" * 50_000,
        "deep-flow-map.yaml": b"{a: " * 50_000,
        "deep-block.yaml": _deep_block(500),
        "deep-compact.yaml": b"- " * 50_000 + b"x\n",
        "duplicate-keys.yaml": valid_job("duplicate-keys") + b"task: celery.backend_cleanup\n",
        "python-tag.yaml": valid_job("python-tag")
        + b"args: [!!python/object/apply:os.system ['true']]\n",
        "custom-tag.yaml": valid_job("custom-tag") + b"kwargs: !vault {path: secret}\n",
        "str-tag.yaml": valid_job("str-tag") + b"description: !!str 42\n",
        "binary.yaml": bytes(range(256)) * 4,
        "latin1.yaml": valid_job("latin1") + "description: café crème\n".encode("latin-1"),
        "utf16.yaml": "\ufeffdescription: ünïcödé\n".encode("utf-16-le").replace(b"\x00", b""),
        "empty.yaml": b"",
        "comments-only.yaml": b"# nothing here\n---\n# nor here\n---\n",
        "secret-syntax.yaml": f"name: x\nkwargs: {{password: {SECRET}: [}}\n".encode(),
        "not-a-mapping.yaml": b"- " + valid_job("not-a-mapping").replace(b"\n", b"\n  "),
    }
    for name, data in contents.items():
        (folder / name).write_bytes(data)
    _write_huge(folder / "huge.yaml", huge_bytes)
    link = folder / "escape-link.yaml"
    if not link.is_symlink():
        link.symlink_to("/etc/passwd")
    fifo = folder / "fifo.yaml"
    if not fifo.exists():
        os.mkfifo(fifo)
    return [HostileFile(name, code, why) for name, (code, why) in CORPUS.items()]


def _write_huge(path: Path, size: int) -> None:
    # Valid YAML all the way (one huge list of jobs' worth of text), written in chunks.
    chunk = b"- " + b"x" * 1022 + b"\n"
    with path.open("wb") as handle:
        handle.write(b"args:\n")
        for _ in range(size // len(chunk) + 1):
            handle.write(chunk)


if __name__ == "__main__":
    for item in write_corpus(Path(sys.argv[1])):
        print(f"{item.name:24} {item.code:18} {item.why}")
