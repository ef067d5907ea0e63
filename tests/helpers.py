"""Helpers only tests use (the tiny models themselves are in smol_align.testing, which scripts use too)."""

import json
from pathlib import Path

from smol_align.data.messages import InvalidRow, make_pair
from smol_align.testing import tiny_model_and_tokenizer, tiny_preference_rows


def tiny_model_dir_and_pairs(folder, n_pairs: int = 20):
    """A saved tiny model (``folder/tiny``) and ``n_pairs`` pairs as jsonl (``folder/pairs.jsonl``), for CLI tests."""
    base, pairs = Path(folder) / "tiny", Path(folder) / "pairs.jsonl"
    model, tokenizer = tiny_model_and_tokenizer()
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    pairs.write_text("".join(json.dumps(row) + "\n" for row in tiny_preference_rows(n_pairs)))
    return base, pairs


def is_valid_pair(row: dict) -> bool:
    """True when ``row`` is a TRL conversational pair exactly as ``make_pair`` builds it (roles,
    text contents, one assistant completion each, a prompt ending with a user turn)."""
    try:
        pair = make_pair(row["chosen"], row["rejected"], prompt=row["prompt"])
    except (InvalidRow, KeyError, TypeError):
        return False
    return pair == {column: row[column] for column in ("prompt", "chosen", "rejected")}


# `smol-align` in a child process (`python -c SLOW_CLI DELAY ARGV...`), each training step slowed to DELAY
# seconds: time for a test to kill it, signal it or start a second run beside it.
SLOW_CLI = """
import sys, time, transformers
delay = float(sys.argv[1])
step = transformers.Trainer.training_step
def slow(self, *args, **kwargs):
    time.sleep(delay)
    return step(self, *args, **kwargs)
transformers.Trainer.training_step = slow
from smol_align.cli import main
sys.exit(main(sys.argv[2:]))
"""


class LocalHub:
    """A stand-in of the Hugging Face Hub's HTTP API on 127.0.0.1 (threading http.server), for the calls
    ``create_repo`` and ``upload_folder`` make: it records every request and each commit's files (name ->
    bytes). ``huggingface_hub`` is pointed at it (its endpoint, offline mode off, and its non-xet upload
    path, whose small files travel inline in the commit): nothing leaves the machine."""

    def __init__(self, monkeypatch):
        import threading
        from http.server import ThreadingHTTPServer

        import huggingface_hub.constants
        import huggingface_hub.hf_api
        import transformers.utils.hub

        self.requests: list[tuple[str, str, dict, bytes]] = []
        self.commits: list[tuple[str, dict[str, bytes]]] = []  # (repo id, {path: content})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        monkeypatch.setenv("HF_ENDPOINT", self.url)
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", self.url)
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(huggingface_hub.hf_api, "is_xet_available", lambda: False)
        monkeypatch.setattr(transformers.utils.hub, "_hf_api", None)  # its shared HfApi: made anew, here

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        import base64
        from http.server import BaseHTTPRequestHandler

        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, obj):
                body = json.dumps(obj).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                hub.requests.append((self.command, self.path, dict(self.headers), b""))
                self._answer({})

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hub.requests.append((self.command, self.path, dict(self.headers), body))
                if self.path == "/api/repos/create":  # every repo is the user "me"'s
                    return self._answer({"url": f"{hub.url}/me/{json.loads(body)['name']}"})
                if "/preupload/" in self.path:  # every file travels in the commit itself
                    files = json.loads(body)["files"]
                    return self._answer(
                        {
                            "files": [
                                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                for f in files
                            ]
                        }
                    )
                if "/commit/" in self.path:
                    repo = self.path.split("/api/models/")[1].split("/commit/")[0]
                    lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
                    files = {
                        line["value"]["path"]: base64.b64decode(line["value"]["content"])
                        for line in lines
                        if line["key"] == "file"
                    }
                    hub.commits.append((repo, files))
                    return self._answer(
                        {"commitUrl": f"{hub.url}/{repo}/commit/{'a' * 40}", "commitOid": "a" * 40}
                    )
                return self._answer({})

        return Handler
