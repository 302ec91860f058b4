"""The AGI codec: responses, requests, quoting (no server needed)."""

from __future__ import annotations

import pytest

from ivr.telephony.agi import AgiProtocolError, parse_request, parse_response, quote
from ivr.telephony.channel import ChannelHungUp


def test_result_with_data_and_endpos() -> None:
    response = parse_response("200 result=49 endpos=1234")
    assert (response.code, response.value, response.rest) == (200, 49, "endpos=1234")
    timeout = parse_response("200 result=0 (timeout)")
    assert (timeout.value, timeout.data) == (0, "timeout")


@pytest.mark.parametrize(
    "line", ["HANGUP", "511 Command Not Permitted on a dead channel or intercept routine"]
)
def test_hangup_answers_raise(line: str) -> None:
    with pytest.raises(ChannelHungUp):
        parse_response(line)


@pytest.mark.parametrize("line", ["", "hello", "200 nothing", "2000 result=1", "\x00\xff"])
def test_garbage_is_a_protocol_error(line: str) -> None:
    with pytest.raises(AgiProtocolError):
        parse_response(line)


def test_request_from_network_script() -> None:
    request = parse_request(
        {
            "agi_network_script": "operator?did=79221110505&trust=yes&roaming=yes",
            "agi_callerid": "79161110003",
        }
    )
    assert request.line == "operator"
    assert request.params["did"] == "79221110505"
    assert request.flag("trust") and request.flag("roaming")
    assert request.caller_id == "79161110003"


@pytest.mark.parametrize("raw", ["", "unknown", "anonymous"])
def test_withheld_caller_id(raw: str) -> None:
    assert parse_request({"agi_callerid": raw}, "loyalty?did=88005553609").caller_id is None


def test_quote_escapes() -> None:
    assert quote('a "b" \\ c\nd') == '"a \\"b\\" \\\\ c d"'
