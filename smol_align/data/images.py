"""Images of vision-language pairs: a row's ``images`` (or single ``image``) as file paths, PIL images or bytes,
each checked to load, kept with the pair as a ``datasets`` list of ``Image()`` (TRL's vision preference format).

An image that does not load is refused (:class:`~smol_align.data.messages.Refused`: a ``DatasetFormatError``
naming the dataset, row and column even with ``strict=False``): a pair set aside for its image would change what
the data teaches, and one trained without it would teach something else.
"""

from __future__ import annotations

import io
import os
from typing import Any

from .messages import Refused

IMAGES = "images"  # the column of normalized pairs; TRL's DataCollatorForVisionPreference reads it
IMAGE = "image"  # TRL's single-image column, read as a one-image list


class BadImage(Refused):
    hint = (
        " Fix or remove that row: give each image as a path to an image file (a relative path is read from "
        "the current folder), a PIL image, or the bytes of an image file."
    )


def is_vision(data: Any) -> bool:
    """Whether pairs (a ``Dataset`` or a list of rows) carry images: TRL's own test (``DPOTrainer``'s
    ``_is_vision_dataset``) on their columns."""
    columns = getattr(data, "column_names", None)
    if columns is None:
        columns = list(data[0]) if isinstance(data, list) and data and isinstance(data[0], dict) else []
    return IMAGE in columns or IMAGES in columns


def images_feature():
    """The ``datasets`` feature of the ``images`` column: a list of ``Image()`` (decoded to PIL when read)."""
    from datasets import Image, List

    return List(Image())


def checked_images(value: Any, column: str) -> list:
    """``value`` (one image or a list of them) as a list ``datasets.Image`` stores, each one loaded once to
    check it; :class:`BadImage` names the first that does not load, and why."""
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    return [_checked(item, column, i, len(items)) for i, item in enumerate(items)]


def _checked(item: Any, column: str, index: int, count: int):
    from PIL import Image, UnidentifiedImageError

    which = f"image {index}" if count > 1 else "the image"
    if isinstance(item, dict) and ("bytes" in item or "path" in item):  # datasets' own storage of an Image
        item = item.get("bytes") or item.get("path")
    if isinstance(item, Image.Image):
        return item
    if isinstance(item, (bytes, bytearray, memoryview)):
        source, what = io.BytesIO(bytes(item)), f"{which} ({len(item):,} bytes)"
        stored = {"bytes": bytes(item), "path": None}
    elif isinstance(item, (str, os.PathLike)) and str(item).strip():
        path = os.path.expanduser(str(item))
        if not os.path.isfile(path):
            where = "" if os.path.isabs(path) else f", read from the current folder {os.getcwd()}"
            raise BadImage(f"{column}: image file not found", column, f"{which}: {str(item)!r}{where}")
        source, what, stored = path, f"{which} ({str(item)!r})", path
    else:
        got = "nothing" if item is None or item == "" else type(item).__name__
        raise BadImage(f"{column}: not an image", column, f"{which}: got {got}")
    try:
        with Image.open(source) as image:
            image.load()
    except UnidentifiedImageError:
        raise BadImage(f"{column}: not an image file", column, f"{what}: PIL cannot identify it") from None
    except (OSError, ValueError, SyntaxError) as err:  # truncated, corrupt
        raise BadImage(f"{column}: image does not load", column, f"{what}: {err}") from None
    return stored
