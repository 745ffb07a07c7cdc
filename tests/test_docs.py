"""The docs site says what the code does: every metric defined on its probe's page, with a
reference; the site builds with ``mkdocs build --strict``; the README stays a front page.

The probe pages (``docs/probes/<name>.md``) are generated from the probes' own declarations
(``Probe.metrics``, ``Probe.budget_levels``) plus the references below; a change to a metric
regenerates them on purpose::

    AUDITKIT_REGEN_DOCS=1 python -m pytest tests/test_docs.py
"""

from __future__ import annotations

import inspect
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BUILTIN = ("performance", "adversarial", "calibration", "bias", "memorization")

# Where each metric comes from: the first pattern that matches a metric's name gives its
# reference (``proxy_`` metrics share their group metric's).
REFERENCES: list[tuple[str, str]] = [
    (r"^balanced_accuracy$", "Brodersen et al., *The balanced accuracy and its posterior "
     "distribution*, ICPR 2010"),
    (r"^(accuracy|worst_class_accuracy|overall_accuracy)$", "scikit-learn, "
     "[`accuracy_score`](https://scikit-learn.org/stable/modules/model_evaluation.html"
     "#accuracy-score)"),
    (r"^exact_robust_accuracy$", "Goodfellow, Shlens, Szegedy, *Explaining and Harnessing "
     "Adversarial Examples*, ICLR 2015 (the worst L∞ perturbation of a linear model)"),
    (r"^fgsm", "Goodfellow, Shlens, Szegedy, *Explaining and Harnessing Adversarial Examples*, "
     "ICLR 2015"),
    (r"^(eot|transform)", "Athalye, Carlini, Wagner, *Obfuscated Gradients Give a False Sense of "
     "Security*, ICML 2018 (Expectation over Transformation)"),
    (r"^noise", "Carlini et al., *On Evaluating Adversarial Robustness*, arXiv:1902.06705, 2019 "
     "(random noise as a sanity baseline)"),
    (r"^autoattack", "Croce, Hein, *Reliable evaluation of adversarial robustness with an "
     "ensemble of diverse parameter-free attacks*, ICML 2020"),
    (r"square", "Andriushchenko et al., *Square Attack: a query-efficient black-box "
     "adversarial attack via random search*, ECCV 2020"),
    (r"^decision", "Chen, Jordan, Wainwright, *HopSkipJumpAttack: A Query-Efficient "
     "Decision-Based Attack*, IEEE S&P 2020"),
    (r"^(pgd|robust_accuracy$|clean_accuracy|eps$|l2_eps|n_examples)", "Madry et al., *Towards "
     "Deep Learning Models Resistant to Adversarial Attacks*, ICLR 2018"),
    (r"^(temperature|.*_after_temperature)$", "Guo et al., *On Calibration of Modern Neural "
     "Networks*, ICML 2017"),
    (r"^adaptive_ece$", "Nixon et al., *Measuring Calibration in Deep Learning*, CVPR "
     "Workshops 2019"),
    (r"^classwise_ece$", "Kull et al., *Beyond temperature scaling: Obtaining well-calibrated "
     "multiclass probabilities with Dirichlet calibration*, NeurIPS 2019"),
    (r"^(ece|mce|mean_confidence|nll)$", "Naeini, Cooper, Hauskrecht, *Obtaining Well "
     "Calibrated Probabilities Using Bayesian Binning*, AAAI 2015; Guo et al., ICML 2017"),
    (r"^brier$", "Brier, *Verification of forecasts expressed in terms of probability*, Monthly "
     "Weather Review 1950"),
    (r"aurc", "Geifman, Uziel, El-Yaniv, *Bias-Reduced Uncertainty Estimation for Deep Neural "
     "Classifiers*, ICLR 2019"),
    (r"^(ood_auroc|confidence_auroc)$", "Hendrycks, Gimpel, *A Baseline for Detecting "
     "Misclassified and Out-of-Distribution Examples in Neural Networks*, ICLR 2017"),
    (r"(entropy|aleatoric|epistemic|uncertainty)", "Depeweg et al., *Decomposition of "
     "Uncertainty in Bayesian Deep Learning*, ICML 2018; Gal, Ghahramani, *Dropout as a Bayesian "
     "Approximation*, ICML 2016"),
    (r"(robust_accuracy|ece)", "Nanda et al., *Fairness Through Robustness: Investigating "
     "Robustness Disparity in Deep Learning*, FAccT 2021 (per-group robustness and calibration)"),
    (r"(demographic_parity|equalized_odds)", "Hardt, Price, Srebro, *Equality of Opportunity in "
     "Supervised Learning*, NeurIPS 2016; fairlearn "
     "[metrics](https://fairlearn.org/main/user_guide/assessment/common_fairness_metrics.html)"),
    (r"(group|slice|accuracy_difference|accuracy_ratio)", "fairlearn "
     "[`MetricFrame`](https://fairlearn.org/main/user_guide/assessment/index.html); intervals: "
     "Efron, Tibshirani, *An Introduction to the Bootstrap*, 1993"),
    (r"(fit_time_ratio|fit_epochs)", "Arpit et al., *A Closer Look at Memorization in Deep "
     "Networks*, ICML 2017"),
    (r"(label|pixels|generalization_gap|chance|held_out|train_accuracy)", "Zhang et al., *Understanding deep "
     "learning requires rethinking generalization*, ICLR 2017"),
]


def reference(metric: str) -> str:
    for pattern, ref in REFERENCES:
        if re.search(pattern, metric):
            return ref
    raise AssertionError(f"no reference for metric {metric!r}: add one to REFERENCES")


def _probe_classes():
    from auditkit.probes.adversarial import AdversarialProbe
    from auditkit.probes.bias import BiasProbe
    from auditkit.probes.calibration import CalibrationProbe
    from auditkit.probes.memorization import MemorizationProbe
    from auditkit.probes.performance import PerformanceProbe

    return [PerformanceProbe, AdversarialProbe, CalibrationProbe, BiasProbe, MemorizationProbe]


def probe_page(cls) -> str:
    """The page for one built-in probe, from its declarations alone."""
    def cell(text: str) -> str:
        return " ".join(str(text).split()).replace("|", "\\|")

    doc = inspect.cleandoc(cls.__doc__ or "").split("\n\n")[0]
    lines = [
        f"# {cls.title} (`{cls.name}`)", "",
        f"*{cls.description}*", "",
        " ".join(doc.split()), "",
        "## What each budget does", "",
        "| budget | work |", "|---|---|",
        *(f"| `{level}` | {cell(work)} |" for level, work in cls.budget_levels.items()),
        "",
        "## Metrics", "",
        f"Each is in `audit.json` under `probes.{cls.name}.metrics` and can be gated as "
        f"`{cls.name}.<metric>` ([policies](../ci.md)); *better* is the side "
        "`auditkit diff` treats as an improvement.", "",
        "| metric | better | definition | reference |", "|---|---|---|---|",
    ]
    for name, spec in cls.metrics.items():
        better = {"higher": "higher", "lower": "lower"}.get(spec.direction, "—")
        lines.append(f"| `{name}` | {better} | {cell(spec.description)} | {reference(name)} |")
    lines += ["", "Every option (`--set " + cls.name + ".<option>=value`) with its type, "
              "default per budget and meaning: `auditkit probes --verbose`.", ""]
    return "\n".join(lines)


def test_every_metric_is_defined_on_its_probe_page_with_a_reference():
    regen = os.environ.get("AUDITKIT_REGEN_DOCS")
    for cls in _probe_classes():
        page = DOCS / "probes" / f"{cls.name}.md"
        want = probe_page(cls)
        if regen:
            page.write_text(want, encoding="utf-8")
        text = page.read_text(encoding="utf-8")
        assert text == want, (
            f"{page} is out of date with {cls.__name__}'s declarations: "
            "AUDITKIT_REGEN_DOCS=1 python -m pytest tests/test_docs.py"
        )
        for metric in cls.metrics:
            assert f"| `{metric}` |" in text, (cls.name, metric)


def test_the_readme_is_a_front_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 150
    assert "make demo" in readme and "make test" in readme
    assert "docs/img/report.png" in readme and (DOCS / "img" / "report.png").is_file()
    for probe in BUILTIN:
        assert f"`{probe}`" in readme, probe
        assert f"docs/probes/{probe}.md" in readme, probe


def test_every_docs_page_is_in_the_navigation():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in DOCS.rglob("*.md"):
        assert page.relative_to(DOCS).as_posix() in nav, page


@pytest.mark.skipif(not (ROOT / ".venv-docs" / "bin" / "mkdocs").exists() and
                    shutil.which("mkdocs") is None,
                    reason="the docs builder is not installed (make install puts it in "
                           ".venv-docs)")
def test_the_docs_site_builds_strictly(tmp_path):
    local = ROOT / ".venv-docs" / "bin" / "mkdocs"
    mkdocs = str(local) if local.exists() else shutil.which("mkdocs")
    done = subprocess.run([mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "api" / "index.html").is_file()
    assert "auditkit.api.scan" in (tmp_path / "site" / "api" / "index.html").read_text()
