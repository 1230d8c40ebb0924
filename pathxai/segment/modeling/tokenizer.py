"""A word-level vocabulary for prompt texts, stored inside each checkpoint's config."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

__all__ = ["Vocabulary", "tokenize_words", "PAD", "CLS", "SEP", "UNK"]

PAD, CLS, SEP, UNK = "[PAD]", "[CLS]", "[SEP]", "[UNK]"
_SPECIALS = (PAD, CLS, SEP, UNK)
_WORD = re.compile(r"[a-z0-9]+")


def tokenize_words(text: str) -> list[str]:
    """Lower-case alphanumeric words of ``text`` (``"Tumour-infiltrating"`` → 2 words)."""
    return _WORD.findall(text.lower())


class Vocabulary:
    """Maps words to integer ids; id 0 is padding, unknown words map to ``[UNK]``.

    Parameters
    ----------
    words : sequence of str
        The vocabulary, special tokens first (added when missing).
    """

    def __init__(self, words: Sequence[str]):
        words = [w for w in words if w not in _SPECIALS]
        self.words: list[str] = [*_SPECIALS, *words]
        self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> Vocabulary:
        """Build a vocabulary from every word of ``texts`` (sorted, deterministic)."""
        vocab: set[str] = set()
        for t in texts:
            vocab.update(tokenize_words(t))
        return cls(sorted(vocab))

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, segments: Sequence[str], max_len: int) -> list[int]:
        """``[CLS] seg0 [SEP] seg1 [SEP] ...`` as ids, truncated to ``max_len``."""
        ids = [self.index[CLS]]
        unk = self.index[UNK]
        for seg in segments:
            ids += [self.index.get(w, unk) for w in tokenize_words(seg)]
            ids.append(self.index[SEP])
        return ids[:max_len]
