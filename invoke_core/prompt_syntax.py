"""Prompt weighting syntax checks, without torch: the server refuses a malformed prompt at enqueue, before a
job waits for a model load, and the engine checks again (a request may be built by hand).

compel's parser (`compel/prompt_parser.py`) needs only pyparsing, but importing it through the `compel`
package imports torch and transformers (seconds, in a route handler). So the parser module is loaded from
compel's installed files on its own, once; it is the very parser compel runs.

Time: everything here is linear in the prompt's length. compel's parser (pyparsing) is too once memoized
(see `memoize_pyparsing`), but slow: ~0.1 ms a character of plain prose, ~0.5 ms of `(a)(a)(a)...` on a
2-core VM. So it reads prompts with weighting syntax of up to WEIGHTED_PROMPT_MAX_CHARS characters (a realistic
weighted A1111 prompt of that length takes ~0.4 s, `(a)(a)...` ~1.3 s at worst there; pure Python, so other
threads keep running), up to WEIGHTED_JOB_MAX_CHARS over all the prompts of a job, and parentheses nested
up to MAX_NESTING deep; a prompt beyond is refused with a clear error, never parsed for minutes. A prompt
without parentheses or quotes has nothing compel's parser could refuse, so it is not parsed here.
"""

from __future__ import annotations

import gc
import importlib.util
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from types import ModuleType

from .errors import InvalidCanvasError
from .limits import PROMPT_MAX_CHARS

WEIGHTED_PROMPT_MAX_CHARS = 2000  # long A1111 prompts with many (words:1.2) groups fit; ~0.4 s to check
WEIGHTED_JOB_MAX_CHARS = 6000
MAX_NESTING = 16  # (word) is x1.1 a level: 16 levels are x4.6; compel's parser recurses ~30 frames a level
_MEMO_ENTRIES = 1024

_OPERATOR = re.compile(r"\)\s*\.\s*(blend|and)\s*\(")
# What to_compel looks at: parentheses, brackets and colons, and escapes (a backslash and the character it
# escapes, read as one: `\\(` is an escaped backslash before a real parenthesis, as `_unescaped` reads it)
_PAREN_MARKS = re.compile(r"\\.|[():]", re.DOTALL)
_BRACKET_MARKS = re.compile(r"\\.|[\[\]:]", re.DOTALL)  # a `[...]` holding an escape is left alone
# The end of A1111's `(words:1.3)`, after its last colon
_WEIGHT_TAIL = re.compile(r"\s*(-?\d+(?:\.\d+)?)\s*")
_DOWN_WEIGHT = "0.9091"  # A1111's `[words]`: 1/1.1
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


@contextmanager
def parsing() -> Iterator[None]:
    """Held by every parse with compel's grammar (here and in invoke_core.prompts): one at a time, as
    pyparsing grammars are not safe to share across threads mid-parse and its memo is process-wide; and with
    the cyclic garbage collector paused, as a parse allocates a great many short-lived objects and each full
    collection walks the whole heap: the worst prompt within the limits took 0.93 s instead of 0.37 s in a
    server process holding torch, 0.8 s instead of 0.4 s under pytest. The limits bound the pause."""
    with _parse_lock:
        collecting = gc.isenabled()
        gc.disable()
        try:
            yield
        finally:
            if collecting:
                gc.enable()


def memoize_pyparsing() -> None:
    """Turn on pyparsing's packrat memo (bounded). compel's grammar tries each parenthesised group ~4 ways and
    re-parses its inside each time: without the memo `((((((((a))))))))` took 47 s, 4x more a level. The memo
    is process-wide (pyparsing has no per-grammar switch) and changes no result; a second call does nothing."""
    import pyparsing

    pyparsing.ParserElement.enable_packrat(_MEMO_ENTRIES)


@lru_cache(maxsize=1)
def _parser():
    memoize_pyparsing()
    return _parser_module().PromptParser()


@lru_cache(maxsize=512)
def _parse(text: str):
    # One parser, kept: a new one builds and streamlines its pyparsing grammar on first use (~12 ms a prompt).
    with parsing():
        return _parser().parse_conjunction(text)


def to_compel(text: str) -> str:
    """A1111's explicit weights `(words:1.3)` as compel's `(words)1.3`, and its `[words]` (1/1.1) as
    `(words)0.9091`, so prompts pasted from A1111 (or recalled from its images) weigh what they said; compel
    would read them as the words "words:1.3" and "[words]". Applied innermost first, so `((a:1.2) b:1.1)`
    becomes `((a)1.2 b)1.1`. Everything else (`(words)`, `word++`, `[a:b:0.5]`) is left as is.

    A parenthesis, bracket or colon escaped by a backslash is a plain character (as compel reads `\\(`).
    `(...)` ending in `:number` (after its last colon outside inner parentheses) gets the weight; `[...]`
    with no colon and no backslash left inside once its inner groups are converted gets 1/1.1. One pass over
    the marks for each kind, with a stack: linear time (the regexes this replaces backtracked exponentially
    on `((a)1111(a)1111...`)."""
    edits: list[tuple[int, int, str]] = []  # (start, end, replacement), never overlapping
    removed: set[int] = set()  # the colons of converted weights
    if "(" in text and ":" in text:  # without a colon there is no weight to convert
        opens: list[int] = []  # open `(`: its index, and (same position) the index of its last colon
        colons: list[int] = []
        for match in _PAREN_MARKS.finditer(text):
            index = match.start()
            mark = text[index]
            if mark == "\\":
                continue
            if mark == "(":
                opens.append(index)
                colons.append(-1)
            elif mark == ":":
                if colons:
                    colons[-1] = index
            elif opens:
                start, colon = opens.pop(), colons.pop()
                weight = _WEIGHT_TAIL.fullmatch(text, colon + 1, index) if colon > start + 1 else None
                if weight:
                    edits.append((colon, index + 1, ")" + weight.group(1)))
                    removed.add(colon)
    if "[" in text:
        bad = 0  # backslashes and remaining colons so far: a `[...]` holding one is not a weight
        left = 0  # `[...]` closed so far and left as they are: a `[...]` holding one is not a weight
        stack: list[int] = []  # per open `[`: its index, and `bad` and `left` when it opened
        for match in _BRACKET_MARKS.finditer(text):
            index = match.start()
            mark = text[index]
            if mark == "[":
                stack += (index, bad, left)
            elif mark == "]":
                if stack:
                    left_then, bad_then, start = stack.pop(), stack.pop(), stack.pop()
                    if index > start + 1 and bad == bad_then and left == left_then:
                        edits += [(start, start + 1, "("), (index, index + 1, ")" + _DOWN_WEIGHT)]
                    else:
                        left += 1
            elif mark == "\\" or index not in removed:
                bad += 1
    if not edits:
        return text
    pieces, last = [], 0
    for start, end, replacement in sorted(edits):
        pieces += [text[last:start], replacement]
        last = end
    pieces.append(text[last:])
    return "".join(pieces)


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


class SyntaxBudget:
    """How many characters of weighting syntax one job may have compel's parser read, over all its prompts."""

    def __init__(self, chars: int = WEIGHTED_JOB_MAX_CHARS):
        self.left = chars

    def spend(self, chars: int, what: str) -> None:
        if chars > self.left:
            raise InvalidCanvasError(
                f"cannot check the {what}: the job's prompts hold more than {WEIGHTED_JOB_MAX_CHARS} characters"
                " of weighting syntax (parentheses, quotes) in all; shorten them"
            )
        self.left -= chars


def check_syntax(text: str, what: str, budget: SyntaxBudget | None = None) -> None:
    """Raise InvalidCanvasError for weighting syntax compel would fail on or silently read as plain words
    (unbalanced parentheses, a .blend() or .and() that is not one), and for prompts beyond the limits above.
    `what` names the prompt in messages; `budget`, shared by the prompts of a job, caps them together.
    A1111 weights are read as compel's (see to_compel)."""
    if len(text) > PROMPT_MAX_CHARS:
        raise InvalidCanvasError(f"the {what} is {len(text)} characters long; the limit is {PROMPT_MAX_CHARS}")
    converted = to_compel(text)
    converted_note = " once its A1111 weights are converted" if converted != text else ""
    text = converted
    marks = _unescaped(text, '()"')
    depth = deepest = 0
    for char in marks:
        if char == '"':
            continue
        depth += 1 if char == "(" else -1
        if depth < 0:
            break
        deepest = max(deepest, depth)
    if depth != 0:
        raise InvalidCanvasError(
            f"cannot parse the {what}: unbalanced parentheses (write \\( or \\) for a literal parenthesis)"
        )
    if deepest > MAX_NESTING:
        raise InvalidCanvasError(
            f"cannot parse the {what}: parentheses nested {deepest} deep; at most {MAX_NESTING} levels are read"
        )
    if not marks:
        return  # no parentheses, no quotes: nothing compel's parser could refuse (it reads any words)
    if len(text) > WEIGHTED_PROMPT_MAX_CHARS:
        raise InvalidCanvasError(
            f"cannot check the {what}: weighting syntax (parentheses, quotes) is read in prompts of up to"
            f" {WEIGHTED_PROMPT_MAX_CHARS} characters, and this one has {len(text)}{converted_note};"
            " shorten it, or write \\( and \\) for literal parentheses"
        )
    if budget is not None:
        budget.spend(len(text), what)
    operator = _OPERATOR.search(text)
    if operator and marks.count('"') % 2:
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


def check_prompts(
    prompt: str, negative_prompt: str = "", what: str = "prompt", budget: SyntaxBudget | None = None
) -> None:
    """Both prompts of a pair; `what` names the pair ("prompt", "prompt of region 2", ...)."""
    check_syntax(prompt or "", what, budget)
    check_syntax(negative_prompt or "", f"negative {what}", budget)
