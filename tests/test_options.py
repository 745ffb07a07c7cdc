"""Probe options: one schema per probe, one parser for --set, the policy file and the Python API.

The round-trip tests run over every installed probe that declares ``Options``, so a probe that
converts to the schema is covered without a new test.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
import torch
from typer.testing import CliRunner

import auditkit
from auditkit.cli import _parse_sets, app
from auditkit.errors import AuditkitInputError
from auditkit.gates import load_policy, merged_options
from auditkit.options import (
    BUDGETS,
    OptionField,
    OptionWarning,
    describe_options,
    option,
    option_fields,
    parse_options,
)
from auditkit.pipeline import run_audit, select_probes
from auditkit.probes.base import Probe
from auditkit.registry import discover_probes
from auditkit.results import ProbeResult


@dataclass(frozen=True)
class ToyOptions:
    steps: int = option(20, "steps per restart", minimum=1,
                        budgets={"fast": 10, "standard": 20, "thorough": 100})
    eps: float = option(0.1, "radius", minimum=0.0, warn_above=1.0)
    rate: float = option(0.5, "a share", minimum=0.0, maximum=1.0, exclusive_minimum=True)
    norms: tuple[str, ...] = option(("linf",), "norms to attack", choices=("linf", "l2"))
    levels: tuple[float, ...] = option((0.0, 1.0), "levels", minimum=0.0, maximum=1.0)
    mode: Literal["auto", "always", "never"] = option("auto", "when to slice")
    ood: str | None = option(None, "extra OOD set (.npz)", path=True)
    limit: int | None = option(None, "cap (none: no cap)", minimum=1)
    enabled: bool = option(True, "run this part")
    extra: str | None = option(None, "an extra data set", data=True)
    label: str | None = option(None, "a class name or index")


class ToyProbe(Probe):
    name = "toy"
    Options = ToyOptions

    def run(self, context) -> ProbeResult:
        return ProbeResult(name=self.name, status="passed",
                           metrics={"steps": float(self.opts.steps)})


def _error(raw: dict, budget: str = "standard") -> str:
    with pytest.raises(AuditkitInputError) as info:
        parse_options(ToyProbe, raw, budget)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- the parser on one schema ----------------------------------------------------------
def test_defaults_follow_the_budget_and_strings_parse_like_python_values(tmp_path):
    assert parse_options(ToyProbe, {}, "fast").steps == 10
    assert parse_options(ToyProbe, {}, "thorough").steps == 100
    ood = tmp_path / "ood.npz"
    ood.write_bytes(b"x")
    from_strings = parse_options(ToyProbe, {
        "steps": "50", "eps": "0.25", "rate": "1", "norms": "LINF, l2", "levels": "[0, 0.5]",
        "mode": "Never", "ood": str(ood), "limit": "none", "enabled": "off",
    }, "fast")
    from_python = parse_options(ToyProbe, {
        "steps": 50, "eps": 0.25, "rate": 1, "norms": ("linf", "l2"), "levels": [0, 0.5],
        "mode": "never", "ood": ood, "limit": None, "enabled": False,
    }, "fast")
    assert from_strings == from_python
    assert from_strings.norms == ("linf", "l2") and from_strings.mode == "never"
    assert from_strings.steps == 50 and isinstance(from_strings.steps, int)
    assert from_strings.levels == (0.0, 0.5) and from_strings.ood == str(ood)
    # a whole float is a whole number; 2.5 is not
    assert parse_options(ToyProbe, {"steps": 3.0}, "fast").steps == 3


@pytest.mark.parametrize(("raw", "why", "accepted"), [
    ({"steps": "abc"}, "not a whole number", "a whole number ≥ 1"),
    ({"steps": "2.5"}, "not a whole number", "a whole number ≥ 1"),
    ({"steps": 0}, "below the minimum", "a whole number ≥ 1"),
    ({"steps": True}, "not a number", "a whole number ≥ 1"),
    ({"eps": "-0.1"}, "below the minimum", "a number ≥ 0"),
    ({"eps": "nan"}, "not a finite number", "a number ≥ 0"),
    ({"rate": 0}, "below the minimum", "a number > 0 and ≤ 1"),
    ({"levels": "0,2"}, "above the maximum", "a comma-separated list of numbers ≥ 0 and ≤ 1"),
    ({"norms": "linf,l3"}, "not an accepted value",
     "a comma-separated list of values from linf, l2"),
    ({"mode": "sometimes"}, "not an accepted value", "one of auto, always, never"),
    ({"enabled": "maybe"}, "not true or false", "true or false"),
    ({"steps": "none"}, "a value is required", "a whole number ≥ 1"),
    ({"ood": "/no/such/file.npz"}, "no such file", "the path of an existing file, or none"),
    ({"limit": "0"}, "below the minimum", "a whole number ≥ 1, or none"),
])
def test_a_bad_value_is_one_line_naming_option_value_and_what_is_accepted(raw, why, accepted):
    (key, value), = raw.items()
    shown = str(value).lower() if isinstance(value, bool) else str(value)
    message = _error(raw)
    assert message.startswith(f"--set toy.{key}={shown}: "), message
    assert why in message and message.endswith(f"accepted: {accepted}"), message


def test_unknown_option_lists_the_accepted_ones():
    message = _error({"stpes": 5})
    assert message.startswith("--set toy.stpes=5: unknown option for probe toy; accepted: ")
    assert "steps" in message and "enabled" in message


def test_a_directory_is_not_a_file(tmp_path):
    assert "not a regular file" in _error({"ood": str(tmp_path)})


def test_a_data_option_takes_a_file_a_folder_a_built_in_name_or_a_data_object(tmp_path):
    for value in (str(tmp_path), "digits"):
        assert parse_options(ToyProbe, {"extra": value}, "fast").extra == value
    data_object = object()
    assert parse_options(ToyProbe, {"extra": data_object}, "fast").extra is data_object
    message = _error({"extra": "no-such-set"})
    assert message == ("--set toy.extra=no-such-set: no such file, folder or built-in data set; "
                       "accepted: a data file or folder, or a built-in data set name, or none")


def test_a_text_option_takes_a_number_as_its_text_but_not_a_bool():
    assert parse_options(ToyProbe, {"label": 3}, "fast").label == "3"
    assert "expected text" in _error({"label": True})


def test_above_the_soft_bound_warns_once_and_keeps_the_value():
    with pytest.warns(OptionWarning, match=r"--set toy.eps=3: larger than the usual ≤ 1"):
        assert parse_options(ToyProbe, {"eps": "3"}, "fast").eps == 3.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parse_options(ToyProbe, {"eps": "1"}, "fast")  # at the bound: no warning


def test_describe_options_gives_type_budget_defaults_bounds_and_meaning():
    rows = {r["name"]: r for r in describe_options(ToyProbe)}
    assert rows["steps"]["type"] == "int"
    assert rows["steps"]["budget_defaults"] == {"fast": 10, "standard": 20, "thorough": 100}
    assert rows["steps"]["accepted"] == "a whole number ≥ 1"
    assert rows["ood"]["type"] == "str | none" and rows["norms"]["type"] == "str,…"
    assert rows["mode"]["accepted"] == "one of auto, always, never"
    assert rows["eps"]["meaning"] == "radius" and rows["eps"]["budget_defaults"] == {}


def test_a_list_default_is_refused_at_declaration():
    with pytest.raises(TypeError, match="immutable"):
        option([1, 2], "levels")


def test_policy_checks_table_sets_options_and_may_still_be_a_rule():
    toml = {"checks": {"adversarial": {"steps": 7}, "memorization": {"max_epochs": 3,
                                                                      "require": "pass"}}}
    policy = load_policy(toml)
    assert policy.options == {"adversarial": {"steps": 7}, "memorization": {"max_epochs": 3}}
    assert [r.target for r in policy.rules] == ["memorization"]  # options alone add no rule
    merged = merged_options(policy, {"adversarial": {"steps": "9"}})
    assert merged == {"adversarial": {"steps": "9"}, "memorization": {"max_epochs": 3}}
    with pytest.raises(AuditkitInputError, match=r"\[checks.adversarial\] table"):
        load_policy({"checks": {"adversarial.converged_in_steps": {"steps": 7}}})


def test_resolved_options_are_recorded_in_audit_json(demo_adapter, digits_data):
    result = run_audit(demo_adapter, digits_data, probes=[ToyProbe], budget="fast",
                       options={"toy": {"levels": "0.2", "enabled": "false"}})
    recorded = json.loads(result.to_json())["probes"]["toy"]["options"]
    expected = dataclasses.asdict(parse_options(ToyProbe, {"levels": (0.2,), "enabled": False},
                                                "fast"))
    assert recorded == {k: list(v) if isinstance(v, tuple) else v for k, v in expected.items()}
    assert recorded["steps"] == 10  # the budget's default, written down


# --- every option of every installed probe ---------------------------------------------
def _schema_probes() -> list:
    found = []
    for name, entry in discover_probes().items():
        if entry.loaded and getattr(entry.obj, "Options", None) is not None:
            found.append(pytest.param(entry.obj, id=name))
    return found or [pytest.param(None, marks=pytest.mark.skip("no probe declares Options"))]


#: Path options whose probe reads the file when it is built (so a bad one stops the scan before
#: any work): a valid file's content for each.
VALID_FILES = {
    "baseline": '{"probes": {"corruptions": {"status": "passed", "details": '
    '{"clean_accuracy": 0.9, "accuracy_table": {"gaussian_noise": {"1": 0.8}}}}}}',
}


def _valid_example(field: OptionField, budget: str, tmp_path: Path):
    """A valid value different from the budget's default: (python value, text for --set)."""
    spec, kind, default = field.spec, field.kind, field.default_for(budget)
    if spec.path or spec.data:
        target = tmp_path / f"{field.name}.npz"
        if field.name in VALID_FILES:
            target.write_text(VALID_FILES[field.name])
        else:
            target.write_bytes(b"\0")
        return str(target), str(target)
    if kind.base is bool:
        value = not default
        return value, str(value).lower()
    if field.choices is not None:
        other = [c for c in field.choices if (c,) != default and c != default] or list(field.choices)
        value = (other[0],) if kind.sequence else other[0]
        return value, str(other[0])
    if kind.base is str:
        return ("example",) if kind.sequence else "example", "example"
    low = spec.minimum if spec.minimum is not None else 0
    candidates = [low + 1, low + 0.5, low + 2, (spec.maximum or low + 1)]
    current = default[0] if isinstance(default, tuple) and default else default
    for candidate in candidates:
        number = int(candidate) if kind.base is int else float(candidate)
        if kind.base is int and number != candidate:
            continue
        fits = (spec.maximum is None or number <= spec.maximum) and (
            spec.warn_above is None or number <= spec.warn_above) and (
            not spec.exclusive_maximum or number < spec.maximum)
        if fits and number != current and (not spec.exclusive_minimum or number > low):
            return ((number,) if kind.sequence else number), str(number)
    raise AssertionError(f"no example value for {field.name}")


def _invalid_example(field: OptionField) -> str | None:
    spec, kind = field.spec, field.kind
    if spec.path or spec.data:
        return "/no/such/file.npz"
    if kind.base is bool:
        return "maybe"
    if field.choices is not None and kind.base is str:
        return "no-such-choice"
    if kind.base is str:
        return None  # any text is valid
    if spec.minimum is not None:
        below = spec.minimum - 1
        return str(int(below) if kind.base is int else below)
    return "not-a-number"


@pytest.mark.parametrize("probe_cls", _schema_probes())
def test_every_option_round_trips_from_set_policy_and_python(probe_cls, tmp_path):
    name = probe_cls.name
    budget = "fast"
    for field in option_fields(probe_cls.Options):
        value, text = _valid_example(field, budget, tmp_path)
        from_cli = _parse_sets([f"{name}.{field.name}={text}"])
        policy_file = tmp_path / "auditkit.toml"
        policy_file.write_text(f"[checks.{name}]\n{field.name} = {_toml(value)}\n")
        from_policy = merged_options(load_policy(policy_file), None)
        from_api = {name: {field.name: value}}
        for source, options in (("--set", from_cli), ("policy", from_policy), ("api", from_api)):
            (probe,), broken = select_probes([name], budget, options)
            assert not broken
            got = getattr(probe.opts, field.name)
            assert got == value, (field.name, source, got, value)
            assert probe.resolved_options()[field.name] == (
                list(value) if isinstance(value, tuple) else value)
    for b in BUDGETS:  # every declared budget default is itself a valid value
        parse_options(probe_cls, {f.name: f.default_for(b) for f in option_fields(
            probe_cls.Options) if not f.spec.path}, b)


def _toml(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


@pytest.mark.parametrize("probe_cls", _schema_probes())
def test_a_bad_option_exits_2_with_one_line_before_any_work(probe_cls, tmp_path):
    name = probe_cls.name
    missing_model = tmp_path / "never-loaded.pt"  # an option error must come first
    for field in option_fields(probe_cls.Options):
        bad = _invalid_example(field)
        if bad is None:
            continue
        res = CliRunner().invoke(app, ["scan", str(missing_model), "--probes", name,
                                       "--set", f"{name}.{field.name}={bad}",
                                       "--out", str(tmp_path / "out")])
        assert res.exit_code == 2, (field.name, res.output)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1, res.stderr
        assert f"--set {name}.{field.name}={bad}: " in lines[0] and "accepted: " in lines[0]
        assert not (tmp_path / "out").exists()
        # The Python API stops the same way, before touching the model.
        with pytest.raises(AuditkitInputError, match=f"--set {name}.{field.name}="):
            auditkit.scan(torch.nn.Linear(2, 2), (torch.zeros(4, 2), torch.zeros(4).long()),
                          probes=[name], options={name: {field.name: bad}})
        # So does the policy file, and it says which file.
        policy = tmp_path / "policy.toml"
        policy.write_text(f"[checks.{name}]\n{field.name} = {json.dumps(bad)}\n")
        res = CliRunner().invoke(app, ["scan", str(missing_model), "--probes", name,
                                       "--policy", str(policy), "--out", str(tmp_path / "out")])
        assert res.exit_code == 2, res.output
        assert f"{policy}" in res.stderr and f"--set {name}.{field.name}=" in res.stderr
