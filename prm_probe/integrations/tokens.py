"""Token ids from text: the batched re-tokenisation of text-only logs, and what such ids cannot tell."""

from __future__ import annotations

import logging

import pandas as pd

from prm_probe.errors import SchemaError

__all__ = ["RETOKENIZATION_NOTES", "RETOKENIZATION_TAIL", "decode_ids", "encode_texts", "retokenize"]

logger = logging.getLogger(__name__)


#: What a re-tokenised log cannot tell, per source format (metadata ``prm_probe.retokenization_note``).
_DROPPED_EOS = ("{who} decodes completions with skip_special_tokens=True, so the EOS that ended a completion is not in "
                "the text and is missing from every re-tokenised completion that stopped; ")
RETOKENIZATION_NOTES = {
    "trl": _DROPPED_EOS.format(who="TRL"),
    "verl": _DROPPED_EOS.format(who="verl"),
    "grpo-prm": "the authors' code decodes prompt + completion with special tokens kept, so the EOS survives; ",
}
RETOKENIZATION_TAIL = ("encoding text can also split it differently from the sampler (e.g. '\\n\\n' as one token or "
                        "two), so ids can differ where the text round-trips: shared prefixes and depths are close, "
                        "|λ| near the ends of completions and exact duplicates are not reliable")


def _backend(tokenizer):
    """The Rust ``tokenizers.Tokenizer`` behind a Hugging Face fast tokenizer, or None."""
    return getattr(tokenizer, "backend_tokenizer", None) if getattr(tokenizer, "is_fast", False) else None


def encode_texts(tokenizer, texts: list[str]) -> list[list[int]]:
    """``tokenizer.encode(text, add_special_tokens=False)`` for every text, the same ids in one batched call where
    the tokenizer is a Hugging Face fast tokenizer (its Rust backend encodes the batch, in parallel)."""
    backend = _backend(tokenizer)
    if backend is not None:
        return [enc.ids for enc in backend.encode_batch(texts, add_special_tokens=False)]
    return [[int(i) for i in tokenizer.encode(text, add_special_tokens=False)] for text in texts]


def decode_ids(tokenizer, ids: list[list[int]]) -> list[str] | None:
    """``tokenizer.decode(ids)`` for every id list (batched where the tokenizer allows it; the same text: the
    Rust backend is used only where the tokenizer adds no clean-up of its own); None without a decoder."""
    backend = _backend(tokenizer)
    if backend is not None and not getattr(tokenizer, "clean_up_tokenization_spaces", False):
        return backend.decode_batch(ids, skip_special_tokens=False)
    if hasattr(tokenizer, "batch_decode"):
        return list(tokenizer.batch_decode(ids))
    decode = getattr(tokenizer, "decode", None)
    return None if decode is None else [decode(i) for i in ids]


def retokenize(df: pd.DataFrame, tokenizer, fmt: str, warn: bool = True) -> tuple[list[list[int]], int]:
    if tokenizer is None:
        raise SchemaError(f"format '{fmt}' holds text, not token ids; it needs --tokenizer (tokenizer=) to "
                          "re-tokenise the completions; pass the policy's tokenizer")
    texts = df["completion"].fillna("").astype(str).tolist()
    unique = list(dict.fromkeys(texts))  # a converged policy repeats its completions: encode each text once
    enc = encode_texts(tokenizer, unique)
    back = decode_ids(tokenizer, enc)
    by_text = dict(zip(unique, enc, strict=True))
    ids = [list(by_text[t]) for t in texts]
    survives = {} if back is None else {t: b == t for t, b in zip(unique, back, strict=True)}
    changed = 0 if back is None else sum(not survives[t] for t in texts)
    if changed and warn:
        logger.warning("%s: re-tokenisation changed the text of %d of %d completion(s) (decode(encode(text)) != "
                       "text); statistics are approximate", fmt, changed, len(ids))
    return ids, changed
