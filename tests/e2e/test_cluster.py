"""Scale-out, end to end: a local cluster in network namespaces (ivr.testbed.cluster) — Kamailio's
dispatcher in front of two nodes (each a real Asterisk and a real `ivr serve`), one real PostgreSQL they
share, and sipp in a callers' namespace calling through Kamailio.

What is asserted comes from sipp's per-call trace (which node answered, whether the call ended well), the
shared database (call records with their node, PIN failures, the SMS outbox), the nodes' own files (the SMS
each node's pump delivered) and Kamailio's dispatcher state; never from timing."""

from __future__ import annotations

import collections
import datetime as dt
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import IN_CI, require_line_pieces
from sqlalchemy import func, select

from ivr.config import load_settings
from ivr.db.models import IvrCall, SmsOutbox
from ivr.db.session import UowFactory, make_uow_factory
from ivr.testbed.cluster import Cluster, ClusterPlan, dispatcher_states, network_down, own_files
from ivr.testbed.cluster_calls import CallBatch, ClusterCall, run

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SUBSCRIBER = "79161234567"  # demo subscriber (0505 identifies by caller ID)
NATALIA = "79161110005"  # demo PIN 8888
OLEG = "79161110002"  # demo PIN 2222
CORP_OWN = "79262220003"  # demo PIN 7777
LANDLINE = "88005500500"


def _require_cluster_pieces() -> None:
    require_line_pieces()
    missing = []
    if os.geteuid() != 0:
        missing.append("root (network namespaces)")
    if shutil.which("kamailio") is None:
        missing.append("Kamailio")
    if shutil.which("ip") is None:
        missing.append("iproute2")
    if not list(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")):
        missing.append("PostgreSQL")
    if missing:
        reason = "the cluster e2e tests need " + ", ".join(missing) + "; run scripts/setup.sh as root"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    _require_cluster_pieces()
    # a prefix and a subnet of their own, so that a demo cluster (scripts/cluster.sh) can run beside it
    plan = ClusterPlan(base=tmp_path_factory.mktemp("cluster"), nodes=2, prefix="ivrt", subnet="10.78.0")
    network_down(plan.prefix)  # whatever a run that was killed left behind
    running = Cluster(plan)
    running.up(extra_env={"IVR_FOLLOW_SECONDS": "1", "IVR_OVERLOAD_LAG": "1.0"})
    try:
        yield running
    finally:
        running.down()


@pytest.fixture(scope="module")
def db(cluster: Cluster) -> Iterator[UowFactory]:
    assert cluster.db is not None
    factory = make_uow_factory(cluster.db.url)
    try:
        yield factory
    finally:
        factory.dispose()


def node_names(cluster: Cluster) -> dict[str, str]:
    return {cluster.node_ip(n): f"n{n}" for n in range(1, cluster.plan.nodes + 1)}


def calls(cluster: Cluster, tmp_path: Path, batch: list[ClusterCall], **options: object) -> CallBatch:
    result = run(cluster.plan, batch, tmp_path / f"sipp-{time.monotonic_ns()}", **options)
    for trace in result.traces:
        print(trace)
    return result


def records_since(db: UowFactory, since: dt.datetime, count: int, *, did: str | None = None) -> list[IvrCall]:
    """The call records written since `since` (waits for `count` of them: a record is written as its call
    ends), oldest first."""
    deadline = time.monotonic() + 30
    while True:
        with db() as uow:
            query = select(IvrCall).where(IvrCall.started_at >= since).order_by(IvrCall.started_at)
            if did is not None:
                query = query.where(IvrCall.did == did)
            rows = list(uow.session.scalars(query).all())
            for row in rows:
                uow.session.expunge(row)
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.3)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(seconds=1)


def test_calls_spread_over_the_nodes(cluster: Cluster, db: UowFactory, tmp_path: Path) -> None:
    since = utcnow()
    result = calls(cluster, tmp_path, [ClusterCall(SUBSCRIBER, "1") for _ in range(6)], rate=2, hold=2)
    assert result.sipp_exit == 0, result.errors
    assert all(t.ok for t in result.traces)
    landed = result.by_node()
    assert set(landed) == set(node_names(cluster)), landed  # both nodes took calls
    assert min(landed.values()) >= 2, landed
    # Each node's server ran its calls and wrote their records to the one database, under its own name;
    # the call IDs carry the node's name (Asterisk's systemname), so they never collide.
    rows = records_since(db, since, 6)
    by_node = collections.Counter(r.node for r in rows)
    assert by_node == collections.Counter(node_names(cluster)[t.node] for t in result.traces), by_node
    assert all(r.call_id.startswith(f"{r.node}-") for r in rows), [r.call_id for r in rows]
    assert all(any(a["name"] == "balance.report" for a in r.actions) for r in rows)


def test_pin_lockout_counts_failures_from_calls_on_different_nodes(
    cluster: Cluster, db: UowFactory, tmp_path: Path
) -> None:
    since = utcnow()
    # Three wrong PINs in one call, then two in the next call: the two calls land on different nodes
    # (round-robin), and the fifth failure locks the account all the same.
    first = calls(cluster, tmp_path, [ClusterCall("74957770012", f"{CORP_OWN},1111#,,1112#,,1113#")],
                  number=LANDLINE, hold=3)  # fmt: skip
    second = calls(cluster, tmp_path, [ClusterCall("74957770013", f"{CORP_OWN},1114#,,1115#")],
                   number=LANDLINE, hold=3)  # fmt: skip
    # Then the right PIN, on whichever node: still locked.
    third = calls(cluster, tmp_path, [ClusterCall("74957770014", f"{CORP_OWN},7777#,,2")],
                  number=LANDLINE, hold=3)  # fmt: skip
    for result in (first, second, third):
        assert result.traces[0].answered is not None, result.errors
    assert first.traces[0].node != second.traces[0].node

    rows = records_since(db, since, 3, did=LANDLINE)
    assert len(rows) == 3, rows
    pins = [[a["status"] for a in r.actions if a["name"] == "subscriber.verify_pin"] for r in rows]
    assert pins == [["wrong", "wrong", "wrong"], ["wrong", "locked"], ["locked"]], pins
    assert rows[0].node != rows[1].node, [r.node for r in rows]


def test_one_sms_per_message_with_a_pump_on_each_node(
    cluster: Cluster, db: UowFactory, tmp_path: Path
) -> None:
    # Calls on both nodes ask for a one-time code (8-800: number, PIN, then 4 = password): each code is an
    # SMS in the shared outbox. While they run, a burst of other SMS lands in the outbox too; each node's
    # pump is kicked by its own calls' actions, and both take rows from the same table at once.
    with db(write=True) as uow:
        before = uow.session.scalar(select(func.max(SmsOutbox.id))) or 0
    bulk = 150
    # (two codes each for two subscribers: a subscriber gets at most three codes an hour)
    keys = (f"{OLEG},2222#,,4", f"{NATALIA},8888#,,4")
    batch = [ClusterCall(f"7495777002{n}", keys[n % 2]) for n in range(4)]

    def burst() -> None:
        time.sleep(2.0)  # the calls are answered, their PIN is being keyed
        with db(write=True) as uow:
            for n in range(bulk):
                uow.session.add(
                    SmsOutbox(msisdn=SUBSCRIBER, text=f"cluster test {n}", kind="test", created_at=uow.now())
                )
            uow.commit()

    writer = threading.Thread(target=burst)
    writer.start()
    result = calls(cluster, tmp_path, batch, number=LANDLINE, rate=4, hold=4)
    writer.join()
    assert len(result.by_node()) == 2, result.by_node()

    deadline = time.monotonic() + 75  # a pump also wakes on its own every 30 s
    while True:
        with db() as uow:
            rows = uow.session.execute(
                select(SmsOutbox.id, SmsOutbox.kind, SmsOutbox.sent_at).where(SmsOutbox.id > before)
            ).all()
        if (len(rows) >= bulk + 4 and all(r.sent_at for r in rows)) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    queued = {r.id for r in rows}
    assert sum(1 for r in rows if r.kind == "otp") == 4, rows
    assert all(r.sent_at for r in rows), [r.id for r in rows if not r.sent_at]

    delivered: dict[str, list[int]] = {}
    for n in (1, 2):
        outbox = cluster.node_var(n) / "sms" / "outbox.log"
        lines = outbox.read_text(encoding="utf-8").splitlines() if outbox.exists() else []
        delivered[f"n{n}"] = [json.loads(row)["id"] for row in lines if json.loads(row)["id"] in queued]
    everything = delivered["n1"] + delivered["n2"]
    twice = [i for i, c in collections.Counter(everything).items() if c > 1]
    assert twice == [], f"sent more than once: {twice}"
    assert set(everything) == queued  # and none left out
    assert delivered["n1"] and delivered["n2"], {k: len(v) for k, v in delivered.items()}


def test_a_publish_reaches_every_node(cluster: Cluster, db: UowFactory, tmp_path: Path) -> None:
    from ivr.services import tree_versions as versions
    from ivr.web.files import read_line
    from ivr.web.publish import publish_version

    assert cluster.db is not None
    # The console's side, as `ivr web` does it: its own copy of prompts/, the shared database.
    console_prompts = own_files(tmp_path / "console")
    settings = load_settings(
        var_dir=tmp_path / "console", database_url=cluster.db.url, prompts_dir=console_prompts,
        sounds_dir=tmp_path / "console" / "sounds",
    )  # fmt: skip
    files = read_line(console_prompts, "operator")
    with db(write=True) as uow:
        versions.import_files(uow, "operator", files, author="test")
        uow.commit()
    tree = files["operator.yaml"]
    old = next(row.split('"')[1] for row in tree.splitlines() if row.startswith("version:"))
    new = f"{old}-cluster"
    # a new tree version and a new greeting: every node must render the new text into its own audio
    texts = files["texts/operator.ru.yaml"]
    assert "\nwelcome: Здравствуйте!\n" in texts
    edited = {
        **files,
        "operator.yaml": tree.replace(f'"{old}"', f'"{new}"', 1),
        "texts/operator.ru.yaml": texts.replace(
            "\nwelcome: Здравствуйте!\n", "\nwelcome: Здравствуйте! Вас обслуживает кластер.\n"
        ),
    }
    with db(write=True) as uow:
        versions.open_draft(uow, "operator", "editor")
        versions.update_draft(uow, "operator", "editor", edited)
        number = versions.save_version(uow, "operator", "editor", "cluster test").number
        uow.commit()
    publish_version(settings, db, "operator", number, "editor")

    # Every node takes the new version from the database within seconds (it polls every second here).
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        taken = [
            f'version: "{new}"' in (cluster.node_var(n) / "prompts" / "operator.yaml").read_text()
            for n in (1, 2)
        ]
        if all(taken):
            break
        time.sleep(0.3)
    assert all(taken), taken
    # each node rendered the new greeting into its own audio folder; the project's (which the nodes'
    # folders started as hard links of) never saw it: the nodes share nothing but the database
    project = {p.name for p in (load_settings().sounds / "ru" / "operator").glob("welcome.*.wav")}
    for n in (1, 2):
        greeting = cluster.node_var(n) / "sounds" / "ru" / "operator"
        assert {p.name for p in greeting.glob("welcome.*.wav")} - project, f"n{n} rendered no new greeting"
    since = utcnow()
    time.sleep(3)  # the node's tree store polls its files every 2 s
    result = calls(cluster, tmp_path, [ClusterCall(SUBSCRIBER, "1") for _ in range(4)], rate=2, hold=1)
    assert all(t.ok for t in result.traces), result.errors
    rows = records_since(db, since, 4)
    assert {r.node for r in rows} == {"n1", "n2"}
    assert {r.tree_version for r in rows} == {new}, [(r.node, r.tree_version) for r in rows]
    # Each node says so on /metrics too: the published version it put in service, and the tree's version.
    for n in (1, 2):
        samples = cluster.metrics(n)
        assert samples.get('ivr_published_version{line="operator"}') == number, n
        assert samples.get(f'ivr_tree_version{{line="operator",version="{new}"}}') == 1.0, n


def test_a_node_lost_under_load_fails_no_new_call(cluster: Cluster, tmp_path: Path) -> None:
    import asyncio

    from ivr.testbed.cluster_calls import place_calls

    async def load_and_kill() -> tuple[CallBatch, float]:
        batch = [ClusterCall(SUBSCRIBER) for _ in range(48)]
        steady = asyncio.ensure_future(
            place_calls(cluster.plan, batch, tmp_path / "load", rate=4, hold=4, first_wait=1)
        )
        await asyncio.sleep(4.0)  # a steady load is running on both nodes
        killed_at = time.monotonic()
        cluster.kill_node(1)
        return await steady, killed_at

    result, killed_at = asyncio.run(load_and_kill())
    for trace in result.traces:
        print(trace)
    kill = killed_at - result.began
    dead, alive = cluster.node_ip(1), cluster.node_ip(2)
    # Calls that began after the node was lost: none failed (Kamailio passed on a call the dead node did
    # not answer, then took the node out of the set).
    after = [t for t in result.traces if t.started is not None and t.started > kill]
    assert len(after) >= 20
    assert [t.index for t in after if not t.ok] == []
    assert all(t.node == alive for t in after)
    # Calls on the other node were not touched; the calls the lost node carried were lost with it.
    on_alive = [t for t in result.traces if t.node == alive]
    assert [t.index for t in on_alive if not t.ok] == []
    lost = [t for t in result.traces if t.node == dead]
    assert lost and all(t.started is not None and t.started < kill for t in lost)
    assert dispatcher_states(cluster.plan)[dead].startswith("I"), dispatcher_states(cluster.plan)
    # Before the probes took it out, new calls still went to it: each was passed on to the other node
    # once the lost node had not answered for node_timeout_ms (1 s), and was answered there.
    passed_on = [t for t in after if t.answered is not None and t.answered - (t.started or 0) >= 0.9]
    assert passed_on, "no call was passed on from the lost node"
    kamailio_log = (cluster.plan.base / "kamailio" / "kamailio.log").read_text(errors="replace")
    assert f"node sip:{dead}:5060 did not answer a call" in kamailio_log

    # The node comes back: the probes put it back in the set, and it takes calls again.
    cluster.restart_node(1)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not dispatcher_states(cluster.plan)[dead].startswith("A"):
        time.sleep(0.3)
    assert dispatcher_states(cluster.plan)[dead].startswith("A"), dispatcher_states(cluster.plan)
    back = calls(cluster, tmp_path, [ClusterCall(SUBSCRIBER, "1") for _ in range(4)], rate=2, hold=1)
    assert all(t.ok for t in back.traces), back.errors
    assert set(back.by_node()) == {dead, alive}
