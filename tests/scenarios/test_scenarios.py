"""Every scenario file under tests/scenarios/ runs through the real stack: the shipped tree, the engine,
the Session, the action registry and the services, against a freshly seeded SQLite database (seeded once,
then copied per scenario so each call starts from the demo data)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ivr.app.actions import catalog
from ivr.app.bootstrap import build_app
from ivr.config import Settings, load_settings
from ivr.testbed.demo_data import init_demo
from ivr.testbed.scenario import Scenario, Step, load_scenario, prompt_describer, run_scenario

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SCENARIOS = sorted(HERE.rglob("*.yaml"))


@pytest.fixture(scope="session")
def seeded_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("seed") / "demo.sqlite3"
    init_demo(f"sqlite:///{path}")
    return path


@pytest.fixture
def settings(seeded_db: Path, tmp_path: Path) -> Settings:
    db = tmp_path / "ivr.sqlite3"
    shutil.copyfile(seeded_db, db)
    return load_settings(
        None,
        home=str(ROOT),
        database_url=f"sqlite:///{db}",
        var_dir=str(tmp_path / "var"),
        prompts_dir=str(ROOT / "prompts"),
        sounds_dir=str(tmp_path / "sounds"),
    )


@pytest.fixture
def app(settings: Settings) -> Iterator[Any]:
    line_app = build_app(settings)
    yield line_app
    line_app.close()


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_scenario(path: Path, app: Any, settings: Settings) -> None:
    scenario = load_scenario(path)
    outcome = run_scenario(scenario, app, prompt_describer(settings))
    assert outcome.ok, "\n".join([*outcome.failures, "transcript:", *outcome.transcript.lines])


def test_scenarios_cover_every_action(app: Any, settings: Settings) -> None:

    invoked: set[str] = set()
    for path in SCENARIOS:
        invoked |= {step.value.split(":")[0] for step in load_scenario(path).steps if step.kind == "action"}
    assert set(catalog()) - invoked == set()


def test_a_wrong_expectation_fails(app: Any, settings: Settings) -> None:
    scenario = load_scenario(HERE / "operator" / "balance_key_1.yaml")
    wrong = Scenario(
        **{
            **scenario.__dict__,
            "steps": [
                Step("press", "1"),
                Step("hear", ["tariff_current"]),
                Step("action", "balance.report:error"),
            ],
            "result": "hangup",
            "queue": None,
        }
    )
    outcome = run_scenario(wrong, app, prompt_describer(settings))
    assert len(outcome.failures) == 3, outcome.failures
