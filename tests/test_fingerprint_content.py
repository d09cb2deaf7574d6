"""Fingerprints by content: moved files compare unchanged, changes named, files hashed once."""

from __future__ import annotations

import copy
import importlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from robustness_checks.gating.compare import Comparator
from robustness_checks.settings import measured_settings, resolve, settings_fingerprint
from robustness_checks.spec.parse import validate_check

pytest_plugins = ["pytester"]

# {root} is the way from the spec's folder to the folder holding data/, weights/ and state/.
SPEC = """\
model: {{factory: robustness_checks.demo.model:digits_cnn, weights: {root}/weights/cnn.pt}}
data: {{tensors: {root}/data/test.pt}}
checks:
  - {{name: calibrated, type: calibration, max: 0.5, bootstrap: 20}}
  - name: robust
    type: adversarial
    attack: {{method: uniform, eps: {eps}}}
    min_accuracy: 0.0
  - name: detects-noise
    type: ood
    ood_data: {{tensors: {root}/data/noise.pt}}
    fit_data: {{tensors: {root}/data/test.pt}}
    score: mahalanobis
    bootstrap: 20
    min: 0.1
  - name: brightness
    type: fuzz
    perturbations: [{{kind: brightness, max: 0.1}}]
    inputs: 2
    max_examples: 5
    database: {root}/state/examples
"""


def make_files(folder: Path) -> None:
    """The spec's data (first 80 test digits), OOD noise images and the CNN's weights."""
    from robustness_checks.demo.digits import noise_images, test_set
    from robustness_checks.demo.model import digits_cnn

    for name in ("data", "weights", "state"):
        (folder / name).mkdir(parents=True)
    x, y = test_set(limit=80)
    torch.save({"x": x, "y": y}, folder / "data" / "test.pt")
    torch.save({"x": noise_images(60)[0]}, folder / "data" / "noise.pt")
    torch.save(digits_cnn(pretrained=True).state_dict(), folder / "weights" / "cnn.pt")


def write_spec(path: Path, root: str, eps: float = 0.03) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SPEC.format(root=root, eps=eps))


def run_in(pytester: pytest.Pytester, folder: Path, *args: str) -> pytest.RunResult:
    """pytest with `folder` as rootdir (so node ids are relative to it), one baseline store."""
    return pytester.runpytest(
        "-p",
        "no:cacheprovider",
        "--rootdir",
        str(folder),
        str(folder),
        f"--robustness-storage={pytester.path / 'store'}",
        *args,
    )


def moved(pytester: pytest.Pytester) -> Path:
    """The first layout's files copied to a second folder, the spec two folders deeper than
    the files and under another name of folder: `second/suite/specs/` with `../../inputs/`."""
    first, second = pytester.path / "first", pytester.path / "second"
    shutil.copytree(first, second / "inputs", ignore=shutil.ignore_patterns("specs", "*.json"))
    write_spec(second / "suite" / "specs" / "model.robustness.yaml", "../../inputs")
    return second


def save_first(pytester: pytest.Pytester) -> dict[str, Any]:
    first = pytester.path / "first"
    make_files(first)
    write_spec(first / "specs" / "model.robustness.yaml", "..")
    run_in(pytester, first, "--robustness-save=base").assert_outcomes(passed=4)
    return json.loads((pytester.path / "store" / "base.json").read_text())


def test_a_spec_moved_with_its_files_compares_as_unchanged(pytester: pytest.Pytester) -> None:
    saved = save_first(pytester)
    second = moved(pytester)
    result = run_in(
        pytester,
        second,
        "--robustness-compare=base",
        "--robustness-compare-strict",
        "--robustness-compare-fail=*:+0.0",
        f"--robustness-json={second / 'r.json'}",
    )
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["compared 4 of 4 checks against baseline 'base' (4 gated*"])
    records = json.loads((second / "r.json").read_text())["results"]
    assert records[0]["nodeid"] == "suite/specs/model.robustness.yaml::calibrated"
    before = {record["check"]: record["fingerprints"] for record in saved["results"]}
    for record in records:
        assert record["fingerprints"] == before[record["check"]]
        assert record["baseline"]["status"] == "compared"
    # The readable settings hold no path: the fuzz database's place says it is a location.
    fuzz = next(record for record in records if record["type"] == "fuzz")
    assert fuzz["settings"]["check"]["database"] == "(location)"
    assert "ood_data" not in next(r for r in records if r["type"] == "ood")["settings"]["check"]


def test_a_changed_setting_is_named_and_a_changed_pixel_is_a_data_change(
    pytester: pytest.Pytester,
) -> None:
    save_first(pytester)
    second = moved(pytester)
    write_spec(second / "suite" / "specs" / "model.robustness.yaml", "../../inputs", eps=0.05)
    strict = ("--robustness-compare=base", "--robustness-compare-strict")
    wider = run_in(pytester, second, *strict)
    wider.assert_outcomes(passed=3, failed=1)
    wider.stdout.fnmatch_lines(
        [
            "*robust*not comparable with baseline 'base': settings differ from baseline 'base': "
            "attack.eps 0.03 -> 0.05 (--robustness-compare-strict fails it)*"
        ]
    )

    write_spec(second / "suite" / "specs" / "model.robustness.yaml", "../../inputs")
    noise = second / "inputs" / "data" / "noise.pt"
    content = torch.load(noise)
    content["x"][7, 0, 3, 4] += 0.5  # one pixel of one OOD image
    torch.save(content, noise)
    pixel = run_in(pytester, second, *strict, f"--robustness-json={second / 'r.json'}")
    pixel.assert_outcomes(passed=3, failed=1)
    pixel.stdout.fnmatch_lines(["*detects-noise*not comparable*the data differs*"])
    records = json.loads((second / "r.json").read_text())["results"]
    changed = {r["check"]: r["baseline"]["data_changed"] for r in records}
    assert changed == {
        "calibrated": False,
        "robust": False,
        "detects-noise": True,
        "brightness": False,
    }


FIXTURE_TEST = """\
import os
from concurrent.futures import ThreadPoolExecutor

from robustness_checks.demo.digits import test_set
from robustness_checks.demo.model import digits_cnn


def test_model(robustness):
    model, data = digits_cnn(pretrained=True), test_set(limit=100)
    bootstrap = int(os.environ.get("BOOTSTRAP", "20"))
    robustness.calibration(model, data, name="calibrated", max=0.5, bootstrap=bootstrap)
    # A check run from a thread the test started carries fingerprints all the same.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(
            robustness.adversarial, model, data, name="robust", method="uniform", eps=0.1,
            min_accuracy=0.0,
        ).result()
"""


def test_fixture_results_are_fingerprinted_and_compared_like_spec_checks(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_fixture=FIXTURE_TEST)
    args = ("-p", "no:cacheprovider", "test_fixture.py")
    saved = pytester.runpytest(*args, "--robustness-save=base", "--robustness-json=a.json")
    saved.assert_outcomes(passed=1)
    records = json.loads((pytester.path / "a.json").read_text())["results"]
    assert [record["id"] for record in records] == [
        "test_fixture.py::test_model::calibrated",
        "test_fixture.py::test_model::robust",
    ]
    for record in records:
        assert set(record["fingerprints"]) == {"model", "data", "check"}
        assert record["fingerprints"]["check"] == settings_fingerprint(record["settings"])
    assert records[0]["fingerprints"]["model"] == records[1]["fingerprints"]["model"]
    assert records[0]["fingerprints"]["data"] == records[1]["fingerprints"]["data"]

    strict = ("--robustness-compare=base", "--robustness-compare-strict")
    same = pytester.runpytest(*args, *strict, "--robustness-compare-fail=*:+0.0")
    same.assert_outcomes(passed=1)
    same.stdout.fnmatch_lines(["compared 2 of 2 checks against baseline 'base' (2 gated*"])

    monkeypatch.setenv("BOOTSTRAP", "30")
    loose = pytester.runpytest(*args, "--robustness-compare=base")
    loose.assert_outcomes(passed=1)
    loose.stdout.fnmatch_lines(
        [
            "*test_fixture.py::test_model::calibrated: not comparable with baseline 'base'*"
            "settings differ from baseline 'base': bootstrap 20 -> 30*"
        ]
    )
    pytester.runpytest(*args, *strict).assert_outcomes(failed=1)


# Comparisons of records, as results files hold them.


def record(check: dict[str, Any], seed: int = 0, **settings: Any) -> dict[str, Any]:
    """A results record of `check` (YAML fields) with the fingerprints the plugin gives it."""
    spec = validate_check({"name": "robust", **check})
    measured = measured_settings(spec, resolve([]).model_copy(update={"seed": seed}), **settings)
    return {
        "nodeid": "specs/model.robustness.yaml::robust",
        "spec": "specs/model.robustness.yaml",
        "check": "robust",
        "type": spec.type,
        "metric": "adversarial_accuracy",
        "value": 0.5,
        "outcome": "passed",
        "gated": [],
        "fingerprints": {"model": "a" * 64, "data": "b" * 64, "check": fingerprint(measured)},
        "settings": measured,
    }


def fingerprint(measured: dict[str, Any]) -> str:
    return settings_fingerprint(measured)


def judge(before: dict[str, Any], now: dict[str, Any]) -> Any:
    return Comparator({"baseline": "main", "results": [before]}, []).judge(now)


PGD = {"type": "adversarial", "attack": {"method": "pgd", "eps": 0.03, "steps": 10}}


def test_the_settings_that_changed_are_listed_with_old_and_new_values() -> None:
    changed = copy.deepcopy(PGD)
    changed["attack"].update(eps="8/255", steps=20)
    found = judge(record(PGD), record({**changed, "min_accuracy": 0.4}, seed=1, bounds=[-1, 1]))
    assert found.status == "not comparable" and found.changed["settings"]
    assert found.reasons == [
        "settings differ from baseline 'main': attack.eps 0.03 -> 0.03137254901960784, "
        "attack.steps 10 -> 20, min_accuracy unset -> 0.4, bounds [0.0, 1.0] -> [-1, 1], "
        "seed 0 -> 1"
    ]
    assert judge(record(PGD), record(PGD)).status == "compared"


def test_a_baseline_without_its_settings_says_which_cannot_be_named() -> None:
    before = record(PGD)
    del before["settings"]  # a results file of an earlier version
    changed = copy.deepcopy(PGD)
    changed["attack"]["steps"] = 20
    found = judge(before, record(changed))
    assert found.changed["settings"]
    assert found.reasons == [
        "settings differ from baseline 'main' (the check's fields, the spec's bounds, "
        "precision or model output, or the seed, decision or confidence); which ones cannot "
        "be said: the baseline records no settings (a file saved by an earlier version)"
    ]
    edited = record(PGD)
    edited["settings"]["seed"] = 7  # no longer what its fingerprint was made from
    assert "do not give its settings fingerprint" in judge(edited, record(changed)).reasons[0]


def test_a_path_that_an_earlier_version_hashed_compares_as_unchanged() -> None:
    fuzz = {"type": "fuzz", "perturbations": [{"kind": "brightness", "max": 0.1}]}
    before = record({**fuzz, "database": "../state/examples"})
    before["settings"]["check"]["database"] = "../state/examples"  # as it was hashed before
    before["fingerprints"]["check"] = fingerprint(before["settings"])
    now = record({**fuzz, "database": "../../inputs/state/examples"})
    assert now["fingerprints"]["check"] != before["fingerprints"]["check"]
    found = judge(before, now)
    assert (found.status, found.reasons, found.changed["settings"]) == ("compared", [], False)
    no_database = judge(before, record({**fuzz, "database": False}))
    assert no_database.reasons == [
        "settings differ from baseline 'main': database '(location)' -> false"
    ]


def test_a_field_added_since_the_baseline_is_no_change_at_its_default() -> None:
    before = record(PGD)
    del before["settings"]["check"]["probe_budget"]  # saved before the field existed
    before["fingerprints"]["check"] = fingerprint(before["settings"])
    assert judge(before, record(PGD)).reasons == []
    found = judge(before, record({**PGD, "probe_budget": 0.5}))
    assert found.reasons == ["settings differ from baseline 'main': probe_budget 0.25 -> 0.5"]


SPEC_ONE = """\
model: {{factory: robustness_checks.demo.model:digits_cnn, weights: {root}/weights/cnn.pt}}
data: {{tensors: {root}/data/test.pt}}
checks:
  - name: detects-noise
    type: ood
    ood_data: {{tensors: {root}/data/noise.pt}}
"""


def runtime_module() -> Any:
    """The runtime module in sys.modules (pytester's runs drop modules they first imported, so a
    package attribute may name an older copy)."""
    return importlib.import_module("robustness_checks.execution.runtime")


def runtime_prints(spec: Path, root: str) -> Any:
    from robustness_checks.spec.parse import load_spec

    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(SPEC_ONE.format(root=root))
    document = load_spec(spec)
    runtime = runtime_module().SpecRuntime.load(document)
    check = document.spec.checks[0]
    return runtime.fingerprints(check, resolve([]))


def test_each_file_is_hashed_once_per_process_by_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = runtime_module()
    fingerprints = importlib.import_module("robustness_checks.fingerprints")
    calls: list[str] = []
    for name in ("fingerprint_tensors", "fingerprint_model"):
        original = getattr(runtime, name)
        monkeypatch.setattr(
            runtime, name, lambda *a, _f=original, _n=name: calls.append(_n) or _f(*a)
        )
    monkeypatch.setattr(fingerprints, "_BY_FILES", {})
    monkeypatch.setattr(fingerprints, "RACY_NS", 0)  # files written just now are kept too
    make_files(tmp_path / "files")
    first = runtime_prints(tmp_path / "a" / "spec.robustness.yaml", "../files")
    assert sorted(calls) == ["fingerprint_model", "fingerprint_tensors", "fingerprint_tensors"]
    # Another spec, elsewhere, reaching the same files through a link: nothing hashed again.
    (tmp_path / "link").symlink_to(tmp_path / "files")
    second = runtime_prints(tmp_path / "b" / "c" / "spec.robustness.yaml", "../../link")
    assert second == first and len(calls) == 3

    # One pixel of the data rewritten: hashed again, another data print; the model's is kept.
    path = tmp_path / "files" / "data" / "test.pt"
    content = torch.load(path)
    content["x"][0, 0, 0, 0] += 0.25
    torch.save(content, path)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    third = runtime_prints(tmp_path / "d" / "spec.robustness.yaml", "../files")
    assert third.data != first.data and third.model == first.model
    assert third.check == first.check and len(calls) == 4


def test_a_file_rewritten_within_a_clock_tick_is_not_trusted_to_its_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fingerprints = importlib.import_module("robustness_checks.fingerprints")
    monkeypatch.setattr(fingerprints, "_BY_FILES", {})
    path = tmp_path / "x.pt"
    path.write_bytes(b"one")
    key = ["data", fingerprints.file_identity(path)]
    assert fingerprints.print_by_files(key, lambda: "first") == "first"
    # Modified just now, so a rewrite with the same size and time could follow: not kept.
    assert fingerprints.print_by_files(key, lambda: "second") == "second"
    monkeypatch.setattr(fingerprints, "RACY_NS", -(10**18))
    assert fingerprints.print_by_files(key, lambda: "third") == "third"
    assert fingerprints.print_by_files(key, lambda: "fourth") == "third"
    assert fingerprints.print_by_files(None, lambda: "fifth") == "fifth"
