"""Without PyAV (the GPU image has none) vidzoo still imports, and trains on npz volumes; only opening or
writing a video file asks for PyAV, with a clear ImportError."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vidzoo.data import decode, synthetic

REPO = Path(__file__).resolve().parents[1]


def test_video_file_without_pyav_names_the_missing_package(tmp_path, monkeypatch):
    monkeypatch.setattr(decode, "av", None)
    monkeypatch.setattr(synthetic, "av", None)
    f = tmp_path / "clip.mp4"
    f.write_bytes(b"\x00" * 64)
    with pytest.raises(ImportError, match="needs PyAV"):  # not a VideoDecodeError: no sample is skipped as unreadable
        decode.read_video(f)
    with pytest.raises(ImportError, match="needs PyAV"):
        synthetic.write_video(tmp_path / "out.mp4", np.zeros((2, 16, 16, 3), np.uint8))


def test_cli_imports_without_pyav(tmp_path):
    blocker = tmp_path / "noav" / "av"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('PyAV blocked by the test')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(blocker.parent), str(REPO), os.environ.get("PYTHONPATH", "")]))
    code = "import vidzoo.cli, vidzoo.engine.trainer, vidzoo.data; from vidzoo.data import decode; assert decode.av is None"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
