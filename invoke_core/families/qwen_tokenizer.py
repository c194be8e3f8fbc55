"""A small Qwen-style tokenizer built in code for the demo models whose text encoder is a Qwen language
model (Z-Image's Qwen3, FLUX.2 Klein's Qwen3, Qwen-Image's Qwen2.5-VL): a byte-level BPE of the demo words
(every byte, then the words built up by merges, 'Ġ' marking a leading space, as GPT-2 and Qwen do), the
chat specials, and a chat template of Qwen3's shape (`enable_thinking` as Qwen3's: False adds an empty
think block) that the pipelines apply to every prompt. The released tokenizers are 150k-token BPEs."""

from __future__ import annotations

SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>")

# Qwen3's template, reduced to what the pipelines use: messages with string content, the generation prompt
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- if enable_thinking is defined and enable_thinking is false -%}{{- '<think>\\n\\n</think>\\n\\n' -}}{%- endif -%}"
    "{%- endif -%}"
)


# the words of Qwen-Image's prompt template, whole tokens as in Qwen's vocabulary: its system prefix is the
# 34 tokens the pipeline drops from the encoder's states
TEMPLATE_WORDS = (
    "system Describe image by detailing color shape size texture quantity text spatial relationships objects background"
).split()


def _bpe(form: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    symbols = list(form)
    while len(symbols) > 1:
        rank, i = min((ranks.get(p, len(ranks) + 1), i) for i, p in enumerate(zip(symbols, symbols[1:])))
        if rank > len(ranks):
            break
        symbols[i : i + 2] = [symbols[i] + symbols[i + 1]]
    return symbols


def byte_level_vocab(words) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A byte-level BPE's vocabulary and merges: every byte, then each word (after a space, 'Ġ', and at the
    start of a line) built up by merges until BPE yields it whole."""
    from ..clip_vocab import bytes_to_unicode

    alphabet = list(bytes_to_unicode().values())
    vocab: dict[str, int] = {c: i for i, c in enumerate(alphabet)}
    merges: list[tuple[str, str]] = []
    ranks: dict[tuple[str, str], int] = {}
    for word in words:
        for form in ("\u0120" + word, word):
            # add merges until BPE (lowest rank first, as the tokenizer applies them) yields the whole form
            while len(parts := _bpe(form, ranks)) > 1:
                pair = (parts[0], parts[1])
                ranks[pair] = len(ranks)
                merges.append(pair)
                vocab.setdefault(pair[0] + pair[1], len(vocab))
    return vocab, merges


def qwen_tokenizer(max_tokens: int = 1024, extra_words: tuple[str, ...] = ()):
    """`extra_words`: more whole tokens (a pipeline's own template words), after the shared ones, so the
    other demos' token ids stay as they are."""
    from transformers import Qwen2Tokenizer

    from ..demo import _DEMO_WORDS

    vocab, merges = byte_level_vocab([*_DEMO_WORDS, "user", "assistant", *TEMPLATE_WORDS, *extra_words])
    for special in SPECIALS:
        vocab[special] = len(vocab)
    tokenizer = Qwen2Tokenizer(
        vocab=vocab, merges=merges, model_max_length=max_tokens, unk_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        additional_special_tokens=list(SPECIALS[1:]),
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer
