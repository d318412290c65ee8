"""Inputs of an exact token length, built with the model's own tokenizer."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

# Varied, natural text so that no two requests are the same string.
_SOURCE = (
    "Regression tests for embedding servers send realistic inputs: support tickets, product descriptions, "
    "search queries, news paragraphs and source code comments. The server splits each one into tokens, runs "
    "the encoder over them and pools the hidden states into one vector per input. Latency grows with the "
    "number of tokens, so a benchmark must say how many tokens every request carried. "
    "检索增强生成系统会把用户的问题转换成向量，在向量库中查找最相近的文档片段，再把它们交给大模型生成答案。 "
)


@lru_cache(maxsize=4)
def load_tokenizer(model_dir: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir, local_files_only=True)


def count_tokens(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=True)["input_ids"])


def texts_of_tokens(model_dir: Path | str, tokens: int, count: int) -> list[str]:
    """``count`` different texts, each exactly ``tokens`` tokens long as the model counts them."""
    tokenizer = load_tokenizer(str(model_dir))
    specials = count_tokens(tokenizer, "")
    body = tokens - specials
    if body < 1:
        raise ValueError(f"{tokens} tokens leaves no room for text: the tokenizer adds {specials} special tokens")
    ids = tokenizer(_SOURCE, add_special_tokens=False)["input_ids"]
    while len(ids) < body + count:
        ids = ids + ids
    texts = []
    for start in range(count):
        window = ids[start:start + body]
        text = tokenizer.decode(window)
        # Decoding and re-encoding can merge or split a token at the edges: nudge until exact.
        for _ in range(8):
            n = count_tokens(tokenizer, text)
            if n == tokens:
                break
            window = window[:-1] if n > tokens else window + ids[start + len(window):start + len(window) + 1]
            text = tokenizer.decode(window)
        else:
            raise ValueError(f"could not build a text of exactly {tokens} tokens")
        texts.append(text)
    return texts
