"""The front written to nas.json holds no dominated trial, and every trial left off is dominated."""

import optuna
from auditkit_nas.objectives import Objective
from auditkit_nas.summary import summarize
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.trial import TrialState, create_trial

optuna.logging.set_verbosity(optuna.logging.WARNING)


def worse_or_equal(a, b, maximize):
    """``a`` is nowhere better than ``b`` (written out here, independent of the package)."""
    return all((x <= y) if up else (x >= y) for x, y, up in zip(a, b, maximize, strict=True))


def dominated_by(a, b, maximize):
    return worse_or_equal(a, b, maximize) and tuple(a) != tuple(b)


@st.composite
def trial_sets(draw):
    k = draw(st.integers(1, 3))
    maximize = draw(st.lists(st.booleans(), min_size=k, max_size=k))
    # Few distinct values: ties and duplicates are common, the hard cases for a front.
    value = st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.9, 1.0])
    trials = draw(st.lists(
        st.one_of(st.lists(value, min_size=k, max_size=k), st.none()), min_size=0, max_size=25
    ))
    return maximize, trials


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(case=trial_sets())
def test_front_is_exactly_the_non_dominated_trials(case):
    maximize, values = case
    objectives = [Objective("p", f"m{i}", "higher" if up else "lower") for i, up in enumerate(maximize)]
    study = optuna.create_study(directions=[o.optuna_direction for o in objectives])
    for v in values:
        if v is None:
            study.add_trial(create_trial(state=TrialState.FAIL))
        else:
            study.add_trial(create_trial(values=v, params={}, distributions={}))
    document = summarize(study, objectives, {})
    points = {t["number"]: [t["metrics"][o.name] for o in objectives]
              for t in document["trials"] if t["state"] == "complete"}
    front = document["pareto_front"]
    assert len(front) == len(set(front)) and set(front) <= set(points)
    for n in front:
        assert not any(dominated_by(points[n], points[m], maximize) for m in points), n
    for n in set(points) - set(front):
        assert any(dominated_by(points[n], points[m], maximize) for m in front), n
    # nas.json lists every trial exactly once.
    assert [t["number"] for t in document["trials"]] == list(range(len(values)))
    if points:
        assert document["chosen"] in front
