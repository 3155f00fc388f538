"""`reconcile explain` on the Berlin DST nights of 2027 (spring 03-28, autumn 10-31), run as
the console script over a SQLite database seeded by plain SQL: a wall time the job's DST
policy drops is listed `skipped` with the policy as its reason; the slots it keeps keep
their fates (here: a ledger row each, so `ran`).

Oracle, independent of the engine: the Berlin offsets are written out (CET +01:00, CEST
+02:00; the clocks jump 02:00 -> 03:00 at 01:00Z in spring and 03:00 -> 02:00 at 01:00Z in
autumn), so every expected slot below is hand-computed UTC."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from reconciler.api import create_app
from reconciler.core.slots import page_slots, slot_times
from reconciler.settings import Settings
from reconciler.spec.model import JobSpec
from reconciler.store.db import create_sync_engine
from reconciler.store.migrate import upgrade_database
from reconciler.store.tables import job_runs, scheduled_jobs

pytestmark = [pytest.mark.slow]

RECONCILE = str(Path(sys.executable).parent / "reconcile")
CLOSED_PORT = 9  # services the slots endpoint does not use: nothing listens there
CREATED = datetime(2027, 1, 1, tzinfo=UTC)
FIXED = {"name": "fixed", "cron": "30 2 * * *", "dst": {"gap": "skip", "repeat": "first"}}
REAL = {"name": "real", "cron": "*/30 * * * *", "dst": None}  # default: gap skip, repeat both
SPRING = ("2027-03-27T23:00:00Z", "2027-03-28T02:30:00Z")
AUTUMN = ("2027-10-30T23:00:00Z", "2027-10-31T02:30:00Z")
SPRING_GAP_SKIP = "dst gap: skip: 2027-03-28 {} does not exist in Europe/Berlin"
# Slots the policy keeps: each gets a succeeded ledger row.
KEPT = {
    "fixed": ["2027-10-31T00:30:00Z"],  # 02:30 CEST, the first 02:30
    "real": [  # real time: every half hour of UTC from 23:00Z to 02:30Z, both nights
        f"{(night + timedelta(minutes=30 * step)):%Y-%m-%dT%H:%M:%SZ}"
        for night in (datetime(2027, 3, 27, 23, tzinfo=UTC), datetime(2027, 10, 30, 23, tzinfo=UTC))
        for step in range(8)
    ],
}


def _berlin_spec(job: dict) -> dict:
    return {
        "name": job["name"],
        "task": "reconciler.tasks.noop",
        "schedule": {"cron": job["cron"]},
        "timezone": "Europe/Berlin",
        **({"dst": job["dst"]} if job["dst"] else {}),
    }


def _zulu(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('dst') / 'state.db'}"
    upgrade_database(url)
    engine = create_sync_engine(url)
    with engine.begin() as connection:
        for job in (FIXED, REAL):
            spec = _berlin_spec(job)
            connection.execute(
                sa.insert(scheduled_jobs).values(
                    name=job["name"],
                    spec=spec,
                    spec_hash=str(job["name"]).ljust(64, "0"),
                    task=spec["task"],
                    queue="default",
                    labels={},
                    status="active",
                    source_file=f"{job['name']}.yaml",
                    source_line=1,
                    revision="4f2a9c1e",
                    revision_dirty=False,
                    created_at=CREATED,
                    updated_at=CREATED,
                )
            )
        rows = [(name, slot) for name, slots in KEPT.items() for slot in slots]
        for number, (name, slot) in enumerate(rows):
            moment = _zulu(slot)
            connection.execute(
                sa.insert(job_runs).values(
                    id=f"00000000-0000-0000-0000-{number:012d}",
                    job_name=name,
                    scheduled_time=moment,
                    status="succeeded",
                    task="reconciler.tasks.noop",
                    queue="default",
                    idempotency_key=f"k{number}",
                    revision="4f2a9c1e",
                    lateness_seconds=0.01,
                    started_at=moment + timedelta(seconds=1),
                    finished_at=moment + timedelta(seconds=2),
                    worker="w1@host",
                    updated_at=moment,
                )
            )
    engine.dispose()
    return url


def _explain(url: str, job: str, window: tuple[str, str]) -> list[tuple[str, str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    argv = ["explain", job, "--from", window[0], "--to", window[1], "-o", "json"]
    done = subprocess.run(
        [RECONCILE, "--database-url", url, *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return [(s["slot"], s["fate"], s["reason"]) for s in json.loads(done.stdout)["slots"]]


@pytest.fixture(scope="module")
def answers(database: str) -> dict[tuple[str, str], list[tuple[str, str, str]]]:
    """The four explains, run at once (each is a whole process)."""
    asks = [(job, night) for job in ("fixed", "real") for night in ("spring", "autumn")]
    windows = {"spring": SPRING, "autumn": AUTUMN}
    with ThreadPoolExecutor(max_workers=4) as pool:
        found = pool.map(lambda ask: _explain(database, ask[0], windows[ask[1]]), asks)
        return dict(zip(asks, found, strict=True))


def _ran(slots: list[str]) -> list[tuple[str, str, str]]:
    return [(slot, "ran", "succeeded, 0.010 s late") for slot in slots]


def test_fixed_time_cron_lists_the_wall_times_its_dst_policy_skips(
    answers: dict[tuple[str, str], list[tuple[str, str, str]]],
) -> None:
    # Spring: 02:30 does not exist; on the offset before the jump it would be 01:30Z.
    assert answers["fixed", "spring"] == [
        (
            "2027-03-28T01:30:00Z",
            "skipped",
            SPRING_GAP_SKIP.format("02:30:00") + " (clocks jump forward)",
        ),
    ]
    # Autumn: 02:30 CEST (00:30Z) ran; 02:30 CET (01:30Z), the second occurrence, skipped.
    assert answers["fixed", "autumn"] == [
        *_ran(["2027-10-31T00:30:00Z"]),
        (
            "2027-10-31T01:30:00Z",
            "skipped",
            "dst repeat: first: second occurrence of 2027-10-31 02:30:00, which happens "
            "twice in Europe/Berlin (clocks go back)",
        ),
    ]


def test_real_time_cron_keeps_every_instant_and_names_the_missing_wall_times(
    answers: dict[tuple[str, str], list[tuple[str, str, str]]],
) -> None:
    spring = answers["real", "spring"]
    kept = [slot for slot in KEPT["real"] if SPRING[0] <= slot <= SPRING[1]]
    assert [entry for entry in spring if entry[1] == "ran"] == _ran(kept)
    assert len(kept) == 8  # 23:00Z .. 02:30Z: no instant is lost to the gap
    # 02:00 and 02:30 wall times do not exist: listed skipped, each just before the run
    # at the same instant (03:00 / 03:30 CEST).
    skipped = [entry for entry in spring if entry[1] == "skipped"]
    assert skipped == [
        (
            f"2027-03-28T01:{minute}:00Z",
            "skipped",
            SPRING_GAP_SKIP.format(f"02:{minute}:00") + " (clocks jump forward)",
        )
        for minute in ("00", "30")
    ]
    assert len(spring) == 10
    assert spring.index(skipped[0]) + 1 == spring.index(_ran(["2027-03-28T01:00:00Z"])[0])
    # Autumn, repeat both: both occurrences of 02:00 and 02:30 run, nothing skipped.
    autumn = answers["real", "autumn"]
    assert autumn == _ran([slot for slot in KEPT["real"] if AUTUMN[0] <= slot <= AUTUMN[1]])
    assert len(autumn) == 8


def _api_slots(client: TestClient, job: str, window: tuple[str, str], limit: int) -> list[dict]:
    """Every page of GET /api/v1/jobs/{job}/slots over `window`, `limit` entries a page."""
    items: list[dict] = []
    params: dict[str, str | int] = {"from": window[0], "to": window[1], "limit": limit}
    while True:
        response = client.get(f"/api/v1/jobs/{job}/slots", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        # A dropped wall time and the slot at its instant share a page (page_slots): with
        # `limit` 1 such a page holds both.
        assert len(body["items"]) <= max(limit, 2)
        items += body["items"]
        if body["next_cursor"] is None:
            return items
        params["cursor"] = body["next_cursor"]


@pytest.fixture(scope="module")
def client(database: str) -> Iterator[TestClient]:
    settings = Settings(
        database_url=database,
        broker_url=f"amqp://guest:guest@127.0.0.1:{CLOSED_PORT}//",
        redis_url=f"redis://127.0.0.1:{CLOSED_PORT}/0",
        result_backend=f"redis://127.0.0.1:{CLOSED_PORT}/0",
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.mark.parametrize("limit", [1, 2, 100])
def test_the_slots_endpoint_says_what_explain_says_on_both_nights(
    client: TestClient,
    answers: dict[tuple[str, str], list[tuple[str, str, str]]],
    limit: int,
) -> None:
    # Paged by 1 and 2, a page boundary falls between a dropped wall time and the slot at
    # the same instant (the real-time job's spring night): nothing is lost or repeated.
    windows = {"spring": SPRING, "autumn": AUTUMN}
    for (job, night), cli in answers.items():
        api = _api_slots(client, job, windows[night], limit)
        assert [(_zulu(s["slot"]), s["fate"], s["reason"]) for s in api] == [
            (_zulu(slot), fate, reason) for slot, fate, reason in cli
        ], (job, night)
        # The slots it does not drop are the schedule engine's, instant for instant.
        spec = JobSpec.model_validate(_berlin_spec(FIXED if job == "fixed" else REAL))
        start, end = (_zulu(text) for text in windows[night])
        engine, _ = slot_times(spec, after=start - timedelta(microseconds=1), until=end, limit=99)
        assert [_zulu(s["slot"]) for s in api if s["fate"] != "skipped"] == engine


def test_a_page_of_a_per_second_job_across_a_spring_night_stays_bounded() -> None:
    # 02:00:00-02:59:59 do not exist on 2027-03-28 in Berlin: 3,600 dropped wall times,
    # each at the instant of a real slot (a per-second job runs every UTC second).
    spec = JobSpec.model_validate(
        _berlin_spec({"name": "every-second", "cron": "* * * * * *", "dst": None})
    )
    start, end = _zulu("2027-03-28T00:59:00Z"), _zulu("2037-03-28T00:00:00Z")  # ten years
    seen: list[tuple[datetime, str]] = []
    after = None
    for _ in range(4):
        page = page_slots(spec, start=start, end=end, after=after, limit=100)
        entries = [(slot, "slot") for slot in page.slots] + [(s.slot, "dst") for s in page.dst]
        assert len(entries) <= 100
        seen += sorted(entries)
        after = page.next_after
        assert after is not None
    first = _zulu("2027-03-28T01:00:00Z")
    slots = [moment for moment, kind in seen if kind == "slot"]
    dropped = [moment for moment, kind in seen if kind == "dst"]
    assert slots == [start + timedelta(seconds=n) for n in range(len(slots))]
    assert dropped == [first + timedelta(seconds=n) for n in range(len(dropped))]
    assert len(seen) >= 390 and dropped  # four pages of 99-100 entries, into the gap
