"""The Qwen2-VL processor of Qwen-Image-Edit models (its chat prompt with the picture's vision tokens),
built from the folder's image processor and tokenizer.

transformers 5 checks the class of every processor part, the absent video processor's too, and that
check fails where torchvision is not installed (the CPU setup): the pipelines pass pictures only, so
this processor has no video part and skips the check for it. It loads and saves the image processor
and tokenizer as the released `processor/` folders hold them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import Qwen2Tokenizer, Qwen2VLImageProcessor, Qwen2VLProcessor


class PictureProcessor(Qwen2VLProcessor):
    def check_argument_for_proper_class(self, argument_name: str, argument: Any) -> Any:
        return None if argument is None else super().check_argument_for_proper_class(argument_name, argument)

    def save_pretrained(self, save_directory: str | Path, **kwargs: Any) -> None:
        self.image_processor.save_pretrained(save_directory)
        self.tokenizer.save_pretrained(save_directory)


def load_processor(folder: Path) -> PictureProcessor:
    """The processor of a Qwen-Image-Edit folder: `processor/` (its tokenizer there, or in `tokenizer/`)."""
    parts = folder / "processor"
    tokenizer_dir = parts if (parts / "tokenizer_config.json").exists() else folder / "tokenizer"
    tokenizer = Qwen2Tokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    return PictureProcessor(
        image_processor=Qwen2VLImageProcessor.from_pretrained(parts, local_files_only=True),
        tokenizer=tokenizer,
        chat_template=tokenizer.chat_template,
    )
