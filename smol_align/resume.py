"""What a resume keeps and restores: the settings its checkpoint holds, and the end of a run that stopped
in its final save (no step trained past ``max_steps``)."""

from __future__ import annotations

import json
from pathlib import Path

from ._compat import tied_weights_keys
from .errors import ConfigError
from .metrics import whole_run_loss
from .models import is_peft
from .rundir import RunDir

RESTORED_ON_RESUME = ("learning_rate", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon", "optim")
"""Settings a resume takes from its checkpoint, whatever it is given: the optimizer's hyperparameters
(its param groups) and the scheduler's base rate come back with their state. Other settings (beta,
max_steps...) apply as given."""


def check_resumed_settings(rundir: RunDir, checkpoint: Path | None, asked: dict) -> None:
    """Refuse a resume given other values of :data:`RESTORED_ON_RESUME` than its run started with: the
    checkpoint's would be used and the new ones only written in metrics.json and report.md."""
    kept = rundir.marked().get("settings") if checkpoint is not None else None
    asked = {k: getattr(v, "value", v) for k, v in asked.items()}
    changed = {k: (kept[k], v) for k, v in asked.items() if kept and k in kept and kept[k] != v}
    if changed:
        was = ", ".join(f"{k}={old!r}" for k, (old, _) in changed.items())
        new = ", ".join(f"{k}={new!r}" for k, (_, new) in changed.items())
        raise ConfigError(
            f"resume=True continues the run in {rundir.path} from {checkpoint.name}, whose optimizer and "
            f"scheduler state hold {was}; this run asks for {new}, which the resumed optimizer would not "
            "use. Drop the new value to continue the run as it started, or start a new run with it "
            "(overwrite=True, or another output_dir)."
        )


def at_the_end(trainer, checkpoint: Path) -> bool:
    """``checkpoint`` is of the run's last step, in safetensors (Trainer's resume would train one step past
    max_steps: it skips the trained batches, then trains the next one before it checks the step count)."""
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    names = ("model.safetensors", "adapter_model.safetensors", "model.safetensors.index.json")
    whole = any((checkpoint / name).exists() for name in names)  # else Trainer's own loader, and its step
    return whole and 0 < trainer.args.max_steps <= state["global_step"]


def restore_finished(trainer, checkpoint: Path):
    """The weights and trainer state of a checkpoint at the last step, with no training: the run's end."""
    from safetensors.torch import load_file
    from transformers import TrainerState
    from transformers.trainer_utils import TrainOutput

    weights = {}
    for path in sorted(checkpoint.glob("*.safetensors")):
        weights.update(load_file(str(path)))
    if is_peft(trainer.model):
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(trainer.model, weights)
    else:
        missing, unexpected = trainer.model.load_state_dict(weights, strict=False)
        tied = tied_weights_keys(trainer.model) | {"lm_head.weight"}
        missing = sorted(set(missing) - tied)
        if unexpected or missing:
            raise ConfigError(
                f"resume=True: {checkpoint} does not hold this model's weights (missing "
                f"{missing[:3]}, unexpected {unexpected[:3]})."
            )
    trainer.state = TrainerState.load_from_json(str(checkpoint / "trainer_state.json"))
    return TrainOutput(trainer.state.global_step, whole_run_loss(trainer.state.log_history), {})
