"""Names spoken from the database are all collected for rendering, and the render command renders them."""

from __future__ import annotations

import argparse

from dbfixtures import UowFactory
from sqlalchemy import select

from ivr.cli.prompts import database_names
from ivr.config import load_settings
from ivr.db.models import Plan, Reward
from ivr.services.catalogue import spoken_names


def test_spoken_names_cover_plans_and_rewards_once(uow_factory: UowFactory) -> None:
    with uow_factory() as uow:
        names = spoken_names(uow)
        plans = set(uow.session.scalars(select(Plan.name)))
        rewards = set(uow.session.scalars(select(Reward.name)))
    assert plans and rewards
    assert plans <= set(names) and rewards <= set(names)
    assert names == sorted(set(names))
    assert "Смарт" in names  # a demo plan that the balance and tariff prompts say


def test_render_command_reads_names_from_the_configured_database(db_url: str, tmp_path) -> None:
    settings = load_settings(database_url=db_url, var_dir=str(tmp_path))
    names = database_names(settings)
    assert "Смарт" in names
    # The flag is wired into `ivr prompts render`.
    from ivr.cli import build_parser

    args = build_parser().parse_args(["prompts", "render", "--db-names"])
    assert isinstance(args, argparse.Namespace) and args.db_names is True
