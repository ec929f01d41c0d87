"""What the trial workers' forkserver preloads: the trial code, torch for networks, a stage command's own module."""

from __future__ import annotations

import pytest

from tasks.pool import NETS_PRELOAD, PRELOAD, preload_for
from tests.support.main_module import fake_main
from tunedag.config import load_config


@pytest.mark.parametrize(("main", "extra"), [("flows.tune", ("flows.tune",)), ("flows.worker", ("flows.worker",)),
                                             ("my_tuning_script", ()), (None, ())],
                         ids=["tune-command", "worker-command", "another-module", "a-script"])
def test_a_stage_commands_module_is_preloaded_and_no_other_main_module(monkeypatch, main, extra):
    fake_main(monkeypatch, main)
    assert preload_for(load_config("params.yaml")) == PRELOAD + extra


def test_a_study_of_networks_preloads_torch_too(monkeypatch):
    fake_main(monkeypatch, "flows.tune")
    cfg = load_config("examples/torch_digits.yaml")
    assert preload_for(cfg) == PRELOAD + NETS_PRELOAD + ("flows.tune",)
