import logging

import pytest
import torch

from dldna import runtime as rt


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in ("DLDNA_PROFILE", *rt.RANDOM_WEIGHTS_VARS, *rt.LOCAL_ONLY_VARS):
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


@pytest.mark.parametrize("var", ["DLDNA_RANDOM_WEIGHTS", "DLDNA_OFFLINE"])
def test_random_weight_flags_give_full_size_random_weights(monkeypatch, var):
    monkeypatch.setenv(var, "1")
    run = rt.setup("full", device="cpu")
    assert run.profile == "full" and run.offline and run.synthetic and not run.smoke


@pytest.mark.parametrize("var", ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
def test_hugging_face_offline_means_local_files_not_random_weights(monkeypatch, var):
    monkeypatch.setenv(var, "1")
    run = rt.setup("full", device="cpu")
    assert not run.offline and not run.synthetic and rt.local_files_only()
    monkeypatch.setattr(rt, "host_reachable", lambda *a, **k: pytest.fail("the network was checked"))
    with pytest.raises(rt.ResourceUnavailableError) as info:
        rt.require_online("the pretrained model 'x/y'", "huggingface.co", where="/cache", how_to_get="fetch x/y")
    message = str(info.value)
    assert message.startswith("The pretrained model 'x/y' is not available locally (looked in /cache)")
    assert f"{var}=1" in message and "fetch x/y" in message and "DLDNA_RANDOM_WEIGHTS=1" in message


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
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert rt.select_device(None).type == expected


def test_full_without_network_fails_fast_naming_the_ways_out(monkeypatch):
    monkeypatch.setattr(rt, "host_reachable", lambda *a, **k: False)
    with pytest.raises(rt.ResourceUnavailableError) as info:
        rt.require_online("the pretrained model 'x/y'", "huggingface.co")
    message = str(info.value)
    assert "'x/y'" in message and "profile='smoke'" in message and "DLDNA_RANDOM_WEIGHTS=1" in message
    assert "https://huggingface.co/ cannot be reached" in message


def test_reachability_is_an_https_request_that_fails_fast(monkeypatch):
    """A host that accepts TCP but breaks TLS is unreachable: the check speaks HTTPS."""
    import socketserver
    import threading
    import time

    class Garbage(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.sendall(b"this is not TLS\r\n\r\n")

    with socketserver.TCPServer(("127.0.0.1", 0), Garbage) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            start = time.perf_counter()
            problem = rt.reachability_problem(f"https://127.0.0.1:{server.server_address[1]}/", timeout=2)
            elapsed = time.perf_counter() - start
        finally:
            server.shutdown()
    assert problem is not None and "SSL" in problem and elapsed < 2.5
    assert rt.probe_url("huggingface.co") == "https://huggingface.co/"
