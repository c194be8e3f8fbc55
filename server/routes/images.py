from __future__ import annotations

import io

from flask import Blueprint, request, send_file

from db import history, images

from ..api import API_PREFIX, route
from ..errors import ApiError
from ..events import BoardChanged, ImageAdded
from ..schemas import (
    BoardCountOut,
    CountOut,
    DateCountOut,
    ImageHistoryOut,
    ImageIdsIn,
    ImageListQuery,
    ImageOut,
    ImagePageOut,
    ImagePatchIn,
    ImagesPatchIn,
    UploadForm,
)
from ..recall import resolve_models
from ..services import services
from .history import generation_out

bp = Blueprint("images", __name__, url_prefix=API_PREFIX + "/images")
ERRORS = (400, 401, 404, 409, 413, 415, 422)


def _out(record: images.ImageRecord) -> ImageOut:
    return ImageOut.model_validate(services().image_payload(record))


@route(bp, "", "POST", summary="Upload a PNG, JPEG or WebP (multipart field 'file')", response=ImageOut, status=201, body_content="multipart/form-data", errors=ERRORS)
def upload():
    s = services()
    upload = request.files.get("file")
    if upload is None:
        raise ApiError(400, "send the image as a multipart form field named 'file'")
    form = UploadForm.model_validate({k: v for k, v in request.form.items() if k != "token"})
    data = upload.read(s.config.max_upload_bytes + 1)
    if len(data) > s.config.max_upload_bytes:
        raise ApiError(413, f"the image is larger than {s.config.max_upload_bytes} bytes")
    info = s.store.inspect_upload(data, max_bytes=s.config.max_upload_bytes, max_pixels=s.config.max_image_pixels)
    if max(info.width, info.height) > s.config.max_side:
        raise ApiError(413, f"the image is {info.width}x{info.height}; the largest side allowed is {s.config.max_side}")
    record = images.add_image(
        s.db,
        s.store,
        data,
        origin="uploaded",
        category=form.category,
        board_id=form.board_id,
        max_bytes=s.config.max_upload_bytes,
        max_pixels=s.config.max_image_pixels,
    )
    s.events.publish(ImageAdded(image=s.image_payload(record)))
    return _out(record)


@route(bp, "", "GET", summary="List images: filters, text search, keyset pagination", query=ImageListQuery, response=ImagePageOut, errors=(400, 401, 404, 422))
def list_images(query: ImageListQuery):
    page = images.list_images(services().db, **query.model_dump())
    return ImagePageOut(items=[_out(r) for r in page.items], next_cursor=page.next_cursor)


@route(bp, "/counts", "GET", summary="Image counts per board (null: uncategorised)", response=list[BoardCountOut], errors=(401,))
def counts():
    return [BoardCountOut(board_id=k, count=v) for k, v in images.count_by_board(services().db).items()]


@route(bp, "/by-date", "GET", summary="Image counts per day", response=list[DateCountOut], errors=(401, 404))
def by_date():
    board_id = request.args.get("board_id")
    return [DateCountOut(date=d, count=n) for d, n in images.images_by_date(services().db, board_id)]


@route(bp, "/<image_id>", "GET", summary="One image's record", response=ImageOut)
def get(image_id: str):
    return _out(images.get_image(services().db, image_id))


@route(bp, "/<image_id>/file", "GET", summary="The image file", response_content="image/*", errors=(401, 404, 422))
def file(image_id: str):
    s = services()
    record = images.get_image(s.db, image_id)
    local = s.store.local_path(record.file_name)
    if local is not None:
        return send_file(local, max_age=31536000, conditional=True)
    # a bucket: the bytes through this process, the content hash as the validator
    mimetype = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}[record.file_name.rsplit(".", 1)[1]]
    return send_file(io.BytesIO(s.store.read(record.file_name)), mimetype=mimetype, max_age=31536000,
                     conditional=True, etag=record.content_hash)


@route(bp, "/<image_id>/thumbnail", "GET", summary="A WebP thumbnail, longest side 256", response_content="image/webp", errors=(401, 404, 422))
def thumbnail(image_id: str):
    s = services()
    record = images.get_image(s.db, image_id)
    local = s.store.local_thumbnail_path(record.id)
    if local is not None:
        if not local.exists():  # made again if lost; the doctor reports it too
            s.store.write_thumbnail(record.id, s.store.read(record.file_name))
        return send_file(local, mimetype="image/webp", max_age=31536000, conditional=True)
    data = s.store.read_thumbnail(record.id)
    if data is None:
        s.store.write_thumbnail(record.id, s.store.read(record.file_name))
        data = s.store.read_thumbnail(record.id) or b""
    return send_file(io.BytesIO(data), mimetype="image/webp", max_age=31536000, conditional=True,
                     etag=record.content_hash + "-thumbnail")


@route(bp, "/<image_id>/metadata", "GET", summary="The image's generation metadata", response=dict)
def metadata(image_id: str):
    return images.get_metadata(services().db, image_id)


@route(bp, "/<image_id>/recall", "GET", summary="Parameters to recall into the settings", response=dict)
def recall(image_id: str):
    s = services()
    return resolve_models(images.recall(s.db, image_id), s.registry.list())


@route(bp, "/<image_id>/history", "GET", summary="The generation that made it, and its canvas's others", response=ImageHistoryOut)
def image_history(image_id: str):
    h = history.history_for_image(services().db, image_id)
    return ImageHistoryOut(
        image_id=h.image_id,
        generation=generation_out(h.generation) if h.generation else None,
        canvas_generations=[generation_out(g) for g in h.canvas_generations],
    )


def _apply_patch(ids: list[str], body: ImagePatchIn) -> None:
    s = services()
    sent = body.model_fields_set
    if "board_id" in sent:
        images.move_images(s.db, ids, body.board_id)
        s.events.publish(BoardChanged(body.board_id, "images"))
    if "starred" in sent and body.starred is not None:
        images.set_starred(s.db, ids, body.starred)


@route(bp, "/<image_id>", "PATCH", summary="Move to a board (null: none) or star", body=ImagePatchIn, response=ImageOut, errors=ERRORS)
def patch(image_id: str, body: ImagePatchIn):
    images.get_image(services().db, image_id)
    _apply_patch([image_id], body)
    return _out(images.get_image(services().db, image_id))


@route(bp, "/batch", "PATCH", summary="Move or star many images", body=ImagesPatchIn, response=CountOut, errors=ERRORS)
def patch_many(body: ImagesPatchIn):
    _apply_patch(body.ids, body)
    return CountOut(count=len(body.ids))


@route(bp, "/<image_id>", "DELETE", summary="Delete an image (row, file, thumbnail)", response=CountOut, errors=(401, 404, 422))
def delete(image_id: str):
    s = services()
    return CountOut(count=images.delete_images(s.db, s.store, [image_id]))


@route(bp, "/delete", "POST", summary="Delete many images", body=ImageIdsIn, response=CountOut, errors=ERRORS)
def delete_many(body: ImageIdsIn):
    s = services()
    return CountOut(count=images.delete_images(s.db, s.store, body.ids))
