import logging

import pytest
import torch

from dldna import runtime as rt


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in ("DLDNA_PROFILE", "DLDNA_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(rt, "_banner_shown", False)


def test_explicit_profile_wins_over_environment(monkeypatch):
    monkeypatch.setenv("DLDNA_PROFILE", "full")
    assert rt.resolve_profile("smoke") == "smoke"


def test_environment_then_default(monkeypatch):
    assert rt.resolve_profile(None) == "full"
    monkeypatch.setenv("DLDNA_PROFILE", "SMOKE")
    assert rt.resolve_profile(None) == "smoke"
    assert rt.resolve_profile("") == "smoke"


def test_unknown_profile_is_rejected():
    with pytest.raises(rt.ProfileError, match="smoke, full"):
        rt.resolve_profile("tiny")


@pytest.mark.parametrize("var", ["DLDNA_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_flags_give_full_size_random_weights(monkeypatch, var):
    monkeypatch.setenv(var, "1")
    run = rt.setup("full", device="cpu")
    assert run.profile == "full" and run.offline and run.synthetic and not run.smoke


def test_smoke_is_never_offline_but_synthetic(monkeypatch):
    monkeypatch.setenv("DLDNA_OFFLINE", "1")
    run = rt.setup("smoke", device="cpu")
    assert run.smoke and run.synthetic and not run.offline


def test_banner_is_shown_once(caplog):
    with caplog.at_level(logging.WARNING, logger="dldna.runtime"):
        rt.setup("smoke", device="cpu")
        rt.setup("smoke", device="cpu")
    banners = [r for r in caplog.records if "RANDOM weights" in r.getMessage()]
    assert len(banners) == 1


def test_no_banner_for_real_runs(caplog):
    with caplog.at_level(logging.WARNING, logger="dldna.runtime"):
        run = rt.setup("full", device="cpu")
    assert not run.synthetic
    assert not caplog.records


def test_seed_everything_repeats_draws():
    rt.seed_everything(3)
    a = torch.rand(4)
    rt.seed_everything(3)
    assert torch.equal(a, torch.rand(4))


def test_device_selection():
    assert rt.select_device("cpu") == torch.device("cpu")
    assert rt.select_device(None).type in {"cpu", "cuda", "mps"}


def test_full_without_network_fails_fast_naming_the_ways_out(monkeypatch):
    monkeypatch.setattr(rt, "host_reachable", lambda *a, **k: False)
    with pytest.raises(rt.ResourceUnavailableError) as info:
        rt.require_online("the pretrained model 'x/y'", "huggingface.co")
    message = str(info.value)
    assert "'x/y'" in message and "profile='smoke'" in message and "DLDNA_OFFLINE=1" in message
