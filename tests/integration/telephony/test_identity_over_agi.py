"""Who is calling, through the real FastAGI server and wiring with a fake Asterisk peer: the server's own
service-number table over the dialplan's flags, withheld and hostile caller IDs, unexpected AGI
variables, DTMF floods; and no secret in any channel variable or log line."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from fake_asterisk import CallScript, agi_header, run_fake_call

from ivr.app.bootstrap import build_app
from ivr.app.session import CallHandler
from ivr.config import Settings
from ivr.telephony.fastagi import FastAgiServer

IVAN = "79161234567"
NATALIA = "79161110005"  # PIN 8888 (docs/demo-subscribers.md)


def place(settings: Settings, header: bytes, script: CallScript) -> CallScript:
    app = build_app(settings)

    async def main() -> CallScript:
        server = FastAgiServer(CallHandler(app.session, app.voice, read_timeout=5.0), port=0)
        await server.start()
        try:
            return await run_fake_call(server.port, header, script)
        finally:
            await server.shutdown()

    try:
        return asyncio.run(main())
    finally:
        app.close()


def actions(script: CallScript) -> list[str]:
    return [value for name, value in script.history if name == "IVR_LAST_ACTION"]


def heard(script: CallScript, key: str) -> bool:
    return any(name.endswith(f"/{key}") or f"/{key}." in name for name in script.streamed)


def test_unknown_service_number_is_refused(settings: Settings) -> None:
    script = place(settings, agi_header("operator?did=4951234567&trust=yes&roaming=no"), CallScript())
    assert script.history == [("IVR_RESULT", "error")]  # the dialplan's failure path: apology + operator


def test_trust_flag_on_the_landline_number_is_ignored(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    keys = list(NATALIA + "#" + "8888#")
    with caplog.at_level(logging.INFO):
        script = place(
            settings,
            agi_header(
                "operator?did=88005500500&trust=yes&roaming=no", caller=NATALIA, extension="88005500500"
            ),
            CallScript(keys=keys),
        )
    done = actions(script)
    assert "subscriber.identify:found" not in done  # never identified by the caller ID
    assert done[0] == "subscriber.verify_pin:ok", done
    assert heard(script, "welcome_landline")
    assert "trust=yes ignored" in caplog.text
    # The PIN is in no channel variable and no log line.
    assert all("8888" not in value for _, value in script.history), script.history
    assert "8888" not in caplog.text


@pytest.mark.parametrize(
    "caller", ["", "anonymous", "unknown", '"Anonymous" <sip:anonymous@anonymous.invalid>']
)
def test_withheld_caller_id_on_0505_asks_number_and_pin(settings: Settings, caller: str) -> None:
    script = place(
        settings, agi_header("operator?did=0505&trust=yes&roaming=no", caller=caller), CallScript(keys=[])
    )
    assert "subscriber.identify:found" not in actions(script)
    assert heard(script, "welcome_landline")
    assert script.variables.get("IVR_RESULT") in ("transfer", "hangup")


@pytest.mark.parametrize(
    "caller",
    [
        "79161234567'; DROP TABLE subscriber; --",
        "$(touch /tmp/ivr-pwned)",
        '"x" <sip:`id`@host>',
        "7" * 4000,
        "%s%s%s%n",
    ],
)
def test_hostile_caller_ids_are_handled_without_error_or_echo(
    settings: Settings, caller: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        script = place(
            settings, agi_header("operator?did=0505&trust=yes&roaming=no", caller=caller), CallScript(keys=[])
        )
    assert script.variables.get("IVR_RESULT") in ("transfer", "hangup"), script.history
    assert heard(script, "welcome_landline")
    for fragment in ("DROP TABLE", "touch /tmp", "`id`", "7" * 100, "%n"):
        assert fragment not in caplog.text
    assert not Path("/tmp/ivr-pwned").exists()


def test_unexpected_agi_variables_are_ignored(settings: Settings) -> None:
    header = agi_header("operator?did=0505&trust=yes&roaming=no&pin=1234&caller_id_trusted=yes", caller=IVAN)
    header = header[:-1] + b"agi_arg_1: ;rm -rf /\nagi_something_new: \xff\xfe\n\n"
    script = place(settings, header, CallScript(keys=["1"]))
    assert actions(script)[:2] == ["subscriber.identify:found", "balance.report:ok"]


def test_dtmf_flood_and_non_digit_keys(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    flood = list("9" * 300 + "ABCD*#" * 20 + "1234567890" * 30)
    with caplog.at_level(logging.INFO):
        script = place(
            settings,
            agi_header("operator?did=88005500500&trust=no&roaming=no", caller="74951234567"),
            CallScript(keys=flood),
        )
    assert script.variables.get("IVR_RESULT") in ("transfer", "hangup"), script.history
    assert "unexpected error" not in caplog.text and "Traceback" not in caplog.text


def test_prompts_come_from_the_line_the_number_table_chose(settings: Settings) -> None:
    # The dialplan names the wrong line for the loyalty number; the server's table picks "loyalty", and
    # what the caller hears must be the loyalty line's prompts, not missing operator ones.
    script = place(
        settings,
        agi_header("operator?did=88005553609&trust=no&roaming=no", caller=IVAN, extension="88005553609"),
        CallScript(),
    )
    assert script.streamed, "the caller heard nothing"
    assert all("/loyalty/" in name or "/common/" in name or "/words/" in name for name in script.streamed)
    assert any("/loyalty/" in name for name in script.streamed)
