"""The local cluster's pure parts (ivr.testbed.cluster, ivr.testbed.cluster_calls): names and addresses,
Kamailio's rendered configuration, the dispatcher state, the sipp scenario and its per-call trace. The
cluster itself runs in tests/e2e/test_cluster.py."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ivr.testbed.cluster import ClusterError, ClusterPlan, parse_dispatcher_list, render_kamailio
from ivr.testbed.cluster_calls import ClusterCall, key_runs, key_shape, read_traces, scenario
from ivr.testbed.dialer import DialError

KAMCMD_LIST = """{
\tNRSETS: 1
\tRECORDS: {
\t\tSET: {
\t\t\tID: 1
\t\t\tTARGETS: {
\t\t\t\tDEST: {
\t\t\t\t\tURI: sip:10.80.0.12:5060
\t\t\t\t\tFLAGS: AP
\t\t\t\t\tPRIORITY: 0
\t\t\t\t}
\t\t\t\tDEST: {
\t\t\t\t\tURI: sip:10.80.0.11:5060
\t\t\t\t\tFLAGS: IP
\t\t\t\t\tPRIORITY: 0
\t\t\t\t}
\t\t\t}
\t\t}
\t}
}
"""


def test_plan_names_and_addresses(tmp_path: Path) -> None:
    plan = ClusterPlan(base=tmp_path, nodes=3, prefix="ivrt", subnet="10.78.0")
    assert plan.bridge == "ivrt-br"
    assert (plan.host_ip, plan.proxy_ip, plan.db_ip, plan.callers_ip) == (
        "10.78.0.1", "10.78.0.2", "10.78.0.3", "10.78.0.100",
    )  # fmt: skip
    assert [plan.node_ip(n) for n in (1, 2, 3)] == ["10.78.0.11", "10.78.0.12", "10.78.0.13"]
    assert [role for role, _ in plan.roles()] == ["sip", "db", "n1", "n2", "n3", "callers"]
    # interface names stay within Linux's 15 characters, even with the longest prefix allowed
    longest = ClusterPlan(base=tmp_path, nodes=9, prefix="abcdefg")
    assert all(len(f"{longest.prefix}-{role}") <= 15 for role, _ in longest.roles())


@pytest.mark.parametrize(
    "bad",
    [
        {"prefix": "IVR"},  # upper case
        {"prefix": "abcdefgh"},  # too long for interface names
        {"subnet": "8.8.8"},  # not a private range
        {"subnet": "10.77"},  # not three octets
        {"nodes": 0},
        {"nodes": 10},
    ],
)
def test_plan_refuses_what_would_leave_the_cluster_or_break_names(tmp_path: Path, bad: dict) -> None:
    with pytest.raises(ClusterError):
        ClusterPlan(base=tmp_path, **bad)


def test_kamailio_configuration_and_dispatcher_list(tmp_path: Path) -> None:
    plan = ClusterPlan(base=tmp_path, nodes=2, prefix="ivrt", subnet="10.78.0", node_timeout_ms=1500)
    config = render_kamailio(plan).read_text()
    assert "@@" not in config
    assert "listen=udp:10.78.0.2:5060" in config
    assert 'modparam("tm", "fr_timer", 1500)' in config
    assert 'modparam("dispatcher", "ds_ping_from", "sip:dispatcher@10.78.0.2")' in config
    assert "rtpproxy" not in config and "rtpengine" not in config  # no media through the proxy
    rows = (tmp_path / "kamailio" / "dispatcher.list").read_text().splitlines()
    assert rows == ["1 sip:10.78.0.11:5060 0 0 node=n1", "1 sip:10.78.0.12:5060 0 0 node=n2"]


def test_dispatcher_state_is_read_per_node() -> None:
    assert parse_dispatcher_list(KAMCMD_LIST) == {"10.80.0.12": "AP", "10.80.0.11": "IP"}
    assert parse_dispatcher_list("") == {}


def test_keys_split_into_runs_and_pauses() -> None:
    assert key_shape("79262220003,1111#,,1112#") == [(11, 1), (5, 2), (5, 0)]
    assert key_runs("79262220003,1111#,,1112#") == ["79262220003", "1111#", "1112#"]
    assert key_shape("") == [] and key_runs("") == []
    with pytest.raises(DialError):
        ClusterCall("79161234567", "12a")
    with pytest.raises(DialError):
        ClusterCall("+7916", "1")


def test_scenario_is_xml_that_follows_the_route_set(tmp_path: Path) -> None:
    plan = ClusterPlan(base=tmp_path, prefix="ivrt", subnet="10.78.0")
    text = scenario(plan, "0505", first_wait=1.0, gap=0.3, hold=2.0, shape=key_shape("123,45"))
    root = ET.fromstring(text)
    assert root.tag == "scenario"
    assert "INVITE sip:0505@10.78.0.2:5060 SIP/2.0" in text
    # requests inside the call go where the 200 OK's route set says (through the proxy, to the node)
    assert text.count("[routes]") == 2 and "ACK [next_url]" in text and "BYE [next_url]" in text
    ok = [r for r in root.iter("recv") if r.get("response") == "200" and r.get("rrs") == "true"]
    assert ok, "the route set is not recorded from the 200 OK"
    assert [e.get("play_dtmf") for e in root.iter("exec")] == ["[field1]", "[field2]"]


def test_traces_from_sipp_log(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    log.write_text(
        "1;start;504\n1;answered;508;10.78.0.12\n2;start;1004\nnoise\n2;answered;2010;10.78.0.11\n"
        "1;ok;6024\n3;start;1504\n"
    )
    calls = [ClusterCall("79161234567") for _ in range(3)]
    first, second, third = read_traces(log, calls)
    assert (first.started, first.answered, first.node, first.ok) == (0.504, 0.508, "10.78.0.12", True)
    assert (second.node, second.ok, second.answered) == ("10.78.0.11", False, 2.01)
    assert (third.started, third.answered, third.ok) == (1.504, None, False)
