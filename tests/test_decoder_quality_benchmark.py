"""benchmarks/decoder_quality.py: reference decoders are reused for the same bundle only."""

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_benchmark():
    spec = importlib.util.spec_from_file_location(
        "decoder_quality", REPO / "benchmarks" / "decoder_quality.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_rebuilt_bundle_gets_its_own_reference_folder(tmp_path):
    benchmark = load_benchmark()
    old, rebuilt, copy = tmp_path / "old.st", tmp_path / "rebuilt.st", tmp_path / "copy.st"
    old.write_bytes(b"weights of one model" * 100_000)  # more than one read chunk
    rebuilt.write_bytes(b"weights of one model" * 99_999 + b"weights of one modeL")
    copy.write_bytes(old.read_bytes())
    work = tmp_path / "work"
    folder = benchmark.reference_dir(work, old)
    assert folder.parent == work and len(folder.name) == 12
    # The same bytes (a second measurement of one bundle) reuse the fits, wherever the file is.
    assert benchmark.reference_dir(work, copy) == folder
    # One byte changed at the end: another model, another folder.
    assert benchmark.reference_dir(work, rebuilt) != folder
