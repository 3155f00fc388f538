"""The per-job exposition lines a scrape keeps for the next one, compressed in packs.

Why: a scrape at 100,000 jobs writes ~230 MB of text (~2.3 KB a job); rendering it all
costs seconds of CPU, so each job's lines are kept and rendered again only after a write
to the job (reconciler.job_series). Kept as they are, those lines took the daemon from
~0.9 GB to ~1.25 GB resident. zlib at level 1 writes them in ~6 % of the size (the
job's name and the label text repeat line after line), and inflating them back costs a
scrape ~0.25 s of CPU at 100,000 jobs (bench/RESULTS.md).

Layout, one KeptLines per exposition format (the store keeps one):
- the jobs, in the store's order (insertion order), are cut into packs of consecutive
  jobs. A pack keeps, per part (one family's lines, or in the text format a counter's
  `_created` lines), its members' lines one after the other, zlib-compressed, and each
  member's length;
- the jobs after the last pack (the tail: jobs made since) are kept loose (one list of
  bytes per job, as rendered) until there are a pack's worth of them;
- a write to a packed job marks it outdated in its pack: a scrape skips its bytes there
  and writes the job's loose lines instead, rendered again (kept loose too). A pack is
  compressed again ("folded") once enough of its members are loose and quiet (not
  written since the scrape before) or gone, so that the loose lines stay a few per pack;
  a job written at every scrape stays loose (it would be rendered anyway).
So a scrape writes each job's lines in the store's order, as before: packs in order,
then the tail. A removed job's place in its pack stays until the pack is folded (its
bytes skipped); made again, it goes to the tail (the store's order puts it last too).

Every method runs under the store's lock (JobSeries): writers (the dispatcher's threads)
wait for at most one pack's compression (~128 jobs) at a time. A `Plan` is what one
scrape writes: taken at one instant, read later without the lock (packs are never
changed, only replaced; loose lines are never changed, only replaced).
"""

from __future__ import annotations

import zlib
from array import array
from collections.abc import Iterable, Iterator
from itertools import accumulate, islice, pairwise

# Jobs per pack: 128 compress to ~6 % (1,024: 5.7 %); a fold compresses the whole pack.
PACK_SIZE = 128
# zlib's fastest level: 9 saves ~15 % more and costs several times the CPU.
LEVEL = 1

Entry = list[bytes]  # one job's lines: one bytes per part


class Pack:
    """The lines of consecutive jobs, one compressed blob per part. Never changed after it
    is made, except `outdated`: the members whose bytes here are not their lines (written
    since, or removed)."""

    __slots__ = ("blobs", "lengths", "members", "outdated", "sizes")

    def __init__(self, members: tuple[str, ...], entries: list[Entry | None], parts: int):
        """`entries[i]`: the lines of `members[i]`, or None (unknown: outdated)."""
        self.members = members
        self.outdated = {job for job, entry in zip(members, entries, strict=True) if entry is None}
        blobs, lengths, sizes = [], [], []
        for part in range(parts):
            pieces = [b"" if entry is None else entry[part] for entry in entries]
            data = b"".join(pieces)
            blobs.append(zlib.compress(data, LEVEL))
            lengths.append(array("I", map(len, pieces)))
            sizes.append(len(data))
        self.blobs: tuple[bytes, ...] = tuple(blobs)
        self.lengths: tuple[array[int], ...] = tuple(lengths)
        self.sizes: tuple[int, ...] = tuple(sizes)

    def entries(self) -> list[Entry]:
        """Every member's bytes, as kept (an outdated member's are stale)."""
        columns = []
        for blob, lengths in zip(self.blobs, self.lengths, strict=True):
            data = zlib.decompress(blob)
            starts = list(accumulate(lengths, initial=0))
            columns.append([data[start:end] for start, end in pairwise(starts)])
        return [list(entry) for entry in zip(*columns, strict=True)]


class KeptLines:
    """The kept lines of one format (see the module): packs, the tail, the loose lines."""

    def __init__(self, jobs: Iterable[str], parts: int, pack_size: int = PACK_SIZE) -> None:
        self.parts = parts
        self.pack_size = pack_size
        # A pack is folded once this many of its members are loose and quiet, or gone.
        self.fold_at = max(1, pack_size // 8)
        self.tail: dict[str, None] = dict.fromkeys(jobs)
        self.packs: list[Pack] = []
        self.pack_of: dict[str, Pack] = {}
        # job -> (its lines, the scrape that rendered them)
        self.loose: dict[str, tuple[Entry, int]] = {}
        self.scrapes = 0

    # --- the store's writes -----------------------------------------------------------
    def added(self, job: str) -> None:
        """A new job (last in the store's order)."""
        self.tail[job] = None

    def written(self, job: str) -> None:
        """The job's values changed: its lines are to be rendered again."""
        self.loose.pop(job, None)
        pack = self.pack_of.get(job)
        if pack is not None:
            pack.outdated.add(job)

    def removed(self, job: str) -> None:
        self.written(job)
        self.tail.pop(job, None)
        self.pack_of.pop(job, None)

    # --- a scrape ---------------------------------------------------------------------
    def keep(self, job: str, entry: Entry) -> None:
        """`entry`: the job's lines, rendered from its current values."""
        self.loose[job] = (entry, self.scrapes)

    def tail_to_pack(self) -> list[str] | None:
        """The jobs of the next pack to make from the tail, or None (not a pack's worth)."""
        if len(self.tail) < self.pack_size:
            return None
        return list(islice(self.tail, self.pack_size))

    def pack_tail(self) -> None:
        """Make a pack of the first jobs of the tail (one not rendered since its last
        write is outdated in it)."""
        members = tuple(islice(self.tail, self.pack_size))
        pack = Pack(members, [self._take_loose(job) for job in members], self.parts)
        self.packs.append(pack)
        for job in members:
            del self.tail[job]
            self.pack_of[job] = pack

    def foldable(self) -> list[Pack]:
        """The packs to compress again: enough members loose and quiet, or gone."""
        found = []
        for pack in self.packs:
            if len(pack.outdated) < self.fold_at:
                continue
            settled = sum(1 for job in pack.outdated if self._settled(pack, job))
            if settled >= self.fold_at:
                found.append(pack)
        return found

    def _settled(self, pack: Pack, job: str) -> bool:
        if self.pack_of.get(job) is not pack:
            return True  # gone
        kept = self.loose.get(job)
        return kept is not None and kept[1] < self.scrapes

    def fold(self, pack: Pack) -> None:
        """Compress `pack` again: its members' loose lines in, its gone members out."""
        if pack not in self.packs:
            return
        members: list[str] = []
        entries: list[Entry | None] = []
        for job, entry in zip(pack.members, pack.entries(), strict=True):
            if self.pack_of.get(job) is not pack:
                continue
            members.append(job)
            entries.append(self._take_loose(job) if job in pack.outdated else entry)
        if not members:
            self.packs.remove(pack)
            return
        new = Pack(tuple(members), entries, self.parts)
        self.packs[self.packs.index(pack)] = new
        for job in members:
            self.pack_of[job] = new

    def _take_loose(self, job: str) -> Entry | None:
        kept = self.loose.pop(job, None)
        return None if kept is None else kept[0]

    def plan(self) -> tuple[Plan, list[str]]:
        """What this scrape writes, as of now, and the jobs it still has to render
        (given to `Plan.fill`)."""
        packs: list[tuple[Pack, list[tuple[int, str | None]]]] = []
        wanted: list[str] = []
        for pack in self.packs:
            splices: list[tuple[int, str | None]] = []
            for job in pack.outdated:
                alive = self.pack_of.get(job) is pack
                splices.append((pack.members.index(job), job if alive else None))
                if alive:
                    wanted.append(job)
            splices.sort()
            packs.append((pack, splices))
        tail = list(self.tail)
        wanted += tail
        entries = {job: self.loose[job][0] for job in wanted if job in self.loose}
        missing = [job for job in wanted if job not in entries]
        return Plan(packs, tail, entries, self.parts), missing


class Plan:
    """The lines one scrape writes: per pack its blob with the outdated members' bytes
    replaced by their lines (or skipped: gone), then the tail's lines."""

    def __init__(
        self,
        packs: list[tuple[Pack, list[tuple[int, str | None]]]],
        tail: list[str],
        entries: dict[str, Entry],
        parts: int,
    ) -> None:
        self._packs = packs
        self._tail = tail
        self._entries = entries
        self._parts = parts

    def fill(self, job: str, entry: Entry) -> None:
        """The lines of a job `KeptLines.plan` named as still to render."""
        self._entries[job] = entry

    def size(self, part: int) -> int:
        """How many bytes `chunks(part)` writes."""
        entries = self._entries
        total = sum(len(entries[job][part]) for job in self._tail)
        for pack, splices in self._packs:
            total += pack.sizes[part]
            lengths = pack.lengths[part]
            for position, job in splices:
                total -= lengths[position]
                if job is not None:
                    total += len(entries[job][part])
        return total

    def chunks(self, part: int) -> Iterator[bytes]:
        """The lines of `part`, inflated pack by pack as they are read."""
        entries = self._entries
        for pack, splices in self._packs:
            data = zlib.decompress(pack.blobs[part])
            if splices:
                data = _spliced(data, pack.lengths[part], splices, entries, part)
            if data:
                yield data
        tail = b"".join([entries[job][part] for job in self._tail])
        if tail:
            yield tail


def _spliced(
    data: bytes,
    lengths: array[int],
    splices: list[tuple[int, str | None]],
    entries: dict[str, Entry],
    part: int,
) -> bytes:
    starts = list(accumulate(lengths, initial=0))
    pieces = []
    start = 0
    for position, job in splices:
        pieces.append(data[start : starts[position]])
        if job is not None:
            pieces.append(entries[job][part])
        start = starts[position + 1]
    pieces.append(data[start:])
    return b"".join(pieces)


class Body:
    """Bytes to write one after the other, made as they are read, and how many in all
    (an HTTP answer's Content-Length, known before the lines are inflated)."""

    def __init__(self) -> None:
        self.size = 0
        self._sources: list[Iterable[bytes]] = []

    def add(self, chunks: Iterable[bytes], size: int) -> None:
        """`chunks`: read once, `size` bytes in all."""
        self._sources.append(chunks)
        self.size += size

    def add_bytes(self, data: bytes) -> None:
        self.add((data,), len(data))

    def extend(self, other: Body) -> None:
        self._sources += other._sources
        self.size += other.size

    def __iter__(self) -> Iterator[bytes]:
        for source in self._sources:
            yield from source
