"""The Hub path for real, offline: a Hugging Face Hub served on loopback.

A small HTTP server (a thread of this process on 127.0.0.1) implements the endpoints that
``hf_hub_download`` and ``HfApi.create_repo`` / ``upload_folder`` use. vidzoo runs in a
subprocess with ``HF_ENDPOINT`` pointing at it and a fresh ``HF_HUB_CACHE`` (huggingface_hub
reads these at import), first online (downloads, push, hf-hub: load), then with
``HF_HUB_OFFLINE=1`` against the cache the first run filled. Nothing in vidzoo is patched.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import torch

import vidzoo
from benchmarks._common import randomize

transformers = pytest.importorskip("transformers")
from transformers import TimesformerConfig, TimesformerForVideoClassification  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = "img_size=32, num_frames=4, num_classes=7, embed_dim=64, depth=2, num_heads=4"


# ------------------------------------------------------------------------------ the fake Hub
class FakeHub:
    """In-memory model repos: ``{repo_id: {"sha": str, "files": {path: bytes}}}``."""

    def __init__(self) -> None:
        self.repos: dict[str, dict] = {}
        self.requests: list[tuple[str, str, str]] = []  # (method, path, authorization)
        self.lock = threading.Lock()

    def put(self, repo_id: str, files: dict[str, bytes]) -> str:
        with self.lock:
            repo = self.repos.setdefault(repo_id, {"sha": "", "files": {}})
            repo["files"].update(files)
            repo["sha"] = uuid.uuid4().hex + uuid.uuid4().hex[:8]
            return repo["sha"]


def _handler(hub: FakeHub):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest output clean
            pass

        def _send(self, code: int, body: bytes = b"", headers: dict | None = None, head: bool = False):
            self.send_response(code)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _json(self, code: int, obj, headers: dict | None = None):
            self._send(code, json.dumps(obj).encode(), {"Content-Type": "application/json", **(headers or {})})

        def _error(self, code: int, error_code: str, message: str, head: bool = False):
            self._send(code, json.dumps({"error": message}).encode(),
                       {"X-Error-Code": error_code, "X-Error-Message": message, "Content-Type": "application/json"},
                       head=head)

        def _record(self):
            with hub.lock:
                hub.requests.append((self.command, self.path, self.headers.get("Authorization", "")))

        def _resolve(self, head: bool):
            self._record()
            parts = unquote(urlsplit(self.path).path).lstrip("/").split("/")
            if len(parts) < 5 or parts[2] != "resolve":
                return self._error(404, "EntryNotFound", "not found", head)
            repo_id, rev, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
            repo = hub.repos.get(repo_id)
            if repo is None:
                return self._error(401, "RepoNotFound", f"Repository {repo_id} not found", head)
            if rev not in ("main", repo["sha"]):
                return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}", head)
            if filename not in repo["files"]:
                return self._error(404, "EntryNotFound", f"{filename} does not exist", head)
            body = repo["files"][filename]
            self._send(200, body, {"X-Repo-Commit": repo["sha"], "ETag": f'"{hashlib.sha256(body).hexdigest()}"',
                                   "Content-Type": "application/octet-stream"}, head=head)

        def do_HEAD(self):
            self._resolve(head=True)

        def do_GET(self):
            self._resolve(head=False)

        def do_POST(self):
            self._record()
            body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
            path = urlsplit(self.path).path
            base = f"http://{self.headers['Host']}"
            if path == "/api/repos/create":
                req = json.loads(body)
                repo_id = f"{req['organization']}/{req['name']}" if req.get("organization") else req["name"]
                if repo_id in hub.repos:
                    return self._error(409, "RepoExists", "You already created this model repo")
                hub.put(repo_id, {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"})
                return self._json(200, {"url": f"{base}/{repo_id}", "name": repo_id})
            if path == "/api/validate-yaml":
                return self._json(200, {"errors": [], "warnings": []})
            parts = unquote(path).split("/")  # ['', 'api', 'models', org, name, action, rev]
            if len(parts) >= 7 and parts[1:3] == ["api", "models"]:
                repo_id, action = f"{parts[3]}/{parts[4]}", parts[5]
                if repo_id not in hub.repos:
                    return self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
                if action == "preupload":
                    files = json.loads(body)["files"]
                    return self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular",
                                                       "shouldIgnore": False, "oid": None} for f in files]})
                if action == "commit":
                    files = {}
                    for line in body.splitlines():
                        item = json.loads(line)
                        if item["key"] == "file":
                            files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                    sha = hub.put(repo_id, files)
                    return self._json(200, {"commitUrl": f"{base}/{repo_id}/commit/{sha}", "commitOid": sha,
                                            "pullRequestUrl": None})
            return self._error(404, "NotFound", f"no route for POST {path}")

    return Handler


@pytest.fixture(scope="module")
def hub():
    hub = FakeHub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hub.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    yield hub
    server.shutdown()
    server.server_close()


def run_vidzoo(script: str, env: dict[str, str], timeout: int = 240) -> dict:
    """Run ``script`` in a fresh interpreter; it ends with ``print("RESULT", json.dumps(res))``."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    full_env.update(PYTHONPATH=str(ROOT), HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1",
                    HF_HUB_ETAG_TIMEOUT="20", **env)
    proc = subprocess.run([sys.executable, "-c", script], env=full_env, capture_output=True, text=True,
                          timeout=timeout, cwd=str(ROOT))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"subprocess failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    res = json.loads(lines[-1][len("RESULT "):])
    res["_stderr"] = proc.stderr
    return res


# ---------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def seeded(hub, tmp_path_factory):
    """Upstream repos on the fake Hub, as the real ones serve them (pytorch_model.bin + config.json)."""
    import timm
    from safetensors.torch import load_file, save_file
    tmp = tmp_path_factory.mktemp("hub")
    labels = {i: f"kinetics class {i}" for i in range(7)}
    hf = randomize(TimesformerForVideoClassification(TimesformerConfig(
        image_size=32, num_frames=4, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256,
        num_labels=7, id2label=labels)))
    hf.save_pretrained(tmp / "hf")
    buf = io.BytesIO()
    torch.save(load_file(str(tmp / "hf" / "model.safetensors")), buf)  # the Hub's names, in a .bin
    weights, config = buf.getvalue(), (tmp / "hf" / "config.json").read_bytes()
    hub.put("facebook/timesformer-base-finetuned-k400", {"pytorch_model.bin": weights, "config.json": config})
    hub.put("facebook/timesformer-base-finetuned-k600", {"pytorch_model.bin": weights})  # no config.json
    hub.put("facebook/timesformer-hr-finetuned-k400",
            {"pytorch_model.bin": b"PK\x03\x04 truncated", "config.json": config})
    vit = randomize(timm.create_model("vit_base_patch16_224", pretrained=False, img_size=32, num_classes=21,
                                       embed_dim=64, depth=2, num_heads=4))
    save_file(vit.state_dict(), str(tmp / "vit.safetensors"))
    hub.put("timm/vit_base_patch16_224.augreg_in21k", {"model.safetensors": (tmp / "vit.safetensors").read_bytes()})
    clip = torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(3))
    torch.save(clip, tmp / "clip.pt")
    return {"hf": hf, "tmp": tmp, "clip": clip, "labels": [labels[i] for i in range(7)],
            "env": {"HF_ENDPOINT": hub.endpoint, "HF_HOME": str(tmp / "hf_home"), "HF_HUB_CACHE": str(tmp / "cache")}}


ONLINE = f"""
import json, logging, torch, vidzoo
logging.basicConfig(level=logging.INFO)
out = {{}}
clip = torch.load(r"{{tmp}}/clip.pt")
m = vidzoo.create_model("timesformer_divided_base_patch16_224.k400", pretrained=True, {TINY}).eval()
with torch.no_grad():
    y = m(clip)
torch.save(y, r"{{tmp}}/k400_logits.pt")
out["labels"] = m.pretrained_cfg["label_names"]
from vidzoo.convert import convert_checkpoint
convert_checkpoint("hf-hub:facebook/timesformer-base-finetuned-k400", r"{{tmp}}/converted")
conv = vidzoo.create_model(r"local-dir:{{tmp}}/converted").eval()
with torch.no_grad():
    out["converted_bitwise"] = torch.equal(conv(clip), y)
out["converted_labels"] = conv.pretrained_cfg["label_names"]
k600 = vidzoo.create_model("timesformer_divided_base_patch16_224.k600", pretrained=True, {TINY})
out["k600_same_weights"] = torch.equal(k600.blocks[1].attn.qkv.weight, m.blocks[1].attn.qkv.weight)
out["k600_labels"] = k600.pretrained_cfg["label_names"]
vit = vidzoo.create_model("vivit_joint_base_patch16x2_224.in21k", pretrained=True, {TINY})
out["in21k_proj"] = list(vit.patch_embed.proj.weight.shape)
try:
    vidzoo.create_model("timesformer_hr.k400", pretrained=True, {TINY})
except vidzoo.CorruptCheckpointError as e:
    out["corrupt"] = str(e)
info = vidzoo.push_to_hub(m, "me/tiny-timesformer", token="hf_fake_token", commit_message="Add tiny TimeSformer")
out["commit"] = info.oid
back = vidzoo.create_model("hf-hub:me/tiny-timesformer").eval()
with torch.no_grad():
    out["hub_bitwise"] = torch.equal(back(clip), y)
out["hub_labels"] = back.pretrained_cfg["label_names"]
out["hub_cfg_id"] = back.pretrained_cfg["hf_hub_id"]
pinned = vidzoo.create_model(f"hf-hub:me/tiny-timesformer@{{info.oid}}", pretrained=True).eval()
with torch.no_grad():
    out["pinned_bitwise"] = torch.equal(pinned(clip), y)
print("RESULT", json.dumps(out))
"""

OFFLINE = f"""
import json, torch, vidzoo
out = {{}}
clip = torch.load(r"{{tmp}}/clip.pt")
m = vidzoo.create_model("timesformer_divided_base_patch16_224.k400", pretrained=True, {TINY}).eval()
with torch.no_grad():
    out["cached_equal"] = torch.equal(m(clip), torch.load(r"{{tmp}}/k400_logits.pt"))
out["labels"] = m.pretrained_cfg["label_names"]
back = vidzoo.create_model("hf-hub:me/tiny-timesformer", pretrained=True).eval()
with torch.no_grad():
    out["hub_cached_equal"] = torch.equal(back(clip), torch.load(r"{{tmp}}/k400_logits.pt"))
for key, name in [("err_tag", "vivit_joint_base_patch16x2_224.k400"), ("err_hub", "hf-hub:me/never-pushed")]:
    try:
        vidzoo.create_model(name, pretrained=True)
    except vidzoo.HubDownloadError as e:
        out[key] = str(e)
print("RESULT", json.dumps(out))
"""


def test_hub_download_push_and_offline_cache(hub, seeded):
    env, tmp = seeded["env"], seeded["tmp"]
    res = run_vidzoo(ONLINE.replace("{tmp}", str(tmp)), env)

    # Tag download through huggingface_hub: HF checkpoint converted, id2label attached, parity with HF.
    with torch.no_grad():
        want = seeded["hf"](pixel_values=seeded["clip"].transpose(1, 2)).logits
    got = torch.load(tmp / "k400_logits.pt")
    assert (want - got).abs().max().item() <= 1e-4
    assert res["labels"] == seeded["labels"]
    # vidzoo convert hf-hub:... DST gives the same model as the tag.
    assert res["converted_bitwise"] and res["converted_labels"] == seeded["labels"]
    served = [p for m, p, _ in hub.requests if m == "GET"]
    assert "/facebook/timesformer-base-finetuned-k400/resolve/main/pytorch_model.bin" in served
    assert "/facebook/timesformer-base-finetuned-k400/resolve/main/config.json" in served
    # No config.json in the repo: weights load, labels stay unset, a note is logged.
    assert res["k600_same_weights"] and res["k600_labels"] is None
    assert "config.json of facebook/timesformer-base-finetuned-k600 could not be fetched" in res["_stderr"]
    assert res["in21k_proj"] == [64, 3, 2, 16, 16]
    assert "pytorch_model.bin" in res["corrupt"] and "snapshots" in res["corrupt"]

    # push_to_hub: one commit with config, weights and model card; token sent; hf-hub: restores bitwise.
    repo = hub.repos["me/tiny-timesformer"]
    assert res["commit"] == repo["sha"]
    assert {"config.json", "model.safetensors", "README.md"} <= set(repo["files"])
    auth = {a for m, p, a in hub.requests if "tiny-timesformer" in p and m == "POST"}
    assert auth == {"Bearer hf_fake_token"}
    cfg = json.loads(repo["files"]["config.json"])
    assert cfg["architecture"] == "timesformer_divided_base_patch16_224"
    assert cfg["pretrained_cfg"]["label_names"] == seeded["labels"] and cfg["pretrained_cfg"]["tag"] == "k400"
    card = repo["files"]["README.md"].decode()
    for text in ("library_name: vidzoo", "license: cc-by-nc-4.0", "`timesformer_divided_base_patch16_224`",
                 "**Tokenizer:** `uniform`", "**Attention variant:** `divided`", "(B, 3, 4, 32, 32)",
                 "Kinetics-400, 7 classes", "`kinetics class 0`", 'create_model("hf-hub:me/tiny-timesformer", '
                 "pretrained=True)"):
        assert text in card, text
    assert res["hub_bitwise"] and res["hub_labels"] == seeded["labels"]
    assert res["hub_cfg_id"] == "me/tiny-timesformer"
    assert res["pinned_bitwise"]  # hf-hub:org/repo@<commit sha> (served from the cache: same snapshot)

    # Offline: everything above comes from the cache, without a single request; the rest fails clearly.
    n_requests = len(hub.requests)
    res = run_vidzoo(OFFLINE.replace("{tmp}", str(tmp)), {**env, "HF_HUB_OFFLINE": "1"})
    assert len(hub.requests) == n_requests
    assert res["cached_equal"] and res["hub_cached_equal"] and res["labels"] == seeded["labels"]
    for key, repo_id, filename in [("err_tag", "google/vivit-b-16x2-kinetics400", "pytorch_model.bin"),
                                   ("err_hub", "me/never-pushed", "config.json")]:
        msg = res[key]
        assert repo_id in msg and "HF_HUB_OFFLINE=1" in msg and f"hf download {repo_id} {filename}" in msg


def test_model_card_and_upload_folder_contents(tmp_path):
    """What push_to_hub uploads, prepared without a network: the folder and its card."""
    from vidzoo._hub import prepare_hub_folder
    model = vidzoo.create_model("vivit_fdp_tiny_patch16x2_224", img_size=32, num_frames=4, num_classes=3)
    files = prepare_hub_folder(model, tmp_path, repo_id="org/fdp")
    assert files == ["README.md", "config.json", "model.safetensors"]
    card = (tmp_path / "README.md").read_text()
    # A random initialisation claims no licence or dataset of any tag's weights (it has none).
    for text in ("license: other", "**Weights:** random initialisation", "**Tokenizer:** `tubelet`: 2x16x16 tubelets",
                 "factorised_dot_product",
                 "pooling `avg`", "(B, 3, 4, 32, 32)", "mean (0.5, 0.5, 0.5)", "3 classes; no class names saved",
                 "ViViT: A Video Vision Transformer", 'create_model("hf-hub:org/fdp", pretrained=True)'):
        assert text in card, text
