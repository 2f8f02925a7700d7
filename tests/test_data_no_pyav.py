"""Without PyAV (the GPU image has none) only opening or writing a video file asks for it, with a clear
ImportError (that vidzoo imports without it: tests/test_cli_startup.py)."""
import numpy as np
import pytest

from vidzoo.data import decode, synthetic


def test_video_file_without_pyav_names_the_missing_package(tmp_path, monkeypatch):
    monkeypatch.setattr(decode, "av", None)
    monkeypatch.setattr(synthetic, "av", None)
    f = tmp_path / "clip.mp4"
    f.write_bytes(b"\x00" * 64)
    with pytest.raises(ImportError, match="needs PyAV"):  # not an UnreadableVideoError: no sample is excluded for it
        decode.read_video(f)
    with pytest.raises(ImportError, match="needs PyAV"):
        synthetic.write_video(tmp_path / "out.mp4", np.zeros((2, 16, 16, 3), np.uint8))
