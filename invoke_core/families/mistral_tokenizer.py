"""A small Mistral-style tokenizer built in code for the FLUX.2 [dev] demo (`demo-flux2-dev`), whose text
encoder is a Mistral 3 model: a byte-level BPE of the demo words and the words of FLUX.2's system message
(families/qwen_tokenizer.byte_level_vocab; Mistral's Tekken vocabulary is byte-level too), Mistral's
control tokens, and a chat template of Mistral Small 3.1's shape for the pipeline's messages (content
lists of text parts): `<s>[SYSTEM_PROMPT]...[/SYSTEM_PROMPT][INST]...[/INST]`. The released tokenizer is
a 131k-token Tekken BPE."""

from __future__ import annotations

SPECIALS = ("<unk>", "<s>", "</s>", "<pad>", "[INST]", "[/INST]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[IMG]")

# Mistral Small 3.1's template, reduced to what FLUX.2's pipeline sends: system and user messages whose
# content is a string or a list of {"type": "text"} parts
CHAT_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{%- if message['content'] is string -%}{%- set text = message['content'] -%}"
    "{%- else -%}{%- set text = message['content'] | selectattr('type', 'equalto', 'text') | map(attribute='text') | join('') -%}"
    "{%- endif -%}"
    "{%- if message['role'] == 'system' -%}{{- '[SYSTEM_PROMPT]' + text + '[/SYSTEM_PROMPT]' -}}"
    "{%- else -%}{{- '[INST]' + text + '[/INST]' -}}{%- endif -%}"
    "{%- endfor -%}"
)

# FLUX.2's system message, whole words (so the prompt keeps most of the 512 tokens it is padded to)
SYSTEM_WORDS = (
    "You are an AI that reasons about image descriptions You give structured responses focusing on object"
    " relationships attribution and actions without speculation"
).split()


def mistral_tokenizer(max_tokens: int = 512):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from ..demo import _DEMO_WORDS
    from .qwen_tokenizer import byte_level_vocab

    vocab, merges = byte_level_vocab([*_DEMO_WORDS, *SYSTEM_WORDS])
    vocab = {special: i for i, special in enumerate(SPECIALS)} | {k: v + len(SPECIALS) for k, v in vocab.items()}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, model_max_length=max_tokens, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
        pad_token="<pad>", additional_special_tokens=list(SPECIALS[4:]),
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer
