"""Audit data: the built-in digits, user files of every kind, splits and fingerprints."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
import torch

from auditkit.data import AuditData, load_data, make_splits
from auditkit.errors import AuditkitInputError

RNG = np.random.default_rng(0)
N = 12
SEX = np.array(["f", "m"] * (N // 2))
AGE = np.array(["young", "young", "old"] * (N // 3))


def _one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


# --- built-in ---------------------------------------------------------------------------------


def test_digits_is_the_bundled_hold_out_in_the_unit_box(digits_data):
    from sklearn.datasets import load_digits

    data = digits_data
    assert len(data) == 540 and data.input_shape == (1, 8, 8)
    assert data.x.dtype == torch.float32 and data.y.dtype == torch.long
    assert 0.0 <= float(data.x.min()) and float(data.x.max()) <= 1.0
    assert data.input_range == (0.0, 1.0) and data.modality == "image"
    assert data.class_names == [str(i) for i in range(10)]
    assert not data.synthetic
    # Stratified: every class is present in proportion (sklearn has 174–183 per class).
    counts = torch.bincount(data.y, minlength=10)
    assert int(counts.min()) >= 50 and int(counts.max()) <= 56
    # The training split is attached and disjoint; together they are all 1,797 images.
    assert data.train is not None and len(data.train) == 1257
    bunch = load_digits()
    every = {row.tobytes() + bytes([label]) for row, label in
             zip((bunch.images / 16.0).astype(np.float32).reshape(-1, 64), bunch.target,
                 strict=True)}
    audit = {r.tobytes() + bytes([int(label)]) for r, label in
             zip(data.x.reshape(-1, 64).numpy(), data.y, strict=True)}
    assert audit <= every
    assert load_data("digits").fingerprint() == data.fingerprint()  # same split every time


# --- tensors files ----------------------------------------------------------------------------


@pytest.fixture()
def npz_file(tmp_path):
    x = RNG.random((N, 1, 4, 4), dtype=np.float32)
    y = np.arange(N) % 3
    path = tmp_path / "audit.npz"
    np.savez(path, x=x, y=y, sex=SEX, age=AGE)
    return path, x, y


@pytest.fixture()
def pt_file(tmp_path):
    x = torch.rand(N, 5)
    y = torch.arange(N) % 2
    path = tmp_path / "audit.pt"
    torch.save({"x": x, "y": y, "sex": torch.tensor([0, 1] * (N // 2))}, path)
    return path, x, y


def test_npz_with_group_columns(npz_file):
    path, x, y = npz_file
    data = load_data(path)
    np.testing.assert_array_equal(data.x.numpy(), x)
    np.testing.assert_array_equal(data.y.numpy(), y)
    assert sorted(data.groups) == ["age", "sex"]  # every per-example column is a group
    np.testing.assert_array_equal(data.groups["sex"], SEX)
    assert data.input_range == (0.0, 1.0) and data.modality == "image"

    only_sex = load_data(path, sensitive=["sex"])
    assert list(only_sex.groups) == ["sex"]
    with pytest.raises(AuditkitInputError) as excinfo:
        load_data(path, sensitive=["race"])
    message = _one_line(excinfo)
    assert "race" in message and "sex" in message  # names the missing and the available


def test_pt_with_group_columns_and_tabular_shape(pt_file):
    path, x, y = pt_file
    data = load_data(path, sensitive=["sex"])
    torch.testing.assert_close(data.x, x)
    assert torch.equal(data.y, y)
    np.testing.assert_array_equal(data.groups["sex"], [0, 1] * (N // 2))
    assert data.modality == "tabular" and data.input_range is None
    with pytest.raises(AuditkitInputError, match="race"):
        load_data(path, sensitive=["race"])


def test_missing_arrays_and_bad_labels_are_clear_errors(tmp_path):
    np.savez(tmp_path / "no_y.npz", x=np.zeros((3, 4), np.float32))
    with pytest.raises(AuditkitInputError) as excinfo:
        load_data(tmp_path / "no_y.npz")
    assert "'y'" in _one_line(excinfo)
    np.savez(tmp_path / "float.npz", x=np.zeros((3, 4), np.float32), y=np.array([0, 0.5, 1]))
    with pytest.raises(AuditkitInputError, match="integer class indices"):
        load_data(tmp_path / "float.npz")
    np.savez(tmp_path / "nan.npz", x=np.array([[0.0, np.nan]] * 3, np.float32), y=np.zeros(3))
    with pytest.raises(AuditkitInputError, match="NaN"):
        load_data(tmp_path / "nan.npz")
    np.savez(tmp_path / "short.npz", x=np.zeros((3, 4), np.float32), y=np.zeros(2, np.int64))
    with pytest.raises(AuditkitInputError, match="3 inputs but 2 labels"):
        load_data(tmp_path / "short.npz")


class _CreatesFile:
    def __init__(self, path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_pickled_data_file_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"x": torch.zeros(2, 3), "y": torch.zeros(2), "evil": _CreatesFile(marker)},
               tmp_path / "data.pt")
    with pytest.raises(AuditkitInputError) as excinfo:
        load_data(tmp_path / "data.pt")
    assert "pickled" in _one_line(excinfo)
    assert not marker.exists()


def test_uint8_images_are_scaled_into_the_unit_box(tmp_path):
    pixels = RNG.integers(0, 256, size=(N, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "gray.npz", x=pixels, y=np.zeros(N, np.int64))
    data = load_data(tmp_path / "gray.npz")
    assert data.input_shape == (1, 8, 8)  # a channel axis is added
    np.testing.assert_allclose(data.x[:, 0].numpy(), pixels / 255.0, rtol=0, atol=1e-7)
    assert data.input_range == (0.0, 1.0) and data.modality == "image"

    rgb = RNG.integers(0, 256, size=(N, 6, 6, 3), dtype=np.uint8)  # channels last
    np.savez(tmp_path / "rgb.npz", x=rgb, y=np.zeros(N, np.int64))
    data = load_data(tmp_path / "rgb.npz")
    assert data.input_shape == (3, 6, 6)
    np.testing.assert_allclose(data.x.numpy(), np.moveaxis(rgb, -1, 1) / 255.0, atol=1e-7)


# --- image folders ----------------------------------------------------------------------------


@pytest.fixture()
def image_folder(tmp_path):
    from PIL import Image

    root = tmp_path / "images"
    pixels = {}
    rows = ["path,skin,site"]
    for label, cls in enumerate(["cat", "dog"]):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            array = RNG.integers(0, 256, size=(5, 4, 3), dtype=np.uint8)
            Image.fromarray(array, "RGB").save(root / cls / f"{i}.png")
            pixels[f"{cls}/{i}.png"] = (label, array)
            rows.append(f"./{cls}/{i}.png,{'dark' if i % 2 else 'light'},{cls}-{i}")
    (tmp_path / "groups.csv").write_text("\n".join(rows) + "\n")
    return root, tmp_path / "groups.csv", pixels


def test_image_folder_with_sidecar_groups(image_folder):
    root, groups_csv, pixels = image_folder
    data = load_data(root, groups_file=groups_csv, sensitive=["skin"])
    assert data.class_names == ["cat", "dog"]
    assert len(data) == 6 and data.input_shape == (3, 5, 4)
    assert data.input_range == (0.0, 1.0)
    assert list(data.groups) == ["skin"]
    # Each example keeps its own image, label and group row (sorted by class, then file).
    for index, rel in enumerate(sorted(pixels)):
        label, array = pixels[rel]
        assert int(data.y[index]) == label
        np.testing.assert_allclose(data.x[index].numpy(), np.moveaxis(array, -1, 0) / 255.0,
                                   atol=1e-7)
        assert data.groups["skin"][index] == ("dark" if rel.endswith("1.png") else "light")
    assert sorted(load_data(root, groups_file=groups_csv).groups) == ["site", "skin"]


def test_image_folder_errors_are_clear(image_folder, tmp_path):
    root, groups_csv, _ = image_folder
    with pytest.raises(AuditkitInputError) as excinfo:
        load_data(root, groups_file=groups_csv, sensitive=["age"])
    assert "age" in _one_line(excinfo) and "skin" in str(excinfo.value)
    with pytest.raises(AuditkitInputError, match="--groups-file"):
        load_data(root, sensitive=["skin"])  # groups need a sidecar file
    partial = tmp_path / "partial.csv"
    partial.write_text("path,skin\ncat/0.png,dark\n")
    with pytest.raises(AuditkitInputError, match="no row for 5 images"):
        load_data(root, groups_file=partial)
    with pytest.raises(AuditkitInputError, match="--groups-file"):
        load_data(root, groups_file=tmp_path / "absent.csv")
    (tmp_path / "flat").mkdir()
    with pytest.raises(AuditkitInputError, match="one subfolder per class"):
        load_data(tmp_path / "flat")


def test_greyscale_image_folder_stays_single_channel(tmp_path):
    from PIL import Image

    array = RNG.integers(0, 256, size=(4, 4), dtype=np.uint8)
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        Image.fromarray(array, "L").save(tmp_path / cls / "x.png")
    data = load_data(tmp_path)
    assert data.input_shape == (1, 4, 4)
    np.testing.assert_allclose(data.x[0, 0].numpy(), array / 255.0, atol=1e-7)


# --- tables -----------------------------------------------------------------------------------


def _frame() -> pd.DataFrame:
    return pd.DataFrame({
        "income": RNG.normal(size=N),
        "debt": RNG.integers(0, 5, size=N),
        "sex": SEX,
        "age_band": AGE,
        "outcome": np.where(np.arange(N) % 3 == 0, "default", "repaid"),
    })


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_tables_with_target_and_sensitive_columns(tmp_path, suffix):
    frame = _frame()
    path = tmp_path / f"credit{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    data = load_data(path, target="outcome", sensitive=["sex", "age_band"])
    assert data.modality == "tabular" and data.input_range is None
    assert data.feature_names == ["income", "debt"]  # target and groups are not features
    np.testing.assert_allclose(data.x.numpy(), frame[["income", "debt"]].to_numpy(np.float32),
                               rtol=1e-6)
    assert data.class_names == ["default", "repaid"]
    np.testing.assert_array_equal(data.y.numpy(), (frame["outcome"] == "repaid").astype(int))
    np.testing.assert_array_equal(data.groups["sex"], SEX)
    np.testing.assert_array_equal(data.groups["age_band"], AGE)


def test_table_errors_are_clear(tmp_path):
    frame = _frame()
    path = tmp_path / "credit.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(AuditkitInputError) as excinfo:
        load_data(path, target="outcome", sensitive=["sex"])  # age_band is text, not a feature
    assert "age_band" in _one_line(excinfo) and "non-numeric" in str(excinfo.value)
    with pytest.raises(AuditkitInputError, match="--target"):
        load_data(path, sensitive=["sex", "age_band"])
    with pytest.raises(AuditkitInputError, match="no column race"):
        load_data(path, target="outcome", sensitive=["race"])
    frame.loc[3, "income"] = np.nan
    frame.to_csv(path, index=False)
    with pytest.raises(AuditkitInputError, match="NaN"):
        load_data(path, target="outcome", sensitive=["sex", "age_band"])


def test_integer_targets_keep_their_class_index(tmp_path):
    frame = pd.DataFrame({"f": [0.1, 0.2, 0.3, 0.4], "label": [2, 0, 2, 1]})
    frame.to_csv(tmp_path / "t.csv", index=False)
    data = load_data(tmp_path / "t.csv", target="label")
    assert data.y.tolist() == [2, 0, 2, 1]  # label k is still output k of the model
    assert data.class_names == ["0", "1", "2"]


def test_unknown_specs_are_clear_errors(tmp_path):
    with pytest.raises(AuditkitInputError, match="not a built-in data set"):
        load_data("no-such-dataset")
    (tmp_path / "data.json").write_text("{}")
    with pytest.raises(AuditkitInputError, match="unsupported data file type"):
        load_data(tmp_path / "data.json")


# --- splits and fingerprints ------------------------------------------------------------------


def test_splits_are_deterministic_disjoint_and_complete():
    first, again, other = make_splits(540, 0), make_splits(540, 0), make_splits(540, 1)
    for name in ("calibration", "evaluation"):
        np.testing.assert_array_equal(first[name], again[name])
    assert not np.array_equal(first["calibration"], other["calibration"])
    assert len(first["calibration"]) == 162
    assert not set(first["calibration"]) & set(first["evaluation"])
    assert sorted([*first["calibration"], *first["evaluation"]]) == list(range(540))


def test_splits_and_fingerprint_are_recorded_in_audit_json(digits_data):
    from auditkit.adapters import TorchModelAdapter
    from auditkit.pipeline import run_audit
    from auditkit.results import AuditResult

    torch.manual_seed(0)
    adapter = TorchModelAdapter(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)),
                                input_shape=(1, 8, 8), device="cpu")
    result = run_audit(adapter, digits_data, probes=["performance"], seed=7)
    recorded = AuditResult.from_json(result.to_json()).data
    assert recorded["fingerprint"] == digits_data.fingerprint()
    assert recorded["n"] == 540
    splits = make_splits(540, 7)
    assert recorded["splits"]["seed"] == 7
    for name, index in splits.items():
        assert recorded["splits"][name]["n"] == len(index)
        assert recorded["splits"][name]["sha256"] == hashlib.sha256(index.tobytes()).hexdigest()[:16]


def test_fingerprint_changes_exactly_when_the_data_changes():
    x = torch.rand(10, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    y = torch.arange(10) % 2
    groups = {"sex": SEX[:10]}
    base = AuditData(name="a", x=x, y=y, groups=groups)
    assert AuditData(name="renamed", x=x.clone(), y=y.clone(), groups=dict(groups)).fingerprint() \
        == base.fingerprint()
    pixel = x.clone()
    pixel[3, 0, 1, 1] += 1e-3
    label = y.clone()
    label[0] = 1 - label[0]
    group = SEX[:10].copy()
    group[2] = "x"
    changed = [
        AuditData(name="a", x=pixel, y=y, groups=groups),
        AuditData(name="a", x=x, y=label, groups=groups),
        AuditData(name="a", x=x, y=y, groups={"sex": group}),
        AuditData(name="a", x=x, y=y),
        AuditData(name="a", x=x.reshape(10, 16), y=y, groups=groups),
    ]
    fingerprints = {d.fingerprint() for d in changed}
    assert len(fingerprints) == len(changed) and base.fingerprint() not in fingerprints


def test_subset_keeps_groups_aligned():
    data = AuditData(name="a", x=torch.arange(6.0).view(6, 1), y=torch.arange(6) % 2,
                     groups={"g": np.array(list("abcdef"))})
    part = data.subset([4, 1])
    assert part.x.view(-1).tolist() == [4.0, 1.0]
    assert part.groups["g"].tolist() == ["e", "b"]


# --- empty data, sensitive columns as inputs, labels --------------------------------------------


def test_empty_data_files_say_there_are_no_examples(tmp_path):
    np.savez(tmp_path / "empty.npz", x=np.zeros((0, 1, 8, 8), np.float32),
             y=np.zeros(0, np.int64))
    torch.save({"x": torch.zeros(0, 5), "y": torch.zeros(0, dtype=torch.long)},
               tmp_path / "empty.pt")
    pd.DataFrame({"f": [], "label": []}).to_csv(tmp_path / "empty.csv", index=False)
    for name in ("empty.npz", "empty.pt", "empty.csv"):
        with pytest.raises(AuditkitInputError) as excinfo:
            load_data(tmp_path / name, target="label")
        assert "no examples" in _one_line(excinfo) and name in str(excinfo.value)


def test_numeric_sensitive_columns_can_stay_model_inputs(tmp_path):
    frame = pd.DataFrame({
        "income": RNG.normal(size=N),
        "sex": np.tile([0, 1], N // 2),
        "debt": RNG.integers(0, 5, size=N),
        "age": RNG.integers(20, 70, size=N),
        "outcome": np.arange(N) % 2,
    })
    path = tmp_path / "credit.csv"
    frame.to_csv(path, index=False)
    kept = load_data(path, target="outcome", sensitive=["age", "sex"], keep_sensitive_features=True)
    # The table's own column order, as a model trained on the table expects.
    assert kept.feature_names == ["income", "sex", "debt", "age"]
    np.testing.assert_allclose(
        kept.x.numpy(), frame[["income", "sex", "debt", "age"]].to_numpy(np.float32), rtol=1e-6
    )
    np.testing.assert_array_equal(kept.groups["sex"], frame["sex"].astype(str))
    dropped = load_data(path, target="outcome", sensitive=["age", "sex"])
    assert dropped.feature_names == ["income", "debt"]

    frame["sex"] = np.where(frame["sex"] == 1, "m", "f")
    frame.to_csv(path, index=False)
    with pytest.raises(AuditkitInputError) as excinfo:
        load_data(path, target="outcome", sensitive=["sex"], keep_sensitive_features=True)
    message = _one_line(excinfo)
    assert "--keep-sensitive-features" in message and "sex" in message and "numeric" in message


def test_negative_labels_get_one_message_whatever_the_source(tmp_path):
    """The label range is checked in one place (where the model's class count is known)."""
    from auditkit.adapters import TorchModelAdapter
    from auditkit.pipeline import build_context

    np.savez(tmp_path / "neg.npz", x=np.zeros((3, 4), np.float32), y=np.array([0, -1, 1]))
    from_file = load_data(tmp_path / "neg.npz")
    in_memory = AuditData(name="neg.npz", x=torch.zeros(3, 4), y=torch.tensor([0, -1, 1]),
                          modality="tabular", input_range=None)
    adapter = TorchModelAdapter(torch.nn.Linear(4, 2), input_shape=(4,), input_range=None,
                                device="cpu")
    messages = []
    for data in (from_file, in_memory):
        with pytest.raises(AuditkitInputError) as excinfo:
            build_context(adapter, data)
        messages.append(_one_line(excinfo))
    assert messages[0] == messages[1]
    assert "label -1" in messages[0] and "0..K-1" in messages[0] and "neg.npz" in messages[0]
