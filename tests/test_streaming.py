"""Data larger than memory: streamed inputs give the same results as inputs held whole."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from robustness_checks.examples import Examples
from robustness_checks.loading import streamed
from robustness_checks.loading.data import build_data
from robustness_checks.loading.streamed import StreamedInputs
from robustness_checks.spec.schema import DataSpec


class Generated(Dataset):
    """Images drawn from a per-index seed when read; counts every read."""

    def __init__(self, count: int = 300, shape: tuple[int, ...] = (3, 16, 16)) -> None:
        self.count, self.shape, self.reads = count, shape, 0

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        self.reads += 1
        generator = torch.Generator().manual_seed(index)
        return torch.rand(self.shape, generator=generator), index % 4


GENERATED = Generated()


def generated(count: int = 300) -> Generated:
    return Generated(count)


def whole(dataset: Generated) -> tuple[torch.Tensor, torch.Tensor]:
    rows = [dataset[i] for i in range(len(dataset))]
    return torch.stack([x for x, _ in rows]), torch.tensor([y for _, y in rows])


def test_indexing_streamed_inputs_equals_indexing_the_stacked_tensor() -> None:
    dataset = Generated(50)
    x, _ = whole(dataset)
    inputs = StreamedInputs(dataset, 50, (3, 16, 16))
    assert inputs.shape == x.shape and len(inputs) == 50 and inputs.dim() == 4
    assert torch.equal(inputs[3:17], x[3:17])
    assert torch.equal(inputs[torch.tensor([5, 0, 49])], x[torch.tensor([5, 0, 49])])
    assert torch.equal(inputs[-1], x[-1]) and torch.equal(inputs[[2, 2]], x[[2, 2]])
    assert torch.equal(inputs.prefix(10)[0:10], x[:10]) and len(inputs.prefix(10)) == 10
    with pytest.raises(IndexError):
        inputs[50]


def test_a_factory_dataset_streams_when_asked_and_reads_lazily() -> None:
    spec = DataSpec(factory="tests.test_streaming:generated", stream=True, batch_size=64)
    examples = build_data(spec, Path("."))
    assert examples.streamed and len(examples) == 300
    assert examples.y.tolist() == [i % 4 for i in range(300)]
    x, _ = whole(Generated())
    assert torch.equal(torch.cat(list(examples.input_batches())), x)
    reads = examples.x.dataset.reads
    assert examples.value_range() == (float(x.min()), float(x.max()))
    assert examples.value_range() == (float(x.min()), float(x.max()))
    assert examples.x.dataset.reads - reads == 300  # one pass, however often it is asked
    limited = build_data(spec.model_copy(update={"limit": 20}), Path("."))
    assert len(limited) == 20 and len(limited.take(5).x) == 5


def test_auto_streams_only_above_the_memory_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = DataSpec(factory="tests.test_streaming:generated")
    assert not build_data(spec, Path(".")).streamed
    monkeypatch.setattr(streamed, "STREAM_ABOVE_BYTES", 300 * 3 * 16 * 16 * 4 - 1)
    assert build_data(spec, Path(".")).streamed
    assert not build_data(spec.model_copy(update={"stream": False}), Path(".")).streamed


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.AvgPool2d(4), nn.Flatten(), nn.Linear(48, 4)).eval()


SPEC = """\
model: {{factory: tests.test_streaming:tiny_model}}
data: {{factory: tests.test_streaming:generated, stream: {stream}, batch_size: 64}}
seed: 3
checks:
  - {{name: ece, type: calibration, max: 1.0}}
  - {{name: pgd, type: adversarial, attack: {{method: pgd, eps: [0.01, 0.03], steps: 5}},
     min_accuracy: 0.0}}
  - {{name: fuzz, type: fuzz, inputs: 3, max_examples: 5,
     perturbations: [{{kind: brightness, max: 0.1}}]}}
"""


def test_checks_on_streamed_data_equal_those_on_data_held_whole(tmp_path: Path) -> None:
    import robustness_checks
    from robustness_checks.checks.runner import execute
    from robustness_checks.execution.runtime import SpecRuntime
    from robustness_checks.spec.parse import load_spec

    outcomes = {}
    for stream in ("true", "false"):
        path = tmp_path / f"{stream}.robustness.yaml"
        path.write_text(textwrap.dedent(SPEC.format(stream=stream)))
        document = load_spec(path)
        runtime = SpecRuntime.load(document)
        assert runtime.examples.streamed == (stream == "true")
        results = [execute(runtime.context(check), check) for check in document.spec.checks]
        outcomes[stream] = [(r.outcome, r.value, r.ci, r.evaluations) for r in results]
    assert outcomes["true"] == outcomes["false"]
    assert robustness_checks  # the package's public import works beside the runtime


def test_streamed_data_has_the_fingerprint_of_the_same_data_held_whole() -> None:
    from robustness_checks.fingerprints import fingerprint_tensors

    dataset = Generated(70)
    x, y = whole(dataset)
    inputs = StreamedInputs(dataset, 70, (3, 16, 16))
    assert fingerprint_tensors(inputs, y) == fingerprint_tensors(x, y)
    assert fingerprint_tensors(inputs.prefix(69), y[:69]) != fingerprint_tensors(x, y)
    assert isinstance(Examples(inputs, y).take(3).x, StreamedInputs)


def test_a_streamed_spec_runs_end_to_end_with_reports(pytester: pytest.Pytester) -> None:
    import inspect
    import json

    source = "\n".join(inspect.getsource(item) for item in (Generated, generated, tiny_model))
    header = "import torch\nfrom torch import nn\nfrom torch.utils.data import Dataset\n\n"
    pytester.makepyfile(factories=header + source)
    spec = SPEC.format(stream="true").replace("tests.test_streaming", "factories.py")
    pytester.makefile(".robustness.yaml", spec=textwrap.dedent(spec))
    result = pytester.runpytest("--robustness-json=out.json", "--robustness-html=out.html")
    result.assert_outcomes(passed=3)
    records = json.loads((pytester.path / "out.json").read_text())["results"]
    assert all(record["fingerprints"]["data"] for record in records)
    assert (pytester.path / "out.html").stat().st_size > 0
