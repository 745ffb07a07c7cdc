"""The bounded parsers measure structure, not text: brackets inside strings do not count."""

from __future__ import annotations

import json

import pytest

from auditkit.bounds import jsontext
from auditkit.errors import AuditkitInputError


def test_brackets_inside_strings_are_not_nesting():
    text = json.dumps({"note": "[" * 500 + '\\" {{{', "list": [[1]]})
    assert jsontext.nesting_depth(text) == 3
    assert jsontext.loads(text, what="x", fix="y")["list"] == [[1]]


def test_depth_nan_and_counts_are_refused_in_one_line():
    for text, needle in [("[" * 65 + "]" * 65, "nested 65 levels"),
                         ('{"a": NaN}', "NaN (not a number)"),
                         ('[-Infinity]', "-Infinity"),
                         ("[" + ",".join(["1"] * 11) + "]", "more than 10 values")]:
        with pytest.raises(AuditkitInputError, match="^f.json: .*; fix it$") as info:
            jsontext.loads(text, what="f.json", fix="fix it", max_values=10)
        assert needle in str(info.value) and "\n" not in str(info.value)


def test_toml_depth_and_nan_are_refused():
    assert jsontext.toml_loads('name = "it\'s [[[["\n[gates]\n"a.b" = ">= 0.5"\n', what="p",
                               fix="f")["gates"] == {"a.b": ">= 0.5"}
    with pytest.raises(AuditkitInputError, match="nested"):
        jsontext.toml_loads("x = " + "[" * 100 + "]" * 100, what="p", fix="f")
    with pytest.raises(AuditkitInputError, match="not a number"):
        jsontext.toml_loads("x = inf", what="p", fix="f")
