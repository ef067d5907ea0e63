"""The ``smol-align`` command: dpo | orpo | compare | doctor | eval | presets.

# The demo (embedded SmolLM2, built-in data, the preset for this machine)
smol-align dpo
smol-align orpo

# Your data and settings: a recipe, then flags (any DPOConfig / ORPOConfig field) on top
smol-align dpo --config recipe.yaml --dataset pairs.jsonl --max-steps 100 --learning-rate 1e-5
smol-align dpo --model HuggingFaceTB/SmolLM2-360M-Instruct --preset lora --output-dir runs/mine

# DPO against ORPO: same model, pairs, budget and seed; a report with table, plots and answers
smol-align compare --output-dir runs/compare-demo
smol-align compare --dataset pairs.jsonl --methods dpo,orpo --time-budget 600 --beta 0.2

# Your own columns, a held-out fraction, a filter; every command takes the same data flags
smol-align dpo --dataset pairs.jsonl --columns prompt=question,chosen=good,rejected=bad --eval-split 0.1
smol-align doctor pairs.jsonl --max-length 512 --drop-identical
"""

from __future__ import annotations

import argparse
import logging
import sys

DEFAULT_REF = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the start model of the demo and of most course runs
META_FLAGS = ("model", "dataset", "preset", "output_dir", "config", "overwrite", "quiet")


def _columns(value: str) -> dict[str, str]:
    try:
        return dict(item.split("=", 1) for item in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NAME=COLUMN[,NAME=COLUMN...], got {value!r}") from None


def _split_or_fraction(value: str) -> str | float:
    try:
        return float(value)
    except ValueError:
        return value


def add_data_arguments(parser, suppress: bool = False) -> None:
    """The data flags of every command: they become the keywords of ``smol_align.data.load``."""
    group = parser.add_argument_group("data (smol_align.data.load)")
    flags = [
        ("--format", {"help": "the data's format, e.g. alpaca, sharegpt, chatml.intel (default: detected)"}),
        ("--columns", {"type": _columns, "help": "rename your columns: prompt=question,chosen=good,rejected=bad"}),
        ("--split", {"help": "the split to train on (default: train, or the only one)"}),
        ("--eval-split", {"type": _split_or_fraction,
                          "help": "held-out split name, or a fraction held out (default: test split, else 0.1)"}),
        ("--eval-dataset", {"help": "held-out pairs from another file or hub id"}),
        ("--strict", {"action": "store_true", "help": "stop at the first row that does not fit"}),
        ("--lenient", {"action": "store_true", "help": "leave out text columns the format does not read"}),
        ("--drop-identical", {"action": "store_true", "help": "drop pairs whose chosen equals rejected"}),
        ("--drop-empty", {"action": "store_true", "help": "drop pairs with an empty completion"}),
        ("--drop-ties", {"action": "store_true", "help": "drop pairs with equal ratings"}),
        ("--min-margin", {"type": float, "help": "drop pairs whose rating margin is below this"}),
        ("--dedupe-prompts", {"action": "store_true", "help": "keep only the first pair of each prompt"}),
        ("--filters", {"help": "a named set of filters: clean, argilla-orca"}),
    ]  # fmt: skip
    for flag, kwargs in flags:
        dest = flag[2:].replace("-", "_")
        group.add_argument(flag, f"--{dest}", dest=dest, **kwargs, **({"default": argparse.SUPPRESS} if suppress else {}))


def data_options(args: argparse.Namespace) -> dict:
    """The data flags that were given, as keywords for ``load``."""
    from .data import DATA_OPTIONS

    return {k: v for k, v in vars(args).items() if k in DATA_OPTIONS and v is not None and v is not False}


def make_parser() -> argparse.ArgumentParser:
    """The full parser; training flags are added per method when ``dpo``/``orpo`` is chosen."""
    parser = argparse.ArgumentParser(
        prog="smol-align",
        description="One-line preference alignment (DPO, ORPO) of small language models, on TRL.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n", 2)[2],
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="{dpo,orpo,compare,doctor,eval,presets}")
    for method in ("dpo", "orpo"):
        p = sub.add_parser(method, help=f"train with {method.upper()} (no options: the demo)", add_help=False)
        p.add_argument("-h", "--help", action="store_true", help="show this help, with every TRL field")
    p = sub.add_parser("compare", help="DPO vs ORPO on the same data and budget, with a report", add_help=False)
    p.add_argument("-h", "--help", action="store_true", help="show this help, with every TRL field")
    doctor = sub.add_parser("doctor", help="check a preference dataset for bad pairs")
    doctor.add_argument("dataset", help="hub id (owner/name), or a local json/jsonl/parquet/csv/tsv file")
    doctor.add_argument("--max-length", type=int, default=None, help="count the pairs this max_length truncates")
    doctor.add_argument("--tokenizer", default=None, help="tokenizer name or path to count tokens (default: chars/4)")
    doctor.add_argument("--max-rows", type=int, default=None, help="check only the first N rows")
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    add_data_arguments(doctor)
    ev = sub.add_parser("eval", help="held-out preference figures of a trained model")
    ev.add_argument("--model", required=True, help="folder of a trained model (or a hub id)")
    ev.add_argument("--dataset", default=None, help="pairs to evaluate on (default: the demo's test split)")
    ev.add_argument("--ref-model", default=DEFAULT_REF, help="reference for the reward figures (default: %(default)s)")
    ev.add_argument("--max-pairs", type=int, default=None)
    ev.add_argument("--beta", type=float, default=0.1)
    add_data_arguments(ev)
    sub.add_parser("presets", help="list the presets")
    return parser


def make_train_parser(method: str) -> argparse.ArgumentParser:
    """``smol-align dpo|orpo`` flags: ours plus every field of TRL's config, built by TRL's own parser.

    Defaults are suppressed, so the parsed namespace holds only what was typed: those values
    override the recipe, which overrides the preset.
    """
    from transformers import HfArgumentParser

    from .presets import config_class, names

    parser = HfArgumentParser([config_class(method)], prog=f"smol-align {method}", conflict_handler="resolve")
    group = parser.add_argument_group("smol_align")
    group.add_argument("--config", help="a recipe YAML (keys: model, dataset, preset and any config field)")
    group.add_argument("--model", help="hub id or folder (default: the embedded SmolLM2-135M-Instruct)")
    group.add_argument("--dataset", help="hub id, local json/jsonl/parquet/csv (default: the built-in demo data)")
    group.add_argument("--preset", help=f"one of {', '.join(names())}, or hardware+mode such as colab-t4+lora")
    group.add_argument("--output_dir", "--output-dir", help="where the model goes (default: runs/<method>-<model>-<time>)")
    group.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    group.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    add_data_arguments(parser)
    for action in parser._actions:
        if action.dest != "help":
            action.default = argparse.SUPPRESS
            action.required = False
    return parser


def train_options(method: str, argv: list[str]) -> dict:
    """Recipe values, then the flags typed, as keyword arguments for ``train_dpo``/``train_orpo``."""
    parser = make_train_parser(method)
    flags = vars(parser.parse_args(argv))
    recipe = flags.pop("config", None)
    options = load_recipe(recipe) if recipe else {}
    options.update(flags)  # no data given: train_dpo/train_orpo fill in the demo recipe themselves
    return options


def load_recipe(path: str) -> dict:
    from .presets import read_recipe

    return read_recipe(path)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "urllib3", "datasets", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    parser = make_parser()
    if argv and argv[0] in ("dpo", "orpo"):
        method, rest = argv[0], argv[1:]
        if "-h" in rest or "--help" in rest:
            make_train_parser(method).print_help()
            return 0
        return _run_train(method, rest)
    if argv and argv[0] == "compare":
        if "-h" in argv[1:] or "--help" in argv[1:]:
            make_compare_parser().print_help()
            return 0
        return _run_compare(argv[1:])
    args = parser.parse_args(argv)
    if args.command in ("doctor", "eval"):
        from .errors import SmolAlignError

        try:
            return _run_doctor(args) if args.command == "doctor" else _run_eval(args)
        except SmolAlignError as err:
            print(f"smol-align {args.command}: error: {err}", file=sys.stderr)
            return 2
    if args.command == "presets":
        from .presets import describe

        for name, text in describe():
            print(f"{name:<12} {text}")
        return 0
    parser.print_help()
    return 0


def _run_train(method: str, argv: list[str]) -> int:
    from . import api
    from .errors import SmolAlignError

    try:
        options = train_options(method, argv)
        train = api.train_dpo if method == "dpo" else api.train_orpo
        train(**options)
    except SmolAlignError as err:
        print(f"smol-align {method}: error: {err}", file=sys.stderr)
        return 2
    return 0


def make_compare_parser(method: str = "dpo") -> argparse.ArgumentParser:
    """``smol-align compare`` flags: those of ``smol-align <method>`` plus ``--methods``, ``--time-budget``, ``--no-save``.

    TRL fields given here go to every method, so each must exist in every method's config.
    """
    parser = make_train_parser(method)
    parser.prog = "smol-align compare"
    parser.description = "Train each method on the same pairs, steps (or wall budget) and seed; write a report."
    for action in parser._actions:
        if action.dest == "output_dir":
            action.help = "the report folder, with each trained model in it (default: runs/compare-<model>-<time>)"
    group = parser.add_argument_group("compare")
    group.add_argument("--methods", help="comma-separated, from dpo,orpo (default: dpo,orpo)")
    group.add_argument("--time_budget", "--time-budget", type=float, help="seconds of training per method")
    group.add_argument("--no_save", "--no-save", dest="save", action="store_false",
                       help="keep only the report, not the trained models")  # fmt: skip
    for action in group._group_actions:
        action.default = argparse.SUPPRESS
    return parser


def compare_options(argv: list[str]) -> dict:
    """A recipe's values (``--config``), then the flags typed, as keyword arguments for ``compare``.

    Flags are parsed with the parser of each chosen method: one that only DPO (or only ORPO) has
    is refused. Without options, ``compare()`` runs its demo (embedded model, demo data and budget).
    """
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--methods", default="dpo,orpo")
    methods = [m.strip() for m in pre.parse_known_args(argv)[0].methods.split(",") if m.strip()]
    flags: dict = {}
    for method in methods or ["dpo"]:
        flags = vars(make_compare_parser(method).parse_args(argv))
    recipe = flags.pop("config", None)
    options = load_recipe(recipe) if recipe else {}
    options.update(flags)
    return options


def _run_compare(argv: list[str]) -> int:
    from .compare import compare
    from .errors import SmolAlignError

    try:
        compare(**compare_options(argv))
    except SmolAlignError as err:
        print(f"smol-align compare: error: {err}", file=sys.stderr)
        return 2
    return 0


def _run_doctor(args) -> int:
    import json

    from .data import doctor

    report = doctor(args.dataset, tokenizer=args.tokenizer, max_length=args.max_length, **data_options(args))
    print(json.dumps(report.to_dict(), indent=2) if args.json else report)
    return 0


def _run_eval(args) -> int:
    import json

    from .data import heldout_pairs, load
    from .evaluate import evaluate
    from .models import load_model

    options = data_options(args)  # the test split, else every pair; --eval-split picks or holds out
    pairs = load(args.dataset, **options).eval if "eval_split" in options else heldout_pairs(args.dataset, **options)
    model, tokenizer = load_model(args.model)
    ref_model = load_model(args.ref_model)[0] if args.ref_model else None
    figures = evaluate(model, pairs, ref_model=ref_model, tokenizer=tokenizer, max_pairs=args.max_pairs,
                       beta=args.beta)  # fmt: skip
    figures.pop("logps", None)
    print(json.dumps(figures, indent=2))
    return 0


def _version() -> str:
    from . import __version__

    return f"smol-align {__version__}"


if __name__ == "__main__":
    sys.exit(main())
