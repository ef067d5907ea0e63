"""``smol-align``: sft | dpo | orpo | kto | pipeline | compare | iterate | doctor | eval | estimate | merge | push |
presets.

# The demo (embedded SmolLM2, built-in data, the preset for this machine)
smol-align sft                          # SFT on the demo's chosen answers; then: smol-align dpo --model RUN
smol-align pipeline --config recipe.yaml   # SFT, then DPO from it; a folder per stage
smol-align dpo
smol-align orpo
smol-align kto                          # KTO: single answers marked desirable or not (pairs are split in two)

# Your data and settings: a recipe, then flags (any DPOConfig / ORPOConfig field) on top
smol-align dpo --config recipe.yaml --dataset pairs.jsonl --max-steps 100 --learning-rate 1e-5
smol-align dpo --model HuggingFaceTB/SmolLM2-360M-Instruct --preset lora --output-dir runs/mine

# DPO against ORPO: same model, pairs, budget and seed; a report with table, plots and answers
smol-align compare --output-dir runs/compare-demo
smol-align compare --dataset pairs.jsonl --methods dpo,orpo,kto --time-budget 600 --beta 0.2

# Your own columns, a held-out fraction, a filter; every command takes the same data flags
smol-align dpo --dataset pairs.jsonl --columns prompt=question,chosen=good,rejected=bad --eval-split 0.1
smol-align doctor pairs.jsonl --max-length 512 --drop-identical

# Will it fit? Predicted peak memory by part (weights, reference, optimizer, activations...)
smol-align estimate --preset lora --max-length 1024 --batch-size 4

# Stopped (Ctrl-C, SIGTERM, a crash)? Continue from the last checkpoint
smol-align dpo --output-dir runs/mine --resume

# Share a run: a whole model from a LoRA run, then the folder (with its model card) to the Hub
smol-align merge runs/mine --output runs/mine-merged
smol-align push runs/mine --repo-id me/pirate-smollm2

# TRL's and the alignment-handbook's names work too: a `trl dpo` command line, a handbook recipe
smol-align dpo --config handbook-dpo.yaml --model_name_or_path my/sft --use_peft --lora_r 16
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import logging
import re
import sys
from pathlib import Path

from . import __version__
from ._compat import library_noise_filtered
from .card import cli_command, invoked_as
from .data import doctor
from .errors import ConfigError, SmolAlignError
from .models import DEFAULT_MODEL as DEFAULT_REF  # the start model of the demo and of most course runs
from .options import DATA_NAMES, DataOptions, column_names, split_or_fraction


def _columns(value: str) -> dict[str, str]:
    try:
        return column_names(value)
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


# The data flags of doctor and eval (dpo, orpo, kto and compare parse every DataOptions field with TRL's
# parser), with the types argparse needs; the help is DataOptions'
DATA_FLAGS = {
    "format": {},
    "columns": {"type": _columns},
    "split": {},
    "eval_split": {"type": split_or_fraction},
    "eval_dataset": {},
    "strict": {"action": "store_true"},
    "lenient": {"action": "store_true"},
    "drop_identical": {"action": "store_true"},
    "drop_empty": {"action": "store_true"},
    "drop_ties": {"action": "store_true"},
    "min_margin": {"type": float},
    "dedupe_prompts": {"action": "store_true"},
    "filters": {},
}


def add_data_arguments(parser) -> None:
    """The data flags of doctor and eval: they become the keywords of ``smol_align.data.load``."""
    group = parser.add_argument_group("data (smol_align.data.load)")
    helps = {f.name: f.metadata["help"] for f in dataclasses.fields(DataOptions)}
    for dest, kwargs in DATA_FLAGS.items():
        flags = dict.fromkeys([f"--{dest.replace('_', '-')}", f"--{dest}"])
        group.add_argument(*flags, dest=dest, help=helps[dest], **kwargs)


def data_options(args: argparse.Namespace) -> dict:
    """The data flags that were given, as keywords for ``load``."""
    given = {k: v for k, v in vars(args).items() if k in DATA_FLAGS and v is not None}
    return DataOptions(**given).keywords()


def _shipped_config(argv: list[str]) -> list[str]:
    """``--config NAME`` (a recipe shipped with smol_align, e.g. ``hh-rlhf-cpu``) as the file it names."""
    from .shipped import config_path

    argv = list(argv)
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            argv[i + 1] = config_path(argv[i + 1])
        elif arg.startswith("--config="):
            argv[i] = "--config=" + config_path(arg.split("=", 1)[1])
    return argv


def make_parser() -> argparse.ArgumentParser:
    """The verbs; ``dpo``/``orpo``/``kto``/``compare`` parse their flags with TRL's parser (:func:`make_train_parser`)."""
    parser = argparse.ArgumentParser(
        prog="smol-align",
        description="One-line preference alignment (DPO, ORPO, KTO) of small language models, on TRL.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n", 2)[2],
    )
    parser.add_argument("--version", action="version", version=f"smol-align {__version__}")
    sub = parser.add_subparsers(
        dest="command",
        metavar="{sft,dpo,orpo,kto,pipeline,compare,iterate,doctor,eval,estimate,generate,chat,merge,push,presets,recipes}",
    )
    for method in ("sft", "dpo", "orpo", "kto"):
        sub.add_parser(
            method,
            help=f"train with {method.upper()} (no options: the demo; --help: every TRL field)",
            add_help=False,
        )
    pipe = sub.add_parser(
        "pipeline", help="SFT, then DPO from the SFT model: a run folder per stage, one report"
    )
    pipe.add_argument(
        "--config",
        default=None,
        help="a pipeline recipe YAML (default: recipes/demo-pipeline.yaml, the demo)",
    )
    pipe.add_argument("--output-dir", "--output_dir", dest="output_dir", default=None)
    pipe.add_argument("--lora", choices=("merge", "continue"), default=None, help="a LoRA stage's adapter")
    pipe.add_argument("--resume", action="store_true", help="continue a pipeline from its unfinished stage")
    pipe.add_argument(
        "--overwrite", action="store_true", help="run again in a pipeline folder of smol_align's"
    )
    pipe.add_argument("--quiet", action="store_true", default=None, help="no progress bars or summaries")
    sub.add_parser(
        "compare", help="DPO vs ORPO (vs KTO) on the same data and budget, with a report", add_help=False
    )
    it = sub.add_parser(
        "iterate",
        help="iterative DPO/ORPO (pair best vs worst) or RFT (keep the best): sample, score, train; repeat",
    )
    it.add_argument("--model", default=DEFAULT_REF, help="name or folder (default: %(default)s)")
    it.add_argument(
        "--prompts", default=None, help=".jsonl with a 'prompt' per line (default: the demo's prompts)"
    )
    it.add_argument(
        "--eval-prompts", "--eval_prompts", dest="eval_prompts", default=None, help="held-out prompts, .jsonl"
    )
    it.add_argument(
        "--reward",
        default=None,
        help="a sequence-classification reward model (default: the demo's rule reward)",
    )
    it.add_argument(
        "--method",
        choices=("dpo", "orpo", "rft"),
        default="dpo",
        help="rft: rejection-sampling fine-tuning on the kept answers (TRL's SFTTrainer)",
    )
    it.add_argument(
        "--keep",
        default=None,
        help="rft: 'best' (each prompt's best-scored answer; default) or a number (every answer at or above)",
    )
    it.add_argument("--rounds", type=int, default=None, help="(default 2)")
    it.add_argument(
        "--samples",
        type=int,
        default=None,
        help="answers sampled per prompt each round (default 4; the demo 8)",
    )
    it.add_argument(
        "--per-round",
        "--per_round",
        dest="per_round",
        type=int,
        default=None,
        help="fresh prompts each round: round k takes the k-th slice of this many (the demo: 128)",
    )
    it.add_argument(
        "--accumulate", action="store_true", help="train each round on every round's pairs so far"
    )
    it.add_argument("--preset", default="auto")
    it.add_argument("--output-dir", "--output_dir", dest="output_dir", default=None)
    it.add_argument("--seed", type=int, default=0)
    it.add_argument(
        "--max-new-tokens",
        "--max_new_tokens",
        dest="max_new_tokens",
        type=int,
        default=None,
        help="(default 32)",
    )
    it.add_argument("--temperature", type=float, default=None, help="sampling temperature (default 0.7)")
    it.add_argument("--overwrite", action="store_true")
    for flag, kind in (
        ("max_steps", int),
        ("learning_rate", float),
        ("beta", float),
        ("per_device_train_batch_size", int),
    ):
        it.add_argument(
            f"--{flag.replace('_', '-')}",
            f"--{flag}",
            dest=flag,
            type=kind,
            default=None,
            help="each round's run",
        )
    doc = sub.add_parser("doctor", help="check a preference dataset for bad pairs")
    doc.add_argument("dataset", help="hub id (owner/name), or a local json/jsonl/parquet/csv/tsv file")
    doc.add_argument("--max-length", type=int, default=None, help="count the pairs this max_length truncates")
    doc.add_argument(
        "--tokenizer", default=None, help="tokenizer name or path to count tokens (default: chars/4)"
    )
    doc.add_argument("--max-rows", type=int, default=None, help="check only the first N rows")
    doc.add_argument("--json", action="store_true", help="print the report as JSON")
    add_data_arguments(doc)
    ev = sub.add_parser("eval", help="held-out preference figures of a trained model")
    ev.add_argument("--model", required=True, help="folder of a trained model (or a hub id)")
    ev.add_argument("--dataset", default=None, help="pairs to evaluate on (default: the demo's test split)")
    ref_help = (
        "reference for the rewards, sharing the model's tokenizer (default: the model the run started from, "
        "as its metrics.json says; a LoRA run's base)"
    )
    ev.add_argument("--ref-model", "--ref_model", dest="ref_model", default=None, help=ref_help)
    ev.add_argument("--max-pairs", type=int, default=None)
    ev.add_argument("--beta", type=float, default=0.1)
    add_data_arguments(ev)
    sub.add_parser("presets", help="list the presets")
    rec = sub.add_parser("recipes", help="list the recipes and accelerate configs shipped with smol_align")
    shown = rec.add_mutually_exclusive_group()
    shown.add_argument("--show", metavar="NAME", help="print one, to copy and change")
    shown.add_argument(
        "--path",
        metavar="NAME",
        help='print its file (accelerate launch --config_file "$(smol-align recipes --path multi-gpu)")',
    )
    gen = sub.add_parser("generate", help="answers of one or more models to your prompts, side by side")
    gen.add_argument(
        "--model", action="append", required=True, help="a model or run folder; repeat to compare"
    )
    gen.add_argument(
        "--prompts", required=True, help=".jsonl (a 'prompt' per line: text or messages) or .txt"
    )
    gen.add_argument("--output", default=None, help="write .md or .jsonl (default: Markdown on stdout)")
    chat = sub.add_parser(
        "chat", help="talk to a model (or two, side by side); one message per line, /reset, /exit"
    )
    chat.add_argument("model", help="a run folder, a model folder or name (the demo model offline)")
    chat.add_argument(
        "--compare", default=None, help="a second model answering each message beside the first"
    )
    for verb in (ev, gen, chat):
        verb.add_argument("--tokenizer", default=None, help="tokenizer name or folder (default: the model's)")
    for verb in (gen, chat):
        verb.add_argument(
            "--max-new-tokens", "--max_new_tokens", dest="max_new_tokens", type=int, default=128
        )
        verb.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
        verb.add_argument("--temperature", type=float, default=0.7)
        verb.add_argument("--top-p", "--top_p", dest="top_p", type=float, default=0.9)
        verb.add_argument("--seed", type=int, default=0)
    est = sub.add_parser("estimate", help="predicted peak memory of a run, by part, before it starts")
    est.add_argument(
        "--model", default=None, help="name or path (only its config is read; default: the demo's)"
    )
    est.add_argument("--method", choices=("dpo", "orpo", "kto"), default="dpo")
    est.add_argument("--preset", default="auto")
    est.add_argument("--max-length", "--max_length", dest="max_length", type=int, default=None)
    est.add_argument(
        "--batch-size", "--per_device_train_batch_size", dest="batch_size", type=int, default=None
    )
    est.add_argument(
        "--gradient-checkpointing",
        "--gradient_checkpointing",
        dest="gradient_checkpointing",
        choices=("true", "false"),
        default=None,
    )
    merge = sub.add_parser("merge", help="a LoRA run's adapter merged into its base: a whole model")
    merge.add_argument("run", help="the output folder of a LoRA (or QLoRA) run")
    merge.add_argument("--output", default=None, help="where the merged model goes (default: RUN/merged)")
    merge.add_argument(
        "--overwrite", action="store_true", help="replace a merged model smol_align wrote there"
    )
    push = sub.add_parser(
        "push", help="a run (or merged) folder to the Hugging Face Hub, with its model card"
    )
    push.add_argument("run", help="the folder of a finished run, or of a merged model")
    push.add_argument(
        "--repo-id", "--repo_id", dest="repo_id", default=None, help="(default: the folder's name)"
    )
    push.add_argument("--private", action="store_true", help="create the repo private")
    return parser


# TRL's (``trl dpo``: ScriptArguments, ModelConfig) and the handbook's names -> ours; dtype, lora_*:
# presets.EXTRA_KEYS; older TRL/transformers names (the handbook's warmup_ratio): presets.RENAMED, the one
# table of renamed options
TRL_NAMES = {
    "model_name_or_path": "model",
    "dataset_name": "dataset",
    "dataset_train_split": "split",
    "dataset_test_split": "eval_split",
    "torch_dtype": "dtype",
    "preprocessing_num_workers": "dataset_num_proc",
}
NOT_USED = {
    "attn_implementation": "the model loads with transformers' default attention (sdpa)",  # and why
    "model_revision": "download that revision and pass its folder as --model",
    "load_in_8bit": "8-bit is not trained here; --preset qlora-4bit trains LoRA on a 4-bit base",
}
MIXTURE = "smol-align trains on one dataset: mix them beforehand and pass the result as --dataset"
HANDBOOK = {  # the alignment-handbook's recipe keys that TRL 1.x has not
    "torch_dtype": {"help": "= --dtype"},
    "preprocessing_num_workers": {"type": int, "help": "= --dataset_num_proc"},
    "warmup_ratio": {"type": float, "help": "= --warmup_steps (transformers 5 takes the fraction there)"},
    "dataset_splits": {"nargs": "+", "help": "train split, then held-out split"},
    "dataset_mixer": {"help": "{dataset: 1.0}: one dataset, used whole"},
    "dataset_mixture": {"help": "refused: " + MIXTURE},
}


DOCS = "https://smol-align.github.io/smol-align/"  # pyproject.toml's [project.urls] Documentation
DOCS_PAGE = {"sft": "methods/sft/", "dpo": "methods/dpo/", "orpo": "methods/orpo/", "kto": "methods/kto/"}


def make_train_parser(method: str, compare: bool = False):
    """``smol-align dpo|orpo|kto|sft`` (or ``compare``): TRL's parser with ``trl dpo``'s dataclasses, ours on
    top. Nothing has a default: the parse holds only what the recipe and flags gave; the preset fills in the
    rest. The help lists ours first, then TRL's by dataclass, each group under a title, each flag once."""
    from trl import ModelConfig, ScriptArguments, TrlParser

    from ._compat import HelpFormatter, add_dataclass_group
    from .options import RunOptions
    from .presets import config_class, names

    prog = f"smol-align {'compare' if compare else method}"
    config = config_class(method)
    parser = TrlParser(
        prog=prog,
        usage=f"{prog} [--config RECIPE.yaml] [--FIELD VALUE ...]",
        epilog=f"Guide: {DOCS}{DOCS_PAGE['orpo' if compare else method]}",
        formatter_class=HelpFormatter,
        add_help=False,
        conflict_handler="resolve",
        argument_default=argparse.SUPPRESS,
    )
    # The groups in the order the help shows them. The runner's and the data's options are smol_align's
    # dataclasses, the ones train_dpo & co. build (compare sets the runner's itself: its own flags below)
    group = parser.add_argument_group(
        "smol-align options",
        "compare: each method on the same pairs, steps (or wall budget) and seed" if compare else None,
    )
    ours = [(DataOptions, "data (smol_align DataOptions)")]
    classes = [
        *(ours if compare else [(RunOptions, "run (smol_align RunOptions)"), *ours]),
        (ScriptArguments, "data (TRL ScriptArguments; --dataset_name is --dataset)"),
        (config, f"training (TRL {config.__name__})"),
        (ModelConfig, "model (TRL ModelConfig; --model_name_or_path is --model)"),
    ]
    # Not kept as parser.dataclass_types: the parse is a namespace of what was given, not TRL's defaults
    for cls, title in classes:
        add_dataclass_group(parser, cls, title)
    parser.set_defaults_with_config(
        **{f.name: argparse.SUPPRESS for cls, _ in classes for f in dataclasses.fields(cls)}
    )
    # Ours are added after TRL's, so that where both name a flag (--output_dir) ours is the one left
    group.add_argument("-h", "--help", action="help", help="show this help and exit")
    group.add_argument(
        "--config", help="a recipe YAML: keys are these flags' names (TRL's and the handbook's too)"
    )
    group.add_argument("--model", help="hub id or folder (default: the embedded SmolLM2-135M-Instruct)")
    group.add_argument(
        "--dataset", help="hub id, local json/jsonl/parquet/csv (default: the built-in demo data)"
    )
    group.add_argument(
        "--preset", help=f"one of {', '.join(names())}, or hardware+mode such as colab-t4+lora"
    )
    group.add_argument(
        "--output_dir",
        "--output-dir",
        help="the report folder, each trained model in it"
        if compare
        else "where the model goes (default: runs/<method>-<model>-<time>)",
    )
    group.add_argument("--tokenizer", help="the tokenizer's name or folder (default: the model's)")
    if method == "dpo" and not compare:
        group.add_argument(
            "--constraint",
            dest="constraints",
            action="append",
            help="a term added to the DPO loss, repeatable: dpop[:LAMBDA] (DPO-Positive, Pal et al. 2024), "
            "length[:ALPHA] (R-DPO, Park et al. 2024); docs: methods/dpo, Constraints",
        )
    handbook = parser.add_argument_group("alignment-handbook recipe keys")
    for key, kwargs in HANDBOOK.items():
        handbook.add_argument(f"--{key}", **kwargs)
    if compare:  # TRL fields given to compare go to every method, so each must exist in every method's config
        group.add_argument("--methods", help="comma-separated, from dpo,orpo,kto (default: dpo,orpo)")
        group.add_argument(
            "--time_budget", "--time-budget", type=float, help="seconds of training per method"
        )
        group.add_argument(
            "--no_save", "--no-save", dest="save", action="store_false", help="keep only the report"
        )
        group.add_argument("--overwrite", action="store_true", help="replace an existing report folder")
        group.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    return parser


def parse_train_args(parser, argv: list[str]) -> dict:
    """What the recipe and the flags gave, typed by TRL's parser, as smol_align's keywords (ours over TRL's
    names over the handbook's). An unknown name is an error naming the closest ones; a TRL name not used
    here, or a retired TRL key in a recipe, is left out with the reason (printed)."""
    from trl import ModelConfig, ScriptArguments

    from .presets import EXTRA_KEYS, RENAMED, RETIRED

    argv = _shipped_config(argv)
    try:
        *parsed, from_recipe, from_flags = parser.parse_args_and_config(
            argv, return_remaining_strings=True, separate_remaining_strings=True
        )
    except FileNotFoundError as err:
        raise ConfigError(f"Recipe {err.filename} not found.") from None
    except ValueError as err:  # a recipe that is not a mapping
        raise ConfigError(str(err)) from None
    for where, rest in (("recipe", from_recipe), ("flag", from_flags)):
        for key in [s[2:].split("=")[0].replace("-", "_") for s in rest if s.startswith("--")] or [
            s.lstrip("-") for s in rest[:1]
        ]:
            if key in RETIRED and where == "flag":
                raise ConfigError(f"`--{key}` no longer exists in TRL 1.x: {RETIRED[key]}")
            if key in RETIRED:
                print(
                    f"{parser.prog}: `{key}` in the recipe is not used: gone in TRL 1.x: {RETIRED[key]}",
                    file=sys.stderr,
                )
                continue
            known = re.findall(r"^ +(?:-\w, )?--(\w+)", parser.format_help(), re.M)
            close = (
                [RENAMED[key]] if key in RENAMED else difflib.get_close_matches(key, known, n=3, cutoff=0.6)
            )
            what = f"option --{key}" if where == "flag" else f"recipe key {key!r}"
            hint = f"; did you mean {' or '.join('--' + c for c in close)}?" if close else ";"
            print(
                f"{parser.prog}: error: unknown {what}{hint} `{parser.prog} --help` lists them all",
                file=sys.stderr,
            )
            raise SystemExit(2)
    trl_names = {f.name for cls in (ScriptArguments, ModelConfig) for f in dataclasses.fields(cls)} | set(
        HANDBOOK
    )
    given, options = vars(parsed[0]) if parsed else {}, {}
    for key, value in sorted(
        given.items(), key=lambda item: (item[0] not in HANDBOOK) + (item[0] not in trl_names)
    ):
        if key not in trl_names or key in TRL_NAMES or key in RENAMED or key in EXTRA_KEYS:
            options[TRL_NAMES.get(key) or RENAMED.get(key, key)] = value
        elif key == "dataset_splits":
            options.update(zip(("split", "eval_split"), value, strict=False))
        elif key == "dataset_mixer" and isinstance(value, dict) and list(value.values()) == [1.0]:
            options["dataset"] = next(iter(value))
        elif key in ("dataset_mixer", "dataset_mixture"):
            raise ConfigError(f"`{key}`: {MIXTURE}.")
        elif key != "use_peft":
            reason = NOT_USED.get(key, "TRL reads it, smol-align does not")
            print(f"{parser.prog}: `{key}` is not used: {reason}", file=sys.stderr)
    if given.get("use_peft") and "lora" not in (options.get("preset") or ""):
        options["preset"] = f"{options['preset']}+lora" if options.get("preset") else "lora"
    data = {k: v for k, v in options.items() if k in DATA_NAMES}  # typed as DataOptions reads them
    options.update({k: getattr(DataOptions(**data), k) for k in data})
    return options


def train_options(method: str, argv: list[str]) -> dict:
    """Recipe values, then the flags typed, as keyword arguments for ``train_dpo``/``train_orpo``/``train_kto``."""
    return parse_train_args(make_train_parser(method), argv)


def option_objects(method: str, argv: list[str]):
    """The typed options (:class:`smol_align.options.Options`) that ``smol-align <method> ARGV`` trains with:
    the same objects ``train_<method>`` builds from the same settings given as keywords."""
    from .api import options_for

    keywords = train_options(method, argv)
    dataset, preset = keywords.get("dataset"), keywords.get("preset", "auto")
    own = {"model", "dataset", "preset", "output_dir"}
    return options_for(method, dataset, preset, **{k: v for k, v in keywords.items() if k not in own})


def compare_options(argv: list[str]) -> dict:
    """A recipe's values, then the flags typed, as keywords for ``compare`` (none: its demo). Parsed with the
    parser of each chosen method: a flag that only DPO (or only ORPO) has is refused."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--methods", default="dpo,orpo")
    methods = [m.strip() for m in pre.parse_known_args(argv)[0].methods.split(",") if m.strip()]
    return [parse_train_args(make_train_parser(method, compare=True), argv) for method in methods or ["dpo"]][
        -1
    ]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # invoked_as: what a run's model card gives as the command that reproduces it; the libraries' noise
    # filtered (the runner silences their progress bars too; SMOL_ALIGN_VERBOSE=1 shows everything)
    with invoked_as(cli_command(argv)), library_noise_filtered(bars=False):
        return _main(argv)


def _main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "urllib3", "datasets", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    parser = make_parser()
    args, rest = parser.parse_known_args(argv)  # dpo, orpo, kto and compare parse the rest with TRL's parser
    args = args if args.command in ("sft", "dpo", "orpo", "kto", "compare") else parser.parse_args(argv)
    try:
        if args.command in ("sft", "dpo", "orpo", "kto"):
            from . import api

            getattr(api, f"train_{args.command}")(**train_options(args.command, rest))
        elif args.command == "pipeline":
            from importlib import resources

            from .pipeline import pipeline_from_recipe

            recipe = args.config or resources.files("smol_align") / "recipes" / "demo-pipeline.yaml"
            given = {
                k: v for k, v in vars(args).items() if k in ("output_dir", "lora", "quiet") and v is not None
            }
            pipeline_from_recipe(recipe, resume=args.resume, overwrite=args.overwrite, **given)
        elif args.command == "compare":
            from .compare import compare

            compare(**compare_options(rest))
        elif args.command == "iterate":
            from .iterate import iterate, split_prompts

            options = {k: v for k, v in vars(args).items() if k != "command" and v is not None}
            if args.eval_prompts:
                options["eval_prompts"] = split_prompts(args.eval_prompts, [], 0)[0]
            iterate(**options)
        elif args.command == "doctor":
            report = doctor(
                args.dataset, tokenizer=args.tokenizer, max_length=args.max_length, **data_options(args)
            )
            print(json.dumps(report.to_dict(), indent=2) if args.json else report)
        elif args.command == "eval":
            return _run_eval(args)
        elif args.command in ("generate", "chat"):
            return _run_generate(args) if args.command == "generate" else _run_chat(args)
        elif args.command == "estimate":
            from .estimate import estimate

            checkpointing = (
                {}
                if args.gradient_checkpointing is None
                else {"gradient_checkpointing": args.gradient_checkpointing == "true"}
            )
            print(
                estimate(
                    args.model, args.method, args.preset, args.max_length, args.batch_size, **checkpointing
                )
            )
        elif args.command == "merge":
            from .merge import merge, merged_line

            print(merged_line(args.run, merge(args.run, args.output, overwrite=args.overwrite)))
        elif args.command == "push":
            from .hub import push_to_hub

            repo = push_to_hub(args.run, args.repo_id, private=args.private or None)
            print(f"Pushed {args.run} with its model card to the Hub repo {repo}.")
        elif args.command == "recipes":
            from .shipped import describe, find

            if args.show or args.path:
                print(
                    find(args.show).read_text() if args.show else find(args.path),
                    end="" if args.show else "\n",
                )
            else:
                print("\n".join(f"{name:<12} {kind:<17} {first}" for name, kind, first in describe()))
        elif args.command == "presets":
            from .presets import describe

            print("\n".join(f"{name:<12} {text}" for name, text in describe()))
        else:
            parser.print_help()
    except SmolAlignError as err:
        print(f"smol-align {args.command}: error: {err}", file=sys.stderr)
        return getattr(err, "exit_code", 2)  # 130/143 for a run stopped by SIGINT/SIGTERM
    except SystemExit as stop:  # --help, or a flag TRL's parser refused
        return stop.code if isinstance(stop.code, int) else 2
    return 0


@library_noise_filtered()  # their bars too (loading the models, tokenizing)
def _run_eval(args) -> int:
    from .data import heldout_pairs, load
    from .evaluate import check_same_tokenizer, evaluate, start_model_of
    from .models import is_peft, load_model

    model, tokenizer = load_model(args.model, tokenizer=args.tokenizer)
    ref_name = args.ref_model or (None if is_peft(model) else start_model_of(args.model))
    ref_model = None  # a LoRA run's reference: its base, the adapters disabled (evaluate's rule, as TRL's)
    if ref_name is not None:
        try:
            ref_model, ref_tokenizer = load_model(ref_name)
        except SmolAlignError as err:
            if args.ref_model:
                raise
            raise ConfigError(
                f"{args.model} started from {ref_name!r} (its metrics.json says; a "
                "relative folder is relative to where the run was started), which cannot be "
                f"loaded: {err} Or pass the reference as --ref-model."
            ) from err
        check_same_tokenizer(tokenizer, ref_tokenizer, args.model, ref_name)
    options = data_options(args)  # the test split, else every pair; --eval-split picks or holds out
    pairs = (
        load(args.dataset, **options).eval
        if "eval_split" in options
        else heldout_pairs(args.dataset, **options)
    )
    figures = evaluate(
        model, pairs, ref_model=ref_model, tokenizer=tokenizer, max_pairs=args.max_pairs, beta=args.beta
    )
    figures.pop("logps", None)
    if ref_name is not None:
        figures["reference"] = ref_name
    print(json.dumps(figures, indent=2))
    return 0


def _sampling(args) -> dict:
    return {
        "max_new_tokens": args.max_new_tokens,
        "sample": args.sample,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "seed": args.seed,
    }


@library_noise_filtered()
def _run_generate(args) -> int:
    from .evaluate import generate
    from .models import load_model
    from .report import side_by_side_markdown

    path = Path(args.prompts)
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in lines]
        prompts = [row["prompt"] if isinstance(row, dict) else row for row in rows]
    else:
        prompts = lines
    answers: dict[str, list[str]] = {}
    for name in args.model:
        model, tokenizer = load_model(name, tokenizer=args.tokenizer)
        answers[name] = generate(model, prompts, tokenizer, **_sampling(args))
    table = [
        {"prompt": p, "answers": {name: answers[name][i] for name in args.model}}
        for i, p in enumerate(prompts)
    ]
    if args.output and args.output.endswith(".jsonl"):
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in table)
    else:
        text = side_by_side_markdown(table) + "\n"
    if args.output:
        Path(args.output).write_text(text)
    else:
        print(text, end="")
    return 0


@library_noise_filtered()
def _run_chat(args) -> int:
    """One conversation per model; a message is a line (a prompt on a terminal); /reset clears, /exit ends."""
    from transformers import TextStreamer

    from .evaluate import generate
    from .models import load_model

    names = [args.model] + ([args.compare] if args.compare else [])
    models = [load_model(name, tokenizer=args.tokenizer) for name in names]
    history: list[list[dict]] = [[] for _ in names]
    tty = sys.stdin.isatty()
    print(f"Chatting with {' and '.join(names)}. /reset starts over, /exit ends.", flush=True)
    while True:
        try:
            message = input("> ") if tty else sys.stdin.readline()
        except EOFError:
            break
        if not tty and not message:
            break
        message = message.strip()
        if message == "/exit":
            break
        if message in ("/reset", ""):
            history = [[] for _ in names] if message else history
            continue
        for name, (model, tokenizer), turns in zip(names, models, history, strict=True):
            turns.append({"role": "user", "content": message})
            if len(names) > 1:
                print(f"[{name}]", flush=True)
            streamer = TextStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True) if tty else None
            answer = generate(model, [turns], tokenizer, streamer=streamer, **_sampling(args))[0]
            if not tty:
                print(answer, flush=True)
            turns.append({"role": "assistant", "content": answer})
    return 0


if __name__ == "__main__":
    sys.exit(main())
