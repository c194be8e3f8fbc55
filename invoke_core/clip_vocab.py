"""The real 49,408-entry CLIP BPE tokenizer, derived offline from the merges file the package ships.

CLIP (and Stable Diffusion's text encoders) tokenise with a byte-level BPE whose vocabulary is not
stored anywhere on its own: CLIP builds it from the merges list. We do the same, from
`configs/bpe_simple_vocab_16e6.txt.gz` (copied from the MIT-licensed open_clip_torch wheel):

    vocab = the 256 byte symbols + the same with "</w>" + the first 48,894 merges joined
            + "<|startoftext|>", "<|endoftext|>"

The derived `vocab.json` / `merges.txt` are written lazily into a cache folder the caller owns (never
into the installed package), so `transformers.CLIPTokenizer` can load them offline.
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path

BPE_FILE = Path(__file__).parent / "configs" / "bpe_simple_vocab_16e6.txt.gz"

VOCAB_SIZE = 49408
NUM_MERGES = VOCAB_SIZE - 256 - 256 - 2  # 48,894: the vocabulary minus bytes, bytes</w> and the two specials
BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"


def bytes_to_unicode() -> dict[int, str]:
    """CLIP's reversible byte -> printable-unicode table, in CLIP's order (which fixes the first 256 ids)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


@lru_cache(maxsize=2)
def clip_vocab_and_merges(bpe_file: Path = BPE_FILE) -> tuple[dict[str, int], tuple[str, ...]]:
    """Return (token -> id, merges as "a b" lines) exactly as CLIP derives them."""
    with gzip.open(bpe_file, "rt", encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    merges = tuple(lines[1 : NUM_MERGES + 1])  # line 0 is a header
    if len(merges) != NUM_MERGES or any(len(m.split()) != 2 for m in merges):
        raise ValueError(f"{bpe_file} is not the CLIP BPE merges file")
    alphabet = list(bytes_to_unicode().values())
    tokens = alphabet + [c + "</w>" for c in alphabet] + ["".join(m.split()) for m in merges] + [BOS_TOKEN, EOS_TOKEN]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    if len(vocab) != VOCAB_SIZE:
        raise ValueError(f"derived CLIP vocabulary has {len(vocab)} entries, expected {VOCAB_SIZE}")
    return vocab, merges


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_clip_tokenizer_files(folder: Path, pad_token: str = EOS_TOKEN) -> Path:
    """Make `folder` a complete CLIPTokenizer folder (vocab.json, merges.txt, tokenizer_config.json,
    special_tokens_map.json). Files already present are kept. Returns `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab_file, merges_file = folder / "vocab.json", folder / "merges.txt"
    if not (vocab_file.is_file() and merges_file.is_file()):
        vocab, merges = clip_vocab_and_merges()
        _write_atomically(merges_file, "#version: 0.2\n" + "\n".join(merges) + "\n")
        _write_atomically(vocab_file, json.dumps(vocab, ensure_ascii=False))
    specials = {"bos_token": BOS_TOKEN, "eos_token": EOS_TOKEN, "pad_token": pad_token, "unk_token": EOS_TOKEN}
    if not (folder / "special_tokens_map.json").is_file():
        _write_atomically(folder / "special_tokens_map.json", json.dumps(specials, indent=2))
    if not (folder / "tokenizer_config.json").is_file():
        config = dict(
            specials, tokenizer_class="CLIPTokenizer", model_max_length=77, do_lower_case=True, errors="replace"
        )
        _write_atomically(folder / "tokenizer_config.json", json.dumps(config, indent=2))
    return folder


def clip_tokenizer_dir(cache_dir: Path, pad_token: str = EOS_TOKEN) -> Path:
    """A complete CLIP tokenizer folder under `cache_dir`, created at first use.

    `pad_token` is "<|endoftext|>" for SD1.x and SDXL's first tokenizer, "!" for SDXL's tokenizer_2.
    """
    name = "clip-tokenizer" if pad_token == EOS_TOKEN else f"clip-tokenizer-pad-{ord(pad_token[0]):x}"
    return write_clip_tokenizer_files(Path(cache_dir) / name, pad_token=pad_token)


def load_clip_tokenizer(cache_dir: Path, pad_token: str = EOS_TOKEN):
    """The real CLIP tokenizer (transformers.CLIPTokenizer), offline."""
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(str(clip_tokenizer_dir(cache_dir, pad_token)), local_files_only=True)
