"""Prompt weighting syntax checks, without torch: the server refuses a malformed prompt at enqueue, before a
job waits for a model load, and the engine checks again (a request may be built by hand).

compel's parser (`compel/prompt_parser.py`) needs only pyparsing, but importing it through the `compel`
package imports torch and transformers (seconds, in a route handler). So the parser module is loaded from
compel's installed files on its own, once; it is the very parser compel runs.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import threading
from functools import lru_cache
from pathlib import Path
from types import ModuleType

from .errors import InvalidCanvasError

_OPERATOR = re.compile(r"\)\s*\.\s*(blend|and)\s*\(")
# A1111's `(words:1.3)`: a number after the last colon; inside, words and already converted groups `(a)1.2`
_A1111_WEIGHT = re.compile(r"(?<!\\)\(((?:[^()\\]|\\.|\([^()]*\)[-+.\d]*)+?):\s*(-?\d+(?:\.\d+)?)\s*\)")
# A1111's `[words]`: weight 1/1.1 (not its `[a:b:step]` prompt editing, which has colons)
_A1111_DOWN = re.compile(r"(?<!\\)\[([^\[\]:\\]+)\]")
_MODULE_NAME = "invoke_core._compel_prompt_parser"


@lru_cache(maxsize=1)
def _parser_module() -> ModuleType:
    spec = importlib.util.find_spec("compel")  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("compel is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "prompt_parser.py"
    module_spec = importlib.util.spec_from_file_location(_MODULE_NAME, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[_MODULE_NAME] = module  # dataclasses look their module up while the class is built
    module_spec.loader.exec_module(module)
    return module


_parse_lock = threading.Lock()


@lru_cache(maxsize=1)
def _parser():
    return _parser_module().PromptParser()


@lru_cache(maxsize=512)
def _parse(text: str):
    # One parser, kept: a new one builds and streamlines its pyparsing grammar on first use (~12 ms a prompt).
    # pyparsing grammars are not safe to share across threads mid-parse, hence the lock.
    with _parse_lock:
        return _parser().parse_conjunction(text)


def to_compel(text: str) -> str:
    """A1111's explicit weights `(words:1.3)` as compel's `(words)1.3`, and its `[words]` (1/1.1) as
    `(words)0.9091`, so prompts pasted from A1111 (or recalled from its images) weigh what they said; compel
    would read them as the words "words:1.3" and "[words]". Applied innermost first, so `((a:1.2) b:1.1)`
    becomes `((a)1.2 b)1.1`. Everything else (`(words)`, `word++`, `[a:b:0.5]`) is left as is."""
    previous = None
    while previous != text:
        previous = text
        text = _A1111_DOWN.sub(r"(\1)0.9091", _A1111_WEIGHT.sub(r"(\1)\2", text))
    return text


def _unescaped(text: str, chars: str) -> list[str]:
    """The characters of `chars` in `text` that are not escaped with a backslash, in order."""
    found, escaped = [], False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in chars:
            found.append(char)
    return found


def check_syntax(text: str, what: str) -> None:
    """Raise InvalidCanvasError for weighting syntax compel would fail on or silently read as plain words
    (unbalanced parentheses, a .blend() or .and() that is not one). `what` names the prompt in messages.
    A1111 weights are read as compel's (see to_compel)."""
    text = to_compel(text)
    depth = 0
    for char in _unescaped(text, "()"):
        depth += 1 if char == "(" else -1
        if depth < 0:
            break
    if depth != 0:
        raise InvalidCanvasError(
            f"cannot parse the {what}: unbalanced parentheses (write \\( or \\) for a literal parenthesis)"
        )
    operator = _OPERATOR.search(text)
    if operator and len(_unescaped(text, '"')) % 2:
        raise InvalidCanvasError(f"cannot parse the {what}: unbalanced double quotes in .{operator.group(1)}()")
    parser = _parser_module()
    try:
        conjunction = _parse(text)
    except Exception as error:  # pyparsing.ParseException, compel's ParsingException and the like
        detail = " ".join(str(error).split()) or type(error).__name__
        raise InvalidCanvasError(f"cannot parse the {what}: {detail}") from None
    blended = any(isinstance(p, parser.Blend) for p in conjunction.prompts)
    if operator and len(conjunction.prompts) < 2 and not blended:
        raise InvalidCanvasError(
            f"cannot parse the {what}: malformed .{operator.group(1)}(); write it like"
            ' ("a red fox", "a forest").blend(0.7, 0.3) or ("a red fox", "a forest").and()'
        )


def check_prompts(prompt: str, negative_prompt: str = "", what: str = "prompt") -> None:
    """Both prompts of a pair; `what` names the pair ("prompt", "prompt of region 2", ...)."""
    check_syntax(prompt or "", what)
    check_syntax(negative_prompt or "", f"negative {what}")
