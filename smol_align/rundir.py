"""The output folder's one keeper: create it, lock it (one run per folder), stage the final files, finish, and
clean up only what this run made; a resume picks the newest complete checkpoint.

A run, ``compare``, ``iterate`` and ``pipeline`` each hold their folder through a :class:`RunDir`::

    with RunDir(folder, overwrite=False, resume=False, inputs=[data_file, model_dir]) as rundir:
        ...  # checkpoints go into rundir.path; rundir.checkpoint is where a resume continues from
        with rundir.staged() as staging:
            ...  # the final files, moved into the folder whole at the end
        rundir.finish()

What smol_align writes in a folder, and how it knows the folder is its own:

- While a run is on it: ``.smol_align.lock`` (an advisory lock, ``filelock``, held by the main
  process; a second run on the folder stops at once, naming the first), :data:`MARKER`,
  ``.smol_align-unfinished.json`` (who runs it: pid, host, start time, command; the settings a
  resume must keep), ``checkpoint-N`` folders, and :data:`STAGING` while the final files are
  written. Finished: the lock and marker go; the model, tokenizer and the report (``metrics.json``,
  ``report.md``, plots) stay, with the runs of ``compare`` (``<method>/``), ``iterate``
  (``round-<k>/``) and ``pipeline`` (``<k>-<method>/``, ``<k>-<method>-merged/``) as subfolders, and a LoRA
  run's merged model (``merged/``, marked by :data:`MERGED`).
- A folder is smol_align's when it holds :data:`MARKER` (unfinished), a ``metrics.json``
  (finished: written only by smol_align's report) or :data:`MERGED` (a merged model) and nothing else than the files a run writes
  (:data:`RUN_FILES`, :data:`RUN_PATTERNS`; subfolders likewise). ``overwrite=True`` empties only
  such a folder (its run moved aside into :data:`REPLACED`, deleted when the new run finishes and put
  back if the new one fails before its first checkpoint), and never the current folder (or one above it), the home folder, a filesystem
  root, or a folder that holds this run's data or model; otherwise a
  :class:`~smol_align.errors.ConfigError` lists what is there and what to do.
- On an error, only what this run created goes: a folder with a complete checkpoint stays to
  resume from (the error says which); a folder the run created and left with nothing to resume
  goes; one it was given stays. A folder whose runs are its subfolders (``runs_inside=True``: a
  pipeline's stages, each holding its own folder and checkpoints) resumes from them: it stays while one
  of them has finished or holds a complete checkpoint (:func:`kept_run`).

A checkpoint is complete when every file transformers' ``Trainer.train(resume_from_checkpoint=...)``
reads is there and readable (:func:`checkpoint_problem`): ``trainer_state.json`` parses, the
weights (safetensors whole, or every shard of an index), the optimizer and scheduler states, and
the RNG and scaler states when present.
"""

from __future__ import annotations

import errno
import glob
import json
import logging
import os
import re
import shutil
import socket
import struct
import sys
import time
import zipfile
from collections.abc import Iterable
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from ._compat import distributed_state_made
from .errors import ConfigError, SmolAlignError

logger = logging.getLogger(__name__)

MARKER = ".smol_align-unfinished.json"  # in an output directory whose run has not finished
STAGING = ".smol_align-staging"  # the final files, before they are moved into the output directory
LOCK = ".smol_align.lock"  # the advisory lock of the run on the folder; removed when it finishes
REPLACED = ".smol_align-replaced"  # overwrite=True: the earlier run, put back if this run fails early
MERGED = ".smol_align-merged.json"  # in a folder smol_align merged a LoRA run into: the run, the base

RUN_FILES = frozenset(
    {
        "metrics.json",
        "report.md",
        "training.png",
        "heldout.png",  # smol_align's report
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "model.safetensors.index.json",
        "pytorch_model.bin",
        "pytorch_model.bin.index.json",
        "training_args.bin",
        "README.md",  # the model
        "adapter_config.json",
        "adapter_model.safetensors",
        "adapter_model.bin",  # a LoRA adapter
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "added_tokens.json",
        "chat_template.jinja",
        "chat_template.json",
        "vocab.json",
        "vocab.txt",
        "merges.txt",
        "tokenizer.model",
        "spiece.model",  # tokenizer
    }
)
"""The names a run, ``compare`` or ``iterate`` writes at the top of its folder (with :data:`RUN_PATTERNS`)."""
RUN_PATTERNS = re.compile(
    r"\.smol_align.*|checkpoint-\d+|events\.out\.tfevents\..*"
    r"|model-\d+-of-\d+\.safetensors|pytorch_model-\d+-of-\d+\.bin"
)
ROUND_FILES = frozenset({"samples.jsonl", "pairs.jsonl", "kept.jsonl"})  # iterate's round-<k>/ folders too
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


class FolderBusy(ConfigError):
    """Another run holds the output folder's lock."""


class DiskFull(SmolAlignError):
    """The disk filled up while a checkpoint or the final files were written."""


# --- Names and finding runs ---
def default_output_dir(method: str, model_name: str) -> str:
    """``runs/<method>-<model short name>-<YYYYmmdd-HHMMSS>`` under the current folder."""
    return os.path.join("runs", f"{run_prefix(method, model_name)}{time.strftime('%Y%m%d-%H%M%S')}")


def run_prefix(method: str, model_name: str) -> str:
    return f"{method}-{os.path.basename(model_name.rstrip('/')) or 'model'}-"


def find_unfinished(method: str, model_name: str) -> Path:
    """The newest ``runs/<method>-<model>-*`` directory whose run did not finish (for ``resume=True``)."""
    found = sorted(
        Path("runs").glob(run_prefix(method, model_name) + "*/" + MARKER), key=lambda p: p.stat().st_mtime
    )
    if not found:
        raise ConfigError(
            f"resume=True: no unfinished {method.upper()} run of this model under runs/; "
            "pass output_dir= (--output-dir) of the run to continue."
        )
    return found[-1].parent


# --- Checkpoints: complete or not ---
def checkpoint_problem(checkpoint: Path) -> str | None:
    """Why transformers' Trainer could not resume from ``checkpoint``, or None when it is complete."""
    state = checkpoint / "trainer_state.json"  # written last by Trainer._save_checkpoint
    if not state.is_file():
        return "trainer_state.json is missing (the save was cut short)"
    try:
        if "global_step" not in json.loads(state.read_text()):
            return "trainer_state.json has no global_step"
    except (OSError, ValueError) as err:
        return f"trainer_state.json does not parse ({err})"
    names = {p.name for p in checkpoint.iterdir()}
    weights = [
        n
        for n in (
            "model.safetensors",
            "adapter_model.safetensors",
            "pytorch_model.bin",
            "adapter_model.bin",
            "model.safetensors.index.json",
            "pytorch_model.bin.index.json",
        )
        if n in names
    ]
    sharded = any(
        ("fsdp" in n or n.startswith("global_step")) for n in names
    )  # FSDP / DeepSpeed: their own layout
    if not weights and not sharded:
        return "it holds no weights (model.safetensors or an index of shards)"
    for name in weights:
        problem = _file_problem(checkpoint / name)
        if problem:
            return problem
    if not sharded:
        optimizer = [n for n in ("optimizer.pt", "optimizer.bin") if n in names]
        if not optimizer:
            return "optimizer.pt is missing"
        if "scheduler.pt" not in names:
            return "scheduler.pt is missing"
        for name in [*optimizer, "scheduler.pt"]:
            problem = _file_problem(checkpoint / name)
            if problem:
                return problem
    for name in sorted(n for n in names if n.startswith("rng_state") or n == "scaler.pt"):
        problem = _file_problem(checkpoint / name)
        if problem:
            return problem
    return None


def _file_problem(path: Path) -> str | None:
    """A cheap readability check: a safetensors header and its data length, an index's shards, a torch zip's
    central directory (all three are at the end or the start: a cut-short write fails them)."""
    try:
        if path.name.endswith(".index.json"):
            shards = set(json.loads(path.read_text())["weight_map"].values())
            return next((p for p in (_file_problem(path.parent / s) for s in sorted(shards)) if p), None)
        if path.suffix == ".safetensors":
            with path.open("rb") as f:
                (size,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(size))
            end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
            return None if path.stat().st_size >= 8 + size + end else f"{path.name} is cut short"
        if path.suffix in (".pt", ".pth", ".bin"):
            with zipfile.ZipFile(path):
                return None
    except FileNotFoundError:
        return f"{path.name} is missing"
    except (OSError, ValueError, KeyError, TypeError, struct.error, zipfile.BadZipFile) as err:
        return f"{path.name} cannot be read ({type(err).__name__})"
    return None


def checkpoints(folder: Path) -> list[Path]:
    """The ``checkpoint-N`` folders of ``folder``, newest (highest N) first."""
    found = (
        [p for p in folder.iterdir() if _CHECKPOINT.match(p.name) and p.is_dir()] if folder.is_dir() else []
    )
    return sorted(found, key=lambda p: int(_CHECKPOINT.match(p.name).group(1)), reverse=True)


def last_checkpoint(folder: Path) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest complete checkpoint of ``folder`` (None if none), and the newer ones skipped, with why."""
    skipped = []
    for checkpoint in checkpoints(folder):
        problem = checkpoint_problem(checkpoint)
        if problem is None:
            return checkpoint, skipped
        skipped.append((checkpoint, problem))
    return None, skipped


def kept_run(folder: Path) -> Path | None:
    """The first subfolder of ``folder`` a resume keeps or continues (a pipeline's stages): a finished run
    (``metrics.json``) or an unfinished one with a complete checkpoint; None when there is none."""
    subfolders = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
    for sub in sorted(subfolders):
        unfinished = (sub / MARKER).is_file()
        if (unfinished and last_checkpoint(sub)[0]) or (not unfinished and (sub / "metrics.json").is_file()):
            return sub
    return None


def skipped_line(skipped: list[tuple[Path, str]]) -> str:
    """``Skipped checkpoint-12 (trainer_state.json is missing ...).`` for the run to say, or ''."""
    return "".join(f"Skipped {p.name}: {why}. " for p, why in skipped).strip()


# --- Whose folder is it ---
def foreign_entries(folder: Path, round_folder: bool = False) -> list[str]:
    """The entries of ``folder`` (subfolders looked into) that no smol_align run writes."""
    foreign = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        name = entry.name
        if name in RUN_FILES or RUN_PATTERNS.fullmatch(name) or (round_folder and name in ROUND_FILES):
            continue
        is_round = re.fullmatch(r"round-\d+", name) is not None
        if entry.is_dir() and not entry.is_symlink() and (is_round or is_run_folder(entry)):
            if not foreign_entries(entry, round_folder=is_round):
                continue
        foreign.append(name + "/" if entry.is_dir() else name)
    return foreign


def is_run_folder(folder: Path) -> bool:
    """Made by smol_align: an unfinished run's :data:`MARKER`, a finished run's ``metrics.json``, or the
    :data:`MERGED` record of a merged model."""
    return any((folder / name).is_file() for name in (MARKER, "metrics.json", MERGED))


def _local_paths(inputs: Iterable[Any]) -> list[Path]:
    """The local files and folders among ``inputs`` (paths, globs, lists of them; nothing else)."""
    found: list[Path] = []
    for item in inputs:
        if isinstance(item, (list, tuple)):
            found += _local_paths(item)
        elif isinstance(item, (str, os.PathLike)) and str(item):
            text = (
                str(item).split(":", 1)[1]
                if re.match(r"^(json|jsonl|csv|parquet|text):", str(item))
                else str(item)
            )
            found += [Path(p).resolve() for p in glob.glob(text)] if any(c in text for c in "*?[") else []
            found += [Path(text).resolve()] if os.path.exists(text) else []
    return found


def _protected(folder: Path, inputs: Iterable[Any]) -> str | None:
    """Why emptying ``folder`` would delete what is not a run's, or None."""
    here, home, resolved = Path.cwd().resolve(), Path.home().resolve(), folder.resolve()
    if resolved == here:
        return "it is the current folder"
    if resolved in here.parents:
        return f"it holds the current folder ({here})"
    if resolved == home or resolved in home.parents:
        return "it is the home folder" if resolved == home else f"it holds the home folder ({home})"
    if resolved.parent == resolved or os.path.ismount(resolved):
        return "it is the root of a filesystem"
    for path in _local_paths(inputs):
        if path == resolved or resolved in path.parents:
            return f"it holds this run's input {path}"
    return None


def _listing(names: list[str], shown: int = 5) -> str:
    return ", ".join(names[:shown]) + (f" (and {len(names) - shown} more)" if len(names) > shown else "")


def check(
    folder: Path,
    overwrite: bool = False,
    resume: bool = False,
    inputs: Iterable[Any] = (),
    runs_inside: bool = False,
) -> Path | None:
    """Check ``folder`` can take this run, writing nothing; return the checkpoint to continue from
    (``resume``), else None. A non-empty folder is refused unless ``overwrite`` (smol_align's own folder:
    it will be emptied) or ``resume`` (an unfinished run with a complete checkpoint; ``runs_inside``: with
    a subfolder's run finished or resumable, :func:`kept_run`)."""
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"Output directory {folder} is a file, not a folder: pass another output_dir.")
    busy = folder.is_dir() and any(p.name != LOCK for p in folder.iterdir())  # a lock alone: empty
    if resume:
        if not busy:
            raise ConfigError(
                f"resume=True: {folder} does not exist or is empty; nothing to continue. "
                "Run without resume to start."
            )
        if not (folder / MARKER).exists():
            finished = (
                "has finished"
                if (folder / "metrics.json").exists()
                else "is not an unfinished smol_align run"
            )
            raise ConfigError(
                f"resume=True: the run in {folder} {finished}; pass overwrite=True to train again."
            )
        if runs_inside:
            if kept_run(folder) is None:
                raise ConfigError(
                    f"resume=True: no run in {folder} has finished or holds a complete checkpoint; nothing "
                    "to continue. Run without resume (with overwrite=True) to start again."
                )
            return None
        checkpoint, skipped = last_checkpoint(folder)
        if checkpoint is None:
            what = (
                f"has no complete checkpoint ({'; '.join(f'{p.name}: {why}' for p, why in skipped)})"
                if skipped
                else "has no checkpoint-N folder"
            )
            raise ConfigError(
                f"resume=True: {folder} {what}; nothing to continue. Run without resume "
                "(with overwrite=True) to start again."
            )
        return checkpoint
    if not busy:
        return None
    if not overwrite:
        hint = ", or resume=True (--resume) to continue it" if (folder / MARKER).exists() else ""
        raise ConfigError(
            f"Output directory {folder} exists and is not empty: pass overwrite=True or another "
            f"output_dir{hint}."
        )
    why = _protected(folder, inputs)
    if why is not None:
        raise ConfigError(
            f"overwrite=True would empty {folder}, and {why}: smol_align only empties a folder it made "
            "for a run. Pass another output_dir (--output-dir runs/<name>)."
        )
    foreign = foreign_entries(folder)
    if foreign:
        raise ConfigError(
            f"overwrite=True would empty {folder}, which holds files a run does not write: "
            f"{_listing(foreign)}. smol_align only empties a folder it made for a run: move those "
            "away or pass another output_dir."
        )
    if not is_run_folder(folder):
        names = sorted(p.name for p in folder.iterdir())
        raise ConfigError(
            f"overwrite=True would empty {folder}, which holds no smol_align run (no metrics.json or "
            f"{MARKER}): {_listing(names)}. Pass another output_dir, or empty it yourself."
        )
    return None


# --- One run's hold on its folder ---
class RunDir:
    """One run's hold on its output folder (see the module docstring). Under several processes only the
    main one (``main=True``) checks, locks and writes; the others only learn the checkpoint to resume from."""

    def __init__(
        self,
        folder,
        *,
        overwrite: bool = False,
        resume: bool = False,
        inputs: Iterable[Any] = (),
        main: bool = True,
        what: str = "run",
        runs_inside: bool = False,
    ):
        self.path, self.overwrite, self.resume, self.main, self.what = (
            Path(folder),
            overwrite,
            resume,
            main,
            what,
        )
        self.inputs = list(inputs)
        self.runs_inside = runs_inside  # its runs are subfolders with their own checkpoints (a pipeline)
        self.checkpoint: Path | None = None  # where a resume continues from
        self.skipped: list[tuple[Path, str]] = []  # newer checkpoints a resume skipped, with why
        self.created = False  # the folder did not exist: this run made it
        self._before: set[str] = set()  # what the folder held when this run took it
        self._lock = None
        self._taken = False

    def check(self) -> Path | None:
        """The checks, writing nothing (call early, to fail before any work); returns the resume checkpoint"""
        if self.main:
            if self._lock is None and (self.path / LOCK).exists():
                self._acquire()  # a run on it now: refused here, before any other message
                self._release()
            check(self.path, self.overwrite, self.resume, self.inputs, self.runs_inside)
        if self.resume and not self.runs_inside:
            self.checkpoint, self.skipped = last_checkpoint(self.path)
        return self.checkpoint

    def __enter__(self) -> RunDir:
        if not self.main:
            self.check()
            return self
        self.check()
        self.created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            self._acquire()
        except FolderBusy:
            raise  # the folder is another run's: nothing here is touched
        except BaseException:
            self._remove_created()
            raise
        try:
            self.check()  # again, under the lock: another run may have finished in it meanwhile
            if self.overwrite and not self.resume:
                self._empty()
            self._before = {p.name for p in self.path.iterdir()}
            self.mark(**self._holder())
        except BaseException:
            self._unlock()
            self._remove_created()
            raise
        self._taken = True
        return self

    def __exit__(self, kind, error, tb) -> bool:
        if error is None or not self.main or not self._taken:
            self._unlock()
            return False
        full, checkpoint = _disk_full(error, self.path), None
        with suppress(OSError):
            shutil.rmtree(self.path / STAGING, ignore_errors=True)
            checkpoint, _ = last_checkpoint(self.path)
            if checkpoint is None and self.runs_inside:
                checkpoint = kept_run(self.path)
            if checkpoint is None:
                for entry in self.path.iterdir():
                    if entry.name not in self._before and entry.name != LOCK:
                        _remove(entry)
                self._put_back()
        self._unlock()
        if self.created:
            self._remove_created()
        if full:
            what = "a finished or resumable run" if self.runs_inside else "the last complete checkpoint"
            kept = (
                f"Kept: {checkpoint}, {what}; free some space, then continue with the same "
                f"command plus `--resume --output-dir {self.path}` (Python: resume=True)."
                if checkpoint
                else "No complete checkpoint could be kept: free some space and start the run again."
            )
            raise DiskFull(
                f"The disk holding {self.path} is full: the {self.what} could not write its files there "
                f"({error}). {kept}"
            ) from error
        return False

    # the run's record in MARKER
    def mark(self, **fields) -> None:
        """Add ``fields`` to :data:`MARKER` (the unfinished run's record); main process only."""
        if self.main:
            marker = self.path / MARKER
            record = {**read_json(marker), **fields}
            tmp = self.path / (MARKER + ".tmp")
            tmp.write_text(json.dumps(record) + "\n")
            os.replace(tmp, marker)

    def marked(self) -> dict:
        """:data:`MARKER`'s record (what the run recorded when it started, and the killed run before it)."""
        return read_json(self.path / MARKER)

    @contextmanager
    def staged(self):
        """A hidden staging folder inside the run's folder; on success its files are moved into it."""
        with staged(self.path, self.main) as staging:
            yield staging

    def finish(self, drop_checkpoints: bool = True) -> None:
        """The run is done: its checkpoints (unless kept), marker and lock go."""
        if not self.main:
            return
        if drop_checkpoints:
            for checkpoint in checkpoints(self.path):
                shutil.rmtree(checkpoint, ignore_errors=True)
        shutil.rmtree(self.path / REPLACED, ignore_errors=True)
        (self.path / MARKER).unlink(missing_ok=True)
        self._unlock()

    # --- the lock and what this run made ---
    def _acquire(self) -> None:
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.path / LOCK), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise FolderBusy(
                f"Output directory {self.path} is in use by another smol_align run "
                f"({_holder_line(read_json(self.path / MARKER))}): one run at a time per folder. Wait "
                "for it to finish, or pass another output_dir."
            ) from None
        self._lock = lock

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _unlock(self) -> None:
        """Release the lock and remove its file (held: no other run is on the folder)."""
        if self._lock is not None:
            (self.path / LOCK).unlink(missing_ok=True)
            self._release()

    def _holder(self) -> dict:
        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": " ".join([Path(sys.argv[0]).name, *without_secrets(sys.argv[1:])])[:300],
        }

    def _empty(self) -> None:
        """overwrite=True: move everything but the lock into :data:`REPLACED` (:func:`check` found only a
        run's files). The earlier run is deleted when this one finishes, and put back if this one fails
        before its first checkpoint (a model that does not load, no pair left at max_length...)."""
        aside = self.path / REPLACED
        _remove(aside)  # left by a run killed before it finished: overwrite=True replaces it too
        aside.mkdir()
        for entry in self.path.iterdir():
            if entry.name not in (LOCK, REPLACED):
                os.replace(entry, aside / entry.name)

    def _put_back(self) -> None:
        """The earlier run that overwrite=True moved aside, back in its place (this run failed)."""
        aside = self.path / REPLACED
        if aside.is_dir():
            for entry in aside.iterdir():
                os.replace(entry, self.path / entry.name)
            aside.rmdir()

    def _remove_created(self) -> None:
        """The folder, if this run made it and it holds nothing (but the lock file) now."""
        if self.created and self.path.is_dir() and self._lock is None:
            (self.path / LOCK).unlink(missing_ok=True)
            with suppress(OSError):
                self.path.rmdir()


SECRET = re.compile(r"token|secret|password", re.I)
"""A flag or keyword whose name matches holds a secret: never written (the marker, the model card)."""


def without_secrets(argv: list[str]) -> list[str]:
    """``argv`` without its secret flags and their values (``--hub_token X``, ``--hub-token=X``)."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg.startswith("--") and SECRET.search(arg.split("=", 1)[0]):
            skip = "=" not in arg
            continue
        kept.append(arg)
    return kept


def _holder_line(record: dict) -> str:
    if not record.get("pid"):
        return "it has not written its details yet"
    return f"pid {record['pid']} on {record.get('host', '?')}, started {record.get('started', '?')}" + (
        f": {record['command']}" if record.get("command") else ""
    )


def read_json(path: Path) -> dict:
    """The JSON object in ``path`` (a marker, a run's metrics.json), or {} when it is missing or not an object."""
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        entry.unlink(missing_ok=True)


def _disk_full(error: BaseException | None, folder: Path) -> bool:
    """``error`` (or what caused it) says the disk or the quota is full; torch.save's "file write failed"
    (no errno) counts when less than 64 MiB is left where ``folder`` is."""
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(error):
            return True
        if "file write failed" in str(error):
            with suppress(OSError):
                return shutil.disk_usage(folder).free < 64 * 2**20
        error, seen = error.__cause__ or error.__context__, seen + 1
    return False


@contextmanager
def staged(final: Path, main: bool = True):
    """A hidden staging folder inside ``final``; on success its files are moved (renamed) into ``final``."""
    staging = final / STAGING
    if main:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    _wait_for_everyone()
    try:
        yield staging
        _wait_for_everyone()
        for entry in staging.iterdir() if main else ():
            if (final / entry.name).is_dir() and not (final / entry.name).is_symlink():
                shutil.rmtree(final / entry.name)
            os.replace(entry, final / entry.name)
    finally:
        if main:
            shutil.rmtree(staging, ignore_errors=True)


def _wait_for_everyone() -> None:
    from accelerate import PartialState

    if distributed_state_made():  # as in callbacks.is_main_process: none made here
        PartialState().wait_for_everyone()
