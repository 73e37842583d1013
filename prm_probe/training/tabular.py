"""The tabular policy (``--model tabular``): one logit vector over the task's actions per distinct prefix.

No function approximation: the policy at a prefix s (the actions taken so far) is ``softmax(θ[s] / T)`` over
the task's k allowed actions, with θ initialised to zero (the uniform policy). Parameters of different
prefixes are separate, so an update at one prefix never moves another — the setting that isolates the
*algorithmic* effect of λ-GRPO's 1/|λ| weights from a network's shared parameters. It is trained by the same
trainer, losses and optimisers as any model, and it saves, loads and resumes like one.

It behaves like a Hugging Face causal LM where the trainer and the sampler need it to: ``forward(input_ids,
attention_mask, position_ids, past_key_values, use_cache, logits_to_keep)`` returns ``.logits`` (B, L, V) and a
cache, and ``save_pretrained`` writes ``config.json`` + ``model.safetensors``. Its vocabulary is the built-in
character tokenizer's; logits of tokens that are not actions are ``-inf``.

Requirements on the task (checked by :func:`tabular_policy`): an allowed-token set (the actions), a fixed
completion length (``exact_new_tokens``: the depth of the table) and a single prompt (the table is indexed by
the completion's actions only). Prefixes are numbered as in a k-ary heap: the empty prefix is 0 and prefix
s followed by action a is ``s·k + 1 + a``; there are ``(k^d − 1)/(k − 1)`` prefixes shorter than d.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from prm_probe.errors import CheckpointError, ConfigError

__all__ = ["MAX_PREFIXES", "MODEL_TYPE", "TabularPolicy", "is_tabular_folder", "tabular_policy"]

MODEL_TYPE = "prm_probe_tabular"
MAX_PREFIXES = 1 << 22  # 4 M table rows: beyond this a table is no longer the point


class _Output(dict):
    """The forward's result: ``logits`` (B, L, V) and ``past_key_values`` (the running prefix ids)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class TabularPolicy(torch.nn.Module):
    """A table ``θ`` of shape (n_prefixes, k): the logits over the k actions at each prefix of length < depth.

    Args:
        actions: the k token ids of the actions, in the order of the table's columns.
        depth: the completion length (the number of actions per completion).
        prompt_length: tokens of the (single) prompt; positions below it are never actions.
        vocab_size: size of the vocabulary the logits are returned over.
    """

    def __init__(self, actions: list[int], depth: int, prompt_length: int, vocab_size: int) -> None:
        super().__init__()
        k = len(actions)
        if k < 2 or len(set(actions)) != k:
            raise ConfigError(f"tabular policy needs at least 2 distinct action ids; got {actions}; "
                              "use a task with an allowed-token set of 2 or more tokens")
        rows = (k ** depth - 1) // (k - 1)
        if depth < 1 or rows > MAX_PREFIXES:
            raise ConfigError(f"tabular policy for depth {depth} with {k} actions needs {rows} table rows; expected "
                              f"1 <= depth and at most {MAX_PREFIXES} rows; use a shallower task")
        if max(actions) >= vocab_size or min(actions) < 0:
            raise ConfigError(f"action ids {actions} are outside the vocabulary of {vocab_size}; expected ids of the "
                              "tokenizer; check the task's actions")
        self.actions, self.depth, self.prompt_length, self.vocab_size = list(actions), depth, prompt_length, vocab_size
        self.table = torch.nn.Parameter(torch.zeros(rows, k))  # (n_prefixes, k): zero = the uniform policy
        lookup = torch.full((vocab_size,), -1, dtype=torch.long)
        lookup[torch.as_tensor(self.actions)] = torch.arange(k)
        self.register_buffer("action_index", lookup, persistent=False)  # (V,) token id -> column, -1 if none
        self.config = _Config(self.tabular_config())

    @property
    def n_prefixes(self) -> int:
        return self.table.shape[0]

    def tabular_config(self) -> dict[str, Any]:
        return {"model_type": MODEL_TYPE, "format_version": 1, "actions": self.actions, "depth": self.depth,
                "prompt_length": self.prompt_length, "vocab_size": self.vocab_size}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, past_key_values: torch.Tensor | None = None,
                use_cache: bool = False, logits_to_keep: int = 0, **_: Any) -> _Output:
        """Logits (B, L, V) of the next action after each input position; ``past_key_values`` carries, per row,
        the prefix id reached so far (B,), so the sampler can feed one token at a time."""
        b, length = input_ids.shape
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask[:, -length:]
        if position_ids is None:
            position_ids = (attention_mask.cumsum(1) - 1).clamp(min=0)[:, -length:] if attention_mask is not None \
                else torch.arange(length, device=input_ids.device).expand(b, length)
        state = torch.zeros(b, dtype=torch.long, device=input_ids.device) if past_key_values is None \
            else past_key_values.clone()  # (B,) prefix ids
        k = len(self.actions)
        col = self.action_index[input_ids.clamp(0, self.vocab_size - 1)]  # (B, L)
        is_action = (mask > 0) & (position_ids >= self.prompt_length) & (col >= 0)  # (B, L)
        states = []
        for t in range(length):  # L is the prompt plus at most depth actions: a short loop
            state = torch.where(is_action[:, t], state * k + 1 + col[:, t].clamp(min=0), state)
            states.append(state)
        ids = torch.stack(states, dim=1)  # (B, L) prefix id after each position
        if logits_to_keep:
            ids = ids[:, -logits_to_keep:]
        inside = ids < self.n_prefixes  # (B, L') False once the completion is complete
        rows = self.table[ids.clamp(max=self.n_prefixes - 1)]  # (B, L', k)
        rows = torch.where(inside.unsqueeze(-1), rows, torch.zeros_like(rows))
        logits = torch.full((*ids.shape, self.vocab_size), float("-inf"), dtype=rows.dtype, device=rows.device)
        logits = logits.index_copy(-1, torch.as_tensor(self.actions, device=rows.device), rows)  # (B, L', V)
        return _Output(logits=logits, past_key_values=state if use_cache else None)

    def action_probabilities(self, temperature: float = 1.0) -> torch.Tensor:
        """(n_prefixes, k) the policy at every prefix."""
        return torch.softmax(self.table.detach() / temperature, dim=-1)

    def save_pretrained(self, folder: str | os.PathLike, safe_serialization: bool = True, **_: Any) -> None:
        from safetensors.torch import save_file

        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        (path / "config.json").write_text(json.dumps(self.tabular_config(), indent=2), encoding="utf-8")
        save_file({"table": self.table.detach().cpu().contiguous()}, str(path / "model.safetensors"))

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike) -> TabularPolicy:
        from safetensors.torch import load_file

        path = Path(folder)
        try:
            cfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
            model = cls(list(cfg["actions"]), int(cfg["depth"]), int(cfg["prompt_length"]), int(cfg["vocab_size"]))
            table = load_file(str(path / "model.safetensors"))["table"]
        except (OSError, KeyError, ValueError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"tabular policy folder '{path}' is incomplete or corrupt ({exc}); expected "
                                  "config.json and model.safetensors written by save_pretrained; restore it") from None
        if table.shape != model.table.shape:
            raise CheckpointError(f"tabular policy '{path}' holds a table of shape {tuple(table.shape)}; expected "
                                  f"{tuple(model.table.shape)} from its config.json; restore the folder")
        with torch.no_grad():
            model.table.copy_(table)
        return model


class _Config:
    """Attribute access to the tabular config (trainer code reads ``model.config.*`` like an HF config)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.__dict__.update(data)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def is_tabular_folder(path: str | os.PathLike) -> bool:
    """True when ``path`` holds a saved :class:`TabularPolicy`."""
    cfg = Path(path) / "config.json"
    if not cfg.is_file():
        return False
    try:
        return json.loads(cfg.read_text(encoding="utf-8")).get("model_type") == MODEL_TYPE
    except (OSError, json.JSONDecodeError, AttributeError):
        return False


def tabular_policy(task, tokenizer) -> TabularPolicy:
    """A zero-initialised :class:`TabularPolicy` for ``task`` (the uniform policy over its actions).

    Raises:
        ConfigError: the task has no allowed-token set, no fixed completion length, or more than one prompt.
    """
    name = getattr(task, "name", type(task).__name__)
    allowed = task.allowed_token_ids(tokenizer)
    if allowed is None:
        raise ConfigError(f"--model tabular needs a task with an allowed-token set (its actions); task {name!r} "
                          "samples from the whole vocabulary; use --task toy-tree or a model network")
    depth = getattr(task, "exact_new_tokens", None)
    if depth is None:
        raise ConfigError(f"--model tabular needs a task with a fixed completion length (exact_new_tokens); task "
                          f"{name!r} has none; use --task toy-tree or a model network")
    prompts = {tuple(task.prompt_ids(p, tokenizer, False)) for p in task.problems("train")}
    if len(prompts) != 1:
        raise ConfigError(f"--model tabular indexes its table by the completion's actions only, so it needs a task "
                          f"with one prompt; task {name!r} has {len(prompts)}; use --task toy-tree or a model network")
    return TabularPolicy([int(a) for a in allowed], int(depth), len(next(iter(prompts))), len(tokenizer))
