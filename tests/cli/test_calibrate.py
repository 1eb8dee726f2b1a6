"""``facerec calibrate`` and the collections' decision commands, against the recording gateway double (its
Detect describes a photo by its first 128 grey pixels, so a test draws the descriptors it wants)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facerec.calibration import calibrate
from facerec.cli import exit_codes
from facerec.cli.main import main
from tests.sdk.gateway_double import GatewayServer

PEOPLE = {"ann": 40, "bob": 120, "cid": 200}  # each person's grey level: their photos lie close together


@pytest.fixture
def gateway() -> Iterator[GatewayServer]:
    with GatewayServer() as server:
        yield server


def _photo(path: Path, level: int, noise: int, rng: np.random.Generator) -> None:
    pixels = np.clip(level + rng.integers(-noise, noise + 1, size=(8, 16)), 0, 255).astype(np.uint8)
    Image.fromarray(pixels, mode="L").save(path, format="PNG")


@pytest.fixture
def labelled_dir(tmp_path: Path) -> Path:
    """Three people of three photos each, one photo without a face, one file that is no photo."""
    rng = np.random.default_rng(3)
    for person, level in PEOPLE.items():
        (tmp_path / person).mkdir()
        for i in range(3):
            _photo(tmp_path / person / f"{i}.png", level, 6, rng)
    Image.new("L", (16, 8)).save(tmp_path / "ann" / "dark.png")  # all black: the double finds no face
    (tmp_path / "bob" / "notes.txt").write_text("not a photo")
    return tmp_path


def _descriptors(folder: Path) -> tuple[np.ndarray, list[str]]:
    vectors, labels = [], []
    for person in sorted(PEOPLE):
        for photo in sorted((folder / person).glob("[0-9].png")):
            with Image.open(photo) as image:
                vectors.append(np.asarray(list(image.convert("L").getdata())[:128], dtype=np.float32) / 255)
            labels.append(person)
    return np.stack(vectors), labels


def test_calibrate_json_reports_the_threshold_rates_and_pairs_of_the_folder(
    gateway: GatewayServer, labelled_dir: Path, capsys
):
    code = main(["--gateway", gateway.address, "calibrate", str(labelled_dir), "--target-fmr", "0.01", "--json"])
    assert code == exit_codes.OK
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    expected = calibrate(*_descriptors(labelled_dir), 0.01)
    for name in ("threshold", "fmr", "fnmr", "eer", "eer_threshold", "genuine_pairs", "impostor_pairs"):
        assert document[name] == pytest.approx(getattr(expected, name), abs=1e-5), name
    assert (document["genuine_pairs"], document["impostor_pairs"]) == (9, 27)
    assert (document["people"], document["faces"], document["photos"]) == (3, 9, 10)
    assert document["no_face"] == ["ann/dark.png"]
    assert [s["path"] for s in document["skipped_files"]] == ["bob/notes.txt"]
    assert document["applied_to"] is None
    assert "no face in ann/dark.png" in captured.err
    assert all(r.include_embeddings for r in gateway.gateway.requests["Detect"])  # type: ignore[attr-defined]


def test_calibrate_prints_the_figures_for_people(gateway: GatewayServer, labelled_dir: Path, capsys):
    assert main(["--gateway", gateway.address, "calibrate", str(labelled_dir)]) == exit_codes.OK
    out = capsys.readouterr().out
    assert "for FMR 0.001" in out and "EER" in out and "9 genuine pairs (3 people with 2+ faces)" in out


def test_calibrate_apply_sets_the_threshold_as_the_collections_fixed_one(
    gateway: GatewayServer, labelled_dir: Path, capsys
):
    argv = ["--gateway", gateway.address, "calibrate", str(labelled_dir), "--collection", "staff", "--apply"]
    assert main([*argv, "--json"]) == exit_codes.OK
    document = json.loads(capsys.readouterr().out)
    (request,) = gateway.gateway.requests["UpdateCollection"]
    assert request.threshold == pytest.approx(document["threshold"], abs=1e-6)  # type: ignore[attr-defined]
    assert request.HasField("target_fpir") and request.target_fpir == 0.0  # type: ignore[attr-defined]
    assert document["applied_to"] == "staff"


def test_calibrate_apply_without_a_collection_is_a_usage_error(gateway: GatewayServer, labelled_dir: Path):
    with pytest.raises(SystemExit) as exited:
        main(["--gateway", gateway.address, "calibrate", str(labelled_dir), "--apply"])
    assert exited.value.code == exit_codes.USAGE


def test_calibrate_refuses_a_target_fmr_out_of_range(gateway: GatewayServer, labelled_dir: Path, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--gateway", gateway.address, "calibrate", str(labelled_dir), "--target-fmr", "0.7"])
    assert exited.value.code == exit_codes.USAGE
    assert "target_fmr 0.7 is out of range" in capsys.readouterr().err


def test_calibrate_without_anyone_of_two_photos_exits_2_and_says_why(gateway: GatewayServer, tmp_path: Path, capsys):
    rng = np.random.default_rng(5)
    for person, level in PEOPLE.items():
        (tmp_path / person).mkdir()
        _photo(tmp_path / person / "0.png", level, 6, rng)
    assert main(["--gateway", gateway.address, "calibrate", str(tmp_path)]) == exit_codes.USAGE
    assert "no person has two faces" in capsys.readouterr().err


def test_collections_update_sends_only_the_settings_given(gateway: GatewayServer, capsys):
    argv = ["--gateway", gateway.address, "collections", "update", "staff", "--target-fpir", "0.02", "--json"]
    assert main(argv) == exit_codes.OK
    document = json.loads(capsys.readouterr().out)
    (request,) = gateway.gateway.requests["UpdateCollection"]
    assert request.target_fpir == 0.02 and not request.HasField("threshold")  # type: ignore[attr-defined]
    assert document["target_fpir"] == 0.02


def test_collections_update_without_a_setting_is_a_usage_error(gateway: GatewayServer, capsys):
    assert main(["--gateway", gateway.address, "collections", "update", "staff"]) == exit_codes.USAGE
    assert "needs --threshold, --target-fpir or --min-margin" in capsys.readouterr().err
    assert not gateway.gateway.requests["UpdateCollection"]


def test_collections_update_of_a_missing_collection_exits_3(gateway: GatewayServer):
    argv = ["--gateway", gateway.address, "collections", "update", "nowhere", "--min-margin", "0.05"]
    assert main(argv) == exit_codes.NOT_FOUND


def test_collection_settings_out_of_range_are_usage_errors(gateway: GatewayServer, capsys):
    for flag, value in (("--target-fpir", "0.9"), ("--min-margin", "1.5"), ("--threshold", "0")):
        with pytest.raises(SystemExit) as exited:
            main(["--gateway", gateway.address, "collections", "create", "c", flag, value])
        assert exited.value.code == exit_codes.USAGE
    assert not gateway.gateway.requests["CreateCollection"]


def test_collections_create_sends_the_decision_settings(gateway: GatewayServer, capsys):
    argv = ["--gateway", gateway.address, "collections", "create", "c", "--target-fpir", "0.01", "--min-margin", "0.05"]
    assert main(argv) == exit_codes.OK
    (request,) = gateway.gateway.requests["CreateCollection"]
    assert request.target_fpir == 0.01 and round(request.min_margin, 6) == 0.05  # type: ignore[attr-defined]
    assert not request.HasField("threshold")  # type: ignore[attr-defined]


def test_collections_calibrate_asks_the_gateway_and_prints_the_calibration(gateway: GatewayServer, capsys):
    argv = ["--gateway", gateway.address, "collections", "calibrate", "staff", "--target-fmr", "0.01", "--apply"]
    assert main([*argv, "--json"]) == exit_codes.OK
    document = json.loads(capsys.readouterr().out)
    (request,) = gateway.gateway.requests["CalibrateCollection"]
    assert (request.target_fmr, request.apply) == (0.01, True)  # type: ignore[attr-defined]
    for name in ("threshold", "fmr", "fnmr", "eer", "eer_threshold", "genuine_pairs", "impostor_pairs"):
        assert name in document
    assert document["applied"] is True
    assert main(argv) == exit_codes.OK
    assert "set as the fixed threshold of collection staff" in capsys.readouterr().out


def test_identify_sends_the_minimum_margin_and_prints_the_reason(gateway: GatewayServer, samples_dir: Path, capsys):
    argv = ["--gateway", gateway.address, "identify", str(samples_dir / "obama.jpg"), "--min-margin", "0.05"]
    assert main(argv) == exit_codes.OK
    (request,) = gateway.gateway.requests["Identify"]
    assert round(request.min_margin, 6) == 0.05  # type: ignore[attr-defined]
    assert capsys.readouterr().out.startswith("1 face(s), threshold 0.60: the collection fixed threshold")
