"""One scan request (auditkit/request.py): the CLI, the API and validation read one declaration."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest
from typer.testing import CliRunner

import auditkit
from auditkit.cli import app
from auditkit.errors import AuditkitInputError
from auditkit.request import ScanRequest, api_fields

# The documented ``auditkit.scan`` signature (README's API section): names, order, defaults.
DOCUMENTED = [
    ("model", inspect.Parameter.empty), ("data", None), ("probes", None), ("budget", "standard"),
    ("seed", 0), ("device", "auto"), ("policy", None), ("options", None), ("metadata", None),
    ("arch", None), ("unsafe_pickle", False), ("load_limits", None), ("target", None),
    ("sensitive", None), ("groups_file", None), ("train_data", None),
    ("keep_sensitive_features", False), ("checkpoint_dir", None), ("resume", None),
    ("progress", False), ("debug", False), ("max_minutes", None), ("size_to_clock", True),
    ("cost", None), ("fail_on", None),
]


def test_api_signature_is_the_documented_one():
    params = inspect.signature(auditkit.scan).parameters
    assert [(p.name, p.default) for p in params.values()] == DOCUMENTED
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in list(params.values())[2:])


def test_api_rejects_an_unknown_keyword_like_python():
    with pytest.raises(TypeError, match="unexpected keyword argument 'budgte'"):
        auditkit.scan("model.pt2", "digits", budgte="fast")


def test_default_seed_matches_the_pipeline():
    from auditkit.pipeline import DEFAULT_SEED

    assert ScanRequest().seed == DEFAULT_SEED


def test_every_flag_of_the_request_is_an_option_of_scan():
    text = CliRunner().invoke(app, ["scan", "--help"], env={"COLUMNS": "200"}).output
    flags = [flag for f in ScanRequest.cli_fields() for flag in f.metadata["flags"]]
    assert len(flags) >= 30
    for flag in flags:
        assert f" {flag}" in text, flag
    for f in ScanRequest.cli_fields():  # and its help, once, from the declaration
        assert " ".join(f.metadata["help"].split()[:4]) in " ".join(text.split()), f.name


def test_api_and_cli_share_names_and_defaults():
    for f in api_fields():
        if f.metadata["flags"] and f.name not in ("resume", "options", "cost", "policy"):
            assert f.metadata["cli_default"] == f.default, f.name
    assert {f.name for f in dataclasses.fields(ScanRequest) if not f.metadata["api"]} >= {
        "out", "quiet", "mlflow", "mlflow_run", "input_shape"}


@pytest.mark.parametrize(("flag", "text", "words"), [
    ("input_shape", "1.5,8,8", "--input-shape '1.5,8,8': expected positive whole numbers"),
    ("std", "0.5,0", "--std '0.5,0': every std must be a positive number"),
    ("options", ["adversarial"], "--set 'adversarial': expected probe.option=value"),
    ("probes", ",", "--probes ',': no names given"),
    ("load_memory", -1.0, "--load-memory -1: use a positive number of GB"),
])
def test_text_is_parsed_by_the_fields_parser(flag, text, words):
    with pytest.raises(AuditkitInputError, match=words.replace("[", r"\[").replace("(", r"\(")):
        ScanRequest.from_cli({flag: text})


def test_cli_values_become_api_keywords(tmp_path: Path):
    request = ScanRequest.from_cli({
        "input_shape": "1,8,8", "mean": "0.5", "std": "0.25", "options": ["adversarial.eps=0.1"],
        "probes": "performance, adversarial", "load_timeout": 5.0})
    keywords = request.api_keywords()
    assert keywords["metadata"].input_shape == (1, 8, 8) and keywords["metadata"].std == (0.25,)
    assert keywords["options"] == {"adversarial": {"eps": "0.1"}}
    assert keywords["probes"] == ["performance", "adversarial"]
    assert keywords["load_limits"].timeout_s == 5.0
    assert keywords["resume"] is False  # the command line reads checkpoints only with --resume
    assert set(keywords) == {f.name for f in api_fields()}
