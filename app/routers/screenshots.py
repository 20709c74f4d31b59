"""Screenshot upload over HTTP (SPEC §6.2) and the image and history reads (SPEC §7)."""

from __future__ import annotations

from typing import Annotated, Any

from annotated_types import Ge, Lt
from fastapi import APIRouter, BackgroundTasks, Header, Path, Query, Request, Response
from starlette.datastructures import UploadFile

from app.deps import AuthFirstRoute, DeviceDep, NowDep, SessionDep, SettingsDep, StateDep, UserDep
from app.errors import BadRequest
from app.models import SCREENSHOT_TYPES, ScreenshotType
from app.routers.common import AUTH_ERRORS, errors, json_response
from app.routers.ingest import check_ingest_allowed
from app.schemas.common import STRICT_INT
from app.schemas.screenshots import ScreenshotAccepted, ScreenshotHistory
from app.services import screenshots as service
from app.services import thumbnails
from app.services.ingest import check_uuid

router = APIRouter(route_class=AuthFirstRoute)

ScreenshotId = Annotated[int, Ge(1), Lt(2**63), STRICT_INT, Path()]
IfNoneMatch = Annotated[str | None, Header(description="An ETag from an earlier response: 304 if unchanged.")]

_BINARY = {"schema": {"type": "string", "format": "binary"}}
_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "image/jpeg": _BINARY,
            "image/png": _BINARY,
            # What a generated client sends for raw bytes; the bytes decide the format, not this header.
            "application/octet-stream": _BINARY,
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
    }
}
_IMAGE_HEADERS = {
    "ETag": {"description": 'The quoted SHA-256 of the image: `"<hash>"`.', "schema": {"type": "string"}},
    "Cache-Control": {"description": "`no-cache`: revalidate with `If-None-Match`.", "schema": {"type": "string"}},
    "X-Screenshot-Type": {
        "description": "periodic, event_start or event_stop.",
        "schema": {"type": "string", "enum": list(SCREENSHOT_TYPES)},
    },
}
_FALLBACK_HEADER = {
    "X-Screenshot-Fallback": {
        "description": "`true` when the client never sent a priority screenshot and the latest one is served.",
        "schema": {"type": "string", "enum": ["true", "false"]},
    }
}


def _image_responses(*, fallback: bool = False) -> dict[int | str, dict[str, Any]]:
    headers = {**_IMAGE_HEADERS, **(_FALLBACK_HEADER if fallback else {})}
    return {
        200: {
            "description": "The image (JPEG or PNG, as stored).",
            "content": {"image/jpeg": _BINARY, "image/png": _BINARY},
            "headers": headers,
        },
        304: {"description": "Not modified: `If-None-Match` matches the image's ETag.", "headers": headers},
        **errors(400, *AUTH_ERRORS, 404),
    }


async def _upload_bytes(request: Request) -> bytes:
    """The raw body, or the multipart field `file`."""
    content_type = request.headers.get("content-type", "").lower()
    if not content_type.startswith("multipart/form-data"):
        return await request.body()
    async with request.form(max_files=1) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise BadRequest("Missing multipart file field 'file'")
        return await upload.read()


@router.post(
    "/api/clients/{client_uuid}/screenshot",
    operation_id="ingest_screenshot",
    status_code=202,
    response_model=ScreenshotAccepted,
    responses=errors(
        400,
        *AUTH_ERRORS,
        413,
        415,
        described={
            400: "Bad request: a bad uuid or screenshot_type, or a multipart body without the field `file`",
            415: "The raw body or the multipart field `file` is not a whole JPEG or PNG image, whatever its "
            "Content-Type says",
        },
    ),
    openapi_extra=_UPLOAD_BODY,
    tags=["ingest"],
)
async def upload_screenshot(
    client_uuid: str,
    request: Request,
    token: DeviceDep,
    session: SessionDep,
    settings: SettingsDep,
    now: NowDep,
    state: StateDep,
    background: BackgroundTasks,
    screenshot_type: Annotated[ScreenshotType, Query(description="periodic, event_start or event_stop")] = "periodic",
) -> Response:
    """A display's screenshot: a raw JPEG/PNG body or the multipart field `file`."""
    check_ingest_allowed(token, client_uuid)
    image = await _upload_bytes(request)
    stored = await service.store_screenshot(
        session,
        settings=settings,
        client_uuid=client_uuid,
        image=image,
        screenshot_type=screenshot_type,
        captured_at=None,
        now=now,
    )
    # Screen analysis (SPEC §14): queued once the answer is sent, so after the commit; never awaited here.
    background.add_task(state.analysis.submit, client_uuid)
    return json_response(
        {"hash": stored.hash, "screenshot_type": stored.screenshot_type, "received_at": stored.received_at},
        status_code=202,
    )


def _etag_matches(if_none_match: str | None, digest: str) -> bool:
    if not if_none_match:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or f'"{digest}"' in tags


async def _serve(
    found: service.ScreenshotFile, *, settings: SettingsDep, if_none_match: str | None, priority: bool = False
) -> Response:
    screenshot = found.screenshot
    headers = {
        "ETag": f'"{screenshot.hash}"',
        "Cache-Control": "no-cache",
        "X-Screenshot-Type": screenshot.screenshot_type,
    }
    if priority:
        headers["X-Screenshot-Fallback"] = "true" if found.fallback else "false"
    if _etag_matches(if_none_match, screenshot.hash):
        return Response(status_code=304, headers=headers)
    content = await service.read_file(settings.screenshots_dir, screenshot.filename)
    return Response(content, media_type=found.media_type, headers=headers)


@router.get(
    "/screenshots/{client_uuid}",
    tags=["screenshots"],
    operation_id="screenshots_latest",
    response_class=Response,
    responses=_image_responses(),
)
async def latest(
    client_uuid: str, _: UserDep, session: SessionDep, settings: SettingsDep, if_none_match: IfNoneMatch = None
) -> Response:
    """The client's latest screenshot of any type."""
    check_uuid(client_uuid)
    found = await service.latest_screenshot(session, client_uuid=client_uuid, priority=False)
    return await _serve(found, settings=settings, if_none_match=if_none_match)


@router.get(
    "/screenshots/{client_uuid}/priority",
    tags=["screenshots"],
    operation_id="screenshots_priority",
    response_class=Response,
    responses=_image_responses(fallback=True),
)
async def priority(
    client_uuid: str, _: UserDep, session: SessionDep, settings: SettingsDep, if_none_match: IfNoneMatch = None
) -> Response:
    """The client's latest priority screenshot, or its latest screenshot if it never sent one."""
    check_uuid(client_uuid)
    found = await service.latest_screenshot(session, client_uuid=client_uuid, priority=True)
    return await _serve(found, settings=settings, if_none_match=if_none_match, priority=True)


@router.get(
    "/screenshots/{client_uuid}/history/{screenshot_id}",
    tags=["screenshots"],
    operation_id="screenshots_history_image",
    response_class=Response,
    responses=_image_responses(),
)
async def history_image(
    client_uuid: str,
    screenshot_id: ScreenshotId,
    _: UserDep,
    session: SessionDep,
    settings: SettingsDep,
    if_none_match: IfNoneMatch = None,
) -> Response:
    """One screenshot of the client's history, by id."""
    check_uuid(client_uuid)
    found = await service.history_screenshot(session, client_uuid=client_uuid, screenshot_id=screenshot_id)
    return await _serve(found, settings=settings, if_none_match=if_none_match)


@router.get(
    "/api/clients/{client_uuid}/screenshots",
    tags=["screenshots"],
    operation_id="screenshots_history",
    response_model=ScreenshotHistory,
    responses=errors(400, *AUTH_ERRORS, 404),
)
async def history(client_uuid: str, _: UserDep, session: SessionDep) -> Response:
    """The client's stored screenshots, newest first, each with the URL that serves it."""
    check_uuid(client_uuid)
    rows = await service.history(session, client_uuid=client_uuid)
    items = [
        {
            "id": row.id,
            "screenshot_type": row.screenshot_type,
            "received_at": row.received_at,
            "hash": row.hash,
            "size": row.size,
            "url": f"/screenshots/{client_uuid}/history/{row.id}",
            "analysis": row.analysis,
        }
        for row in rows
    ]
    return json_response({"screenshots": items, "count": len(items)})


_THUMBNAIL_HEADERS = {
    "ETag": {"description": 'The screenshot\'s hash and the width: `"<hash>-<width>"`.', "schema": {"type": "string"}},
    "Cache-Control": {"description": "`private, max-age=31536000, immutable`.", "schema": {"type": "string"}},
}
ThumbnailWidth = Annotated[
    int,
    STRICT_INT,
    Query(
        description=f"Width in pixels: one of {', '.join(map(str, thumbnails.THUMBNAIL_WIDTHS))}.",
        # Checked in the endpoint (400 `Invalid width`); documented here for generated clients.
        json_schema_extra={"enum": list(thumbnails.THUMBNAIL_WIDTHS)},
    ),
]


@router.get(
    "/thumbnails/{screenshot_hash}",
    tags=["screenshots"],
    operation_id="screenshots_thumbnail",
    response_class=Response,
    responses={
        200: {
            "description": "A JPEG thumbnail of the screenshot with this hash, the aspect ratio kept.",
            "content": {"image/jpeg": _BINARY},
            "headers": _THUMBNAIL_HEADERS,
        },
        304: {"description": "Not modified: `If-None-Match` matches.", "headers": _THUMBNAIL_HEADERS},
        **errors(400, *AUTH_ERRORS, 404, described={400: "`w` is not one of the thumbnail widths"}),
    },
)
async def thumbnail(
    screenshot_hash: str,
    _: UserDep,
    session: SessionDep,
    settings: SettingsDep,
    w: ThumbnailWidth = thumbnails.DEFAULT_WIDTH,
    if_none_match: IfNoneMatch = None,
) -> Response:
    """A scaled JPEG of a stored screenshot, by its hash (made once, then served from a cache).

    The same hash and width always give the same image, so it may be cached for good. A screenshot
    that is no longer kept (pruned from the history) is a 404.
    """
    if w not in thumbnails.THUMBNAIL_WIDTHS:
        raise BadRequest(f"Invalid width: must be one of {', '.join(map(str, thumbnails.THUMBNAIL_WIDTHS))}")
    tag = f"{screenshot_hash}-{w}"
    headers = {"ETag": f'"{tag}"', "Cache-Control": "private, max-age=31536000, immutable"}
    if _etag_matches(if_none_match, tag):
        await thumbnails.screenshot_file(session, digest=screenshot_hash)
        return Response(status_code=304, headers=headers)
    data, _rendered = await thumbnails.thumbnail(
        session,
        digest=screenshot_hash,
        width=w,
        screenshots_dir=settings.screenshots_dir,
        cache_dir=settings.thumbnails_dir,
    )
    return Response(data, media_type="image/jpeg", headers=headers)
