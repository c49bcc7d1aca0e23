"""Photos and documents of cases: real files through the API into a real PostGIS and a real
folder. The checks are independent of the code under test: the served bytes are read back
with Pillow, hashes recomputed with hashlib, rows counted in SQL, files listed on disk, the
GPS position recomputed from its degrees, minutes and seconds."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import subprocess
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psycopg
import pytest
from PIL import Image, PngImagePlugin

from layers.attachments.records import add_case_attachment
from layers.attachments.store import attachment_settings, sweep
from layers.db.engine import create_async_engine
from layers.db.keys import create_key
from layers.db.scope import Scope
from layers.incidents.cases import Actor
from tests.helpers import INCIDENT_CENTRE, City, expected_inspector, make_key

LON, LAT = INCIDENT_CENTRE
GPS_LAT, GPS_LON = (22.0, 32.0, 24.0), (114.0, 3.0, 36.0)
MAKE, MODEL, ARTIST, OWNER = 0x010F, 0x0110, 0x013B, 0xA430
GPS_IFD, EXIF_IFD = 0x8825, 0x8769


def photo(seed: int = 0, size: tuple[int, int] = (400, 300), orientation: int = 6) -> bytes:
    """A JPEG as a phone writes it: EXIF with make, model, owner, capture time, GPS and an
    orientation; an XMP packet naming the position; a comment; bytes after its end."""
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[MAKE], exif[MODEL], exif[ARTIST] = "PhoneCo", "P-40 Pro", "Zhang San"
    exif[0x0112] = orientation
    sub = exif.get_ifd(EXIF_IFD)
    sub[0x9003], sub[0x9011], sub[OWNER] = "2026:12:05 14:30:00", "+08:00", "Zhang San"
    gps = exif.get_ifd(GPS_IFD)
    gps[1], gps[2], gps[3], gps[4] = "N", GPS_LAT, "E", GPS_LON
    out = io.BytesIO()
    Image.fromarray(pixels).save(
        out,
        "JPEG",
        quality=90,
        exif=exif,
        xmp=b'<x:xmpmeta><rdf:Description exif:GPSLatitude="22,32.4N"/></x:xmpmeta>',
        comment=b"shot by Zhang San 13812345678",
    )
    return out.getvalue() + b"TRAILER GPS 22.54 114.06"


def png(seed: int) -> bytes:
    """A small PNG with EXIF GPS and an author in a text chunk."""
    pixels = np.random.default_rng(seed).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[MAKE] = "PhoneCo"
    gps = exif.get_ifd(GPS_IFD)
    gps[1], gps[2] = "N", GPS_LAT
    text = PngImagePlugin.PngInfo()
    text.add_text("Author", "Zhang San")
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG", exif=exif, pnginfo=text)
    return out.getvalue()


def stored_files(home: Path) -> set[str]:
    """The attachment files on disk (temporary files left out)."""
    root = home / "attachments"
    if not root.exists():
        return set()
    return {p.name for p in root.glob("??/*") if p.is_file()}


def row_count(city: City) -> int:
    return city.value("SELECT count(*) FROM attachments")


def new_case(city: City, headers: dict[str, str]) -> dict[str, Any]:
    """A case reported by the caller of ``headers``."""
    r = city.client.post(
        "/incidents", json={"category": "0102", "lon": LON, "lat": LAT}, headers=headers
    )
    assert r.status_code == 201, r.text
    return r.json()


def upload(
    city: City,
    case_id: int,
    data: bytes,
    headers: dict[str, str],
    stage: str = "report",
    name: str = "photo.jpg",
    content_type: str = "image/jpeg",
    **fields: str,
) -> Any:
    return city.client.post(
        f"/incidents/{case_id}/attachments",
        files={"file": (name, data, content_type)},
        data={"stage": stage, **fields},
        headers=headers,
    )


def step(city: City, case: dict[str, Any], action: str, headers: dict[str, str]) -> dict:
    """The case after ``action``."""
    version = city.value("SELECT version FROM incidents WHERE id = %s", (case["id"],))
    r = city.client.post(
        f"/incidents/{case['id']}/transitions",
        json={"action": action},
        headers={**headers, "If-Match": f'"{version}"'},
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_photo_is_served_without_gps_device_or_owner(city: City, home: Path) -> None:
    app = city.key("app")
    case = new_case(city, app)
    original = photo(1)
    r = upload(city, case["id"], original, app)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["stage"] == "report"
    assert (body["width"], body["height"]) == (300, 400)  # orientation 6 turns it upright
    taken = datetime.fromisoformat(body["taken_at"])
    assert taken == datetime(2026, 12, 5, 6, 30, tzinfo=UTC)  # 14:30 at +08:00, from EXIF
    assert "location" not in body and "uploaded_by" not in body  # an app key is not staff
    assert r.headers["location"] == body["url"]

    served = city.client.get(body["url"], headers=app)
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/jpeg"
    assert hashlib.sha256(served.content).hexdigest() == body["sha256"]
    assert served.headers["etag"] == f'"{body["sha256"]}"'
    assert "immutable" in served.headers["cache-control"]
    assert "private" in served.headers["cache-control"]
    image = Image.open(io.BytesIO(served.content))
    exif = image.getexif()
    assert dict(exif) == {0x0112: 6}, "only the orientation may stay"
    assert exif.get_ifd(GPS_IFD) == {} and exif.get_ifd(EXIF_IFD) == {}
    for secret in (b"GPSLatitude", b"Zhang San", b"PhoneCo", b"13812345678", b"TRAILER"):
        assert secret not in served.content
    # the picture itself is untouched: the same pixels as the upload
    before = np.asarray(Image.open(io.BytesIO(original)))
    assert np.array_equal(before, np.asarray(image))

    again = city.client.get(body["url"], headers={**app, "If-None-Match": served.headers["etag"]})
    assert again.status_code == 304

    thumb = city.client.get(body["thumbnail_url"], headers=app)
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/webp"
    small = Image.open(io.BytesIO(thumb.content))
    size = attachment_settings().thumbnail_px
    assert small.size == (round(300 * size / 400), size)  # upright, longer side = size
    assert small.getexif().get_ifd(GPS_IFD) == {}

    # staff see where it was taken, as a field of the attachment (from the removed EXIF)
    listed = city.client.get(f"/incidents/{case['id']}/attachments", headers=city.key("dispatcher"))
    assert listed.status_code == 200
    item = listed.json()["attachments"][0]
    lon = GPS_LON[0] + GPS_LON[1] / 60 + GPS_LON[2] / 3600
    lat = GPS_LAT[0] + GPS_LAT[1] / 60 + GPS_LAT[2] / 3600
    assert item["location"]["coordinates"] == pytest.approx([lon, lat], abs=1e-9)
    assert item["uploaded_by"].startswith("app:")
    stored = city.rows(
        "SELECT ST_X(geom), ST_Y(geom), taken_at = %s::timestamptz FROM attachments WHERE id = %s",
        ("2026-12-05T06:30:00Z", body["id"]),
    )[0]
    assert stored == (pytest.approx(lon), pytest.approx(lat), True)
    app_view = city.client.get(f"/incidents/{case['id']}/attachments", headers=app).json()
    assert "location" not in app_view["attachments"][0]


def jpeg_variant(kind: str) -> bytes:
    """A progressive JPEG, or a multi-picture one (MPO: a second image after the first's
    end, each with EXIF GPS), as some phones write them."""
    rng = np.random.default_rng(13)
    first = Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8))
    exif = Image.Exif()
    gps = exif.get_ifd(GPS_IFD)
    gps[1], gps[2], gps[3], gps[4] = "N", GPS_LAT, "E", GPS_LON
    out = io.BytesIO()
    if kind == "progressive":
        first.save(out, "JPEG", progressive=True, exif=exif)
    else:
        second = Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8))
        first.save(out, "MPO", save_all=True, append_images=[second], exif=exif)
    return out.getvalue()


@pytest.mark.parametrize("kind", ["progressive", "multi-picture"])
def test_other_jpegs_keep_their_pixels_and_lose_their_gps(city: City, kind: str) -> None:
    app = city.key("app")
    case = new_case(city, app)
    original = jpeg_variant(kind)
    body = upload(city, case["id"], original, app).json()
    served = city.client.get(body["url"], headers=app).content
    assert b"MPF" not in served and served.endswith(b"\xff\xd9")
    image = Image.open(io.BytesIO(served))
    assert image.getexif().get_ifd(GPS_IFD) == {} and dict(image.getexif()) == {}
    assert np.array_equal(np.asarray(image), np.asarray(Image.open(io.BytesIO(original))))


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"this is not a photo, only text named .jpg\n" * 20, 415, "unsupported_file_type"),
        (photo(2)[:3000], 422, "invalid_image"),  # a JPEG cut short
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 200, 415, "unsupported_file_type"),  # signature only
    ],
    ids=["text", "truncated-jpeg", "fake-png"],
)
def test_a_file_that_is_not_what_it_claims_is_refused_and_nothing_written(
    city: City, home: Path, data: bytes, status: int, code: str
) -> None:
    app = city.key("app")
    case = new_case(city, app)
    rows, files = row_count(city), stored_files(home)
    r = upload(city, case["id"], data, app)
    assert r.status_code == status, r.text
    assert r.json()["code"] == code and r.json()["status"] == status
    assert row_count(city) == rows
    assert stored_files(home) == files


def test_the_type_comes_from_the_bytes_not_the_name(city: City) -> None:
    app = city.key("app")
    case = new_case(city, app)
    original = png(3)
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(GPS_IFD)
    r = upload(city, case["id"], original, app, name="photo.jpg", content_type="image/jpeg")
    assert r.status_code == 201, r.text
    served = city.client.get(r.json()["url"], headers=app).content
    image = Image.open(io.BytesIO(served))
    assert dict(image.getexif()) == {} and "Author" not in image.info
    assert b"Zhang San" not in served and b"PhoneCo" not in served
    assert np.array_equal(np.asarray(image), np.asarray(Image.open(io.BytesIO(original))))
    assert r.json()["media_type"] == "image/png" and (r.json()["width"], r.json()["height"]) == (
        30,
        20,
    )
    pdf = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
    r = upload(city, case["id"], pdf, app, name="scan.png", content_type="image/png")
    assert r.status_code == 201, r.text
    assert r.json()["media_type"] == "application/pdf" and r.json()["thumbnail_url"] is None
    assert city.client.get(r.json()["url"], headers=app).content == pdf


def test_too_large_is_413_and_nothing_written(
    city: City, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = city.key("app")
    case = new_case(city, app)
    monkeypatch.setenv("CITYHEX_ATTACHMENT_MAX_MB", "0.05")
    attachment_settings.cache_clear()
    try:
        big = photo(4, size=(800, 600))
        assert len(big) > 50_000
        rows, files = row_count(city), stored_files(home)
        r = upload(city, case["id"], big, app)
        assert r.status_code == 413, r.text
        assert r.json()["code"] == "file_too_large"
        # a body sent without its length (chunked) is cut off at the limit too
        chunks = (big[i : i + 8192] for i in range(0, len(big), 8192))
        r = city.client.post(
            f"/incidents/{case['id']}/attachments",
            content=chunks,
            headers={**app, "Content-Type": "multipart/form-data; boundary=x"},
        )
        assert r.status_code == 413, r.text
        assert row_count(city) == rows and stored_files(home) == files
    finally:
        attachment_settings.cache_clear()


def test_a_decompression_bomb_is_refused(
    city: City, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = city.key("app")
    case = new_case(city, app)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # Pillow's limit, lowered
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
    rows = row_count(city)
    r = upload(city, case["id"], photo(5, size=(200, 100)), app)
    assert r.status_code == 422 and r.json()["code"] == "image_too_large", r.text
    assert row_count(city) == rows


def test_same_bytes_twice_are_one_file(city: City, home: Path) -> None:
    app = city.key("app")
    first, second = new_case(city, app), new_case(city, app)
    data = photo(6)
    a = upload(city, first["id"], data, app).json()
    files = stored_files(home)
    b = upload(city, second["id"], data, app).json()
    assert a["id"] != b["id"] and a["sha256"] == b["sha256"]
    assert stored_files(home) == files
    assert {n for n in files if n.startswith(a["sha256"])} == {a["sha256"], a["sha256"] + ".thumb"}
    assert city.value("SELECT count(*) FROM attachments WHERE sha256 = %s", (a["sha256"],)) == 2


def test_a_failed_insert_leaves_no_file(city: City, home: Path) -> None:
    app = city.key("app")
    case = new_case(city, app)
    city.execute(
        "CREATE FUNCTION fail_attachment() RETURNS trigger LANGUAGE plpgsql AS "
        "$$BEGIN RAISE EXCEPTION 'injected failure'; END$$;"
        "CREATE TRIGGER fail_attachment BEFORE INSERT ON attachments "
        "FOR EACH ROW EXECUTE FUNCTION fail_attachment()"
    )
    try:
        rows, files = row_count(city), stored_files(home)
        r = upload(city, case["id"], photo(7), app)
        assert r.status_code == 500
        assert row_count(city) == rows
        assert stored_files(home) == files, "the files of the failed upload were left behind"
    finally:
        city.execute("DROP TRIGGER fail_attachment ON attachments; DROP FUNCTION fail_attachment()")
    assert upload(city, case["id"], photo(7), app).status_code == 201


def test_sweep_removes_orphans_and_keeps_what_rows_name(city: City, home: Path) -> None:
    app = city.key("app")
    case = new_case(city, app)
    kept = upload(city, case["id"], photo(8), app).json()["sha256"]
    orphan = hashlib.sha256(b"an orphan").hexdigest()
    folder = home / "attachments" / orphan[:2]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / orphan).write_bytes(b"an orphan")
    (folder / f"{orphan}.thumb").write_bytes(b"its thumbnail")
    temp = home / "attachments" / "tmp" / "interrupted"
    temp.parent.mkdir(exist_ok=True)
    temp.write_bytes(b"half an upload")
    old = time.time() - 7200
    os.utime(temp, (old, old))

    async def run() -> Any:
        engine = create_async_engine(city.url, pool_size=1)
        try:
            return await sweep(engine)
        finally:
            await engine.dispose()

    report = asyncio.run(run())
    assert report.removed == [orphan] and report.temporary_removed == 1
    assert not (folder / orphan).exists() and not (folder / f"{orphan}.thumb").exists()
    assert not temp.exists()
    named = {r[0] for r in city.rows("SELECT DISTINCT sha256 FROM attachments")}
    assert kept in named
    on_disk = {n for n in stored_files(home) if not n.endswith(".thumb")}
    assert on_disk == named, "every row's file is there, and no other"


def test_who_may_upload_and_read(city: City) -> None:
    reporter, dispatcher = city.key("app"), city.key("dispatcher")
    case = new_case(city, reporter)
    own = city.value("SELECT inspector_id FROM incidents WHERE id = %s", (case["id"],))
    other = next(i for i in (101, 102, 103, 104) if i != own)
    inspector, stranger = city.key("inspector", own), city.key("inspector", other)
    data = photo(9)
    # anonymous callers neither upload nor read
    assert upload(city, case["id"], data, {}).status_code == 401
    assert city.client.get(f"/incidents/{case['id']}/attachments").status_code == 401
    # another app (a key of another name) is not the reporter
    r = upload(city, case["id"], data, make_key(city.url, "app", None, "another-app"))
    assert r.status_code == 403 and r.json()["code"] == "stage_not_allowed"
    # an inspector's key reads its own cases only
    first = upload(city, case["id"], data, reporter).json()
    assert (
        city.client.get(f"/incidents/{case['id']}/attachments", headers=inspector).status_code
        == 200
    )
    for path in (f"/incidents/{case['id']}/attachments", first["url"], first["thumbnail_url"]):
        assert city.client.get(path, headers=stranger).status_code == 403
        assert city.client.get(path).status_code == 401
    # department staff do not add verification photos; nothing is verified before resolution
    r = upload(city, case["id"], data, city.key("editor"), stage="verification")
    assert r.status_code == 403
    r = upload(city, case["id"], data, inspector, stage="verification")
    assert r.status_code == 409 and r.json()["code"] == "stage_closed"
    r = upload(city, case["id"], data, inspector, stage="later")
    assert r.status_code == 400 and r.json()["code"] == "invalid_stage"
    # after registration the dispatcher adds a "before" photo naming the step
    registered = step(city, case, "register", dispatcher)
    transition = city.value(
        "SELECT max(id) FROM incident_transitions WHERE incident_id = %s", (case["id"],)
    )
    r = upload(city, case["id"], data, dispatcher, stage="before", transition_id=str(transition))
    assert r.status_code == 201 and r.json()["transition_id"] == transition, r.text
    other_case = new_case(city, reporter)
    foreign = city.value(
        "SELECT min(id) FROM incident_transitions WHERE incident_id = %s", (other_case["id"],)
    )
    r = upload(city, case["id"], data, dispatcher, stage="before", transition_id=str(foreign))
    assert r.status_code == 422 and r.json()["code"] == "unknown_transition"
    assert registered["status"] == "registered"
    # a wrong attachment id of a readable case
    assert (
        city.client.get(
            f"/incidents/{case['id']}/attachments/999999999", headers=dispatcher
        ).status_code
        == 404
    )
    # a case that does not exist is 404 for every reader, a caller with limits included
    for key in (dispatcher, inspector):
        for tail in ("", "/1", "/1/thumbnail"):
            r = city.client.get(f"/incidents/999999999/attachments{tail}", headers=key)
            assert r.status_code == 404 and r.json()["code"] == "unknown_incident", r.text


def test_open311_media_url_is_the_report_photo(city: City) -> None:
    app = city.key("app")
    case = new_case(city, app)
    body = upload(city, case["id"], photo(10), app).json()
    r = city.client.get(f"/open311/v2/requests/{case['id']}.json", headers=app)
    media_url = r.json()[0]["media_url"]
    assert media_url.endswith(body["url"]) and media_url.startswith("http")
    assert city.client.get(body["url"], headers=app).status_code == 200
    listed = city.client.get(
        "/open311/v2/requests.json", params={"service_request_id": str(case["id"])}, headers=app
    )
    assert listed.json()[0]["media_url"] == media_url
    # the public may not fetch case photos, so its answer names none
    assert city.client.get(f"/open311/v2/requests/{case['id']}.json").json()[0]["media_url"] is None


def test_a_feature_takes_photos_from_its_editors(city: City, home: Path) -> None:
    fid = city.value(
        "INSERT INTO assets (code, class_code, kind, name, state, owner_department_id, geom) "
        "VALUES ('4403040101000001', '0101', 'lamp', 'lamp 1', 'damaged', %s, "
        "ST_SetSRID(ST_MakePoint(%s, %s), 4326)) RETURNING id",
        (city.department_id("hw"), LON, LAT),
    )
    url = f"/collections/assets/items/{fid}/attachments"
    data = photo(11)
    files = {"file": ("lamp.jpg", data, "image/jpeg")}
    assert city.client.post(url, files=files).status_code == 401
    assert city.client.post(url, files=files, headers=city.key("app")).status_code == 403
    with psycopg.connect(city.url, autocommit=True) as conn:
        token = create_key(conn, "editor", "cgj-editor", scope=Scope.of(departments=["cgj"]))
    r = city.client.post(url, files=files, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403 and r.json()["code"] == "out_of_scope"  # hw's lamp
    editor = city.key("editor")
    r = city.client.post(url, files=files, headers=editor)
    assert r.status_code == 201, r.text
    served = city.client.get(r.json()["url"], headers=editor)
    assert Image.open(io.BytesIO(served.content)).getexif().get_ifd(GPS_IFD) == {}
    assert city.client.get(url).status_code == 401
    assert [a["id"] for a in city.client.get(url, headers=editor).json()["attachments"]] == [
        r.json()["id"]
    ]
    missing = city.client.post(
        "/collections/assets/items/999999999/attachments", files=files, headers=editor
    )
    assert missing.status_code == 404


def test_reading_where_photos_were_taken_is_audited(city: City) -> None:
    app = city.key("app")
    case = new_case(city, app)
    upload(city, case["id"], photo(12), app)
    route = "/incidents/{incident_id}/attachments"
    before = city.value(
        "SELECT count(*) FROM audit_log WHERE action = 'personal.read' AND route = %s", (route,)
    )
    listed = city.client.get(f"/incidents/{case['id']}/attachments", headers=city.key("dispatcher"))
    assert listed.status_code == 200
    after = city.value(
        "SELECT count(*) FROM audit_log WHERE action = 'personal.read' AND route = %s", (route,)
    )
    assert after == before + 1


@pytest.mark.subprocess
def test_the_sweep_command_reports_as_json(city: City, home: Path) -> None:
    orphan = hashlib.sha256(b"another orphan").hexdigest()
    folder = home / "attachments" / orphan[:2]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / orphan).write_bytes(b"another orphan")
    env = {**os.environ, "CITYHEX_DATABASE_URL": city.url, "CITYHEX_HOME": str(home)}
    command = [sys.executable, "-m", "spatial_api", "attachments", "sweep"]
    dry = subprocess.run([*command, "--dry-run"], env=env, capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr
    assert orjson.loads(dry.stdout)["removed"] == [orphan] and (folder / orphan).exists()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    assert orjson.loads(done.stdout)["removed"] == [orphan] and not (folder / orphan).exists()


def test_the_stages_follow_the_workflow(city: City) -> None:
    dispatcher = city.key("dispatcher")
    case = new_case(city, city.key("app"))
    assert city.category_department("0102") == city.department_id("hw")
    staff, other_staff = city.key("editor", 201), city.key("editor", 202)  # hw, cgj
    inspector = city.key(
        "inspector", city.value("SELECT inspector_id FROM incidents WHERE id = %s", (case["id"],))
    )
    # staff of another department report what they see, with its photo, but do not fix it
    theirs = new_case(city, other_staff)
    assert upload(city, theirs["id"], photo(18), other_staff).status_code == 201
    for action in ("register", "dispatch"):
        case = step(city, case, action, dispatcher)
    r = upload(city, case["id"], photo(14), other_staff, stage="before")
    assert r.status_code == 403 and r.json()["code"] == "not_your_case"
    assert upload(city, case["id"], photo(14), staff, stage="before").status_code == 201
    r = upload(city, case["id"], photo(15), staff, stage="after")
    assert r.status_code == 409 and r.json()["details"]["allowed_states"] == [
        "in_progress",
        "resolved",
    ]
    case = step(city, case, "accept", staff)
    assert upload(city, case["id"], photo(15), staff, stage="after").status_code == 201
    case = step(city, case, "resolve", staff)
    assert upload(city, case["id"], photo(16), inspector, stage="verification").status_code == 201
    case = step(city, case, "verify", inspector)
    case = step(city, case, "close", dispatcher)
    r = upload(city, case["id"], photo(17), inspector, stage="verification")
    assert r.status_code == 409
    stages = [
        a["stage"]
        for a in city.client.get(f"/incidents/{case['id']}/attachments", headers=dispatcher).json()[
            "attachments"
        ]
    ]
    assert stages == ["before", "after", "verification"]
    assert (
        city.value(
            "SELECT array_agg(stage ORDER BY id) FROM attachments WHERE incident_id = %s",
            (case["id"],),
        )
        == stages
    )


ROUNDS = 8


def test_uploads_racing_the_sweep_never_leave_a_row_without_its_file(
    city: City, home: Path
) -> None:
    case = new_case(city, city.key("app"))
    actor = Actor(role="dispatcher", name="dispatcher:race")

    async def run() -> list[Any]:
        engine = create_async_engine(city.url, pool_size=10)
        try:
            stored: list[Any] = []
            finished = asyncio.Event()

            async def sweeping() -> None:
                while not finished.is_set():
                    await sweep(engine)

            async def uploading() -> None:
                for k in range(ROUNDS):  # 4 new photos at once
                    uploads = (
                        add_case_attachment(engine, case["id"], photo(n), "report", None, actor)
                        for n in range(100 + 4 * k, 104 + 4 * k)
                    )
                    stored.extend(await asyncio.gather(*uploads))
                finished.set()

            await asyncio.gather(uploading(), sweeping(), sweeping())
            return stored
        finally:
            await engine.dispose()

    stored = asyncio.run(run())
    assert len({a.sha256 for a in stored}) == 4 * ROUNDS
    for sha in {a.sha256 for a in stored}:
        assert (home / "attachments" / sha[:2] / sha).is_file()
        assert (home / "attachments" / sha[:2] / f"{sha}.thumb").is_file()


def test_a_webp_is_served_upright_without_its_metadata(city: City) -> None:
    app = city.key("app")
    case = new_case(city, app)
    pixels = np.random.default_rng(19).integers(0, 255, (20, 40, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[MAKE], exif[0x0112] = "PhoneCo", 6
    gps = exif.get_ifd(GPS_IFD)
    gps[1], gps[2] = "N", GPS_LAT
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "WEBP", exif=exif, xmp=b"<x:xmpmeta>Zhang San</x:xmpmeta>")
    r = upload(city, case["id"], out.getvalue(), app, name="x.bin", content_type="text/plain")
    assert r.status_code == 201, r.text
    assert r.json()["media_type"] == "image/webp" and (r.json()["width"], r.json()["height"]) == (
        20,
        40,
    )
    served = city.client.get(r.json()["url"], headers=app).content
    image = Image.open(io.BytesIO(served))
    assert image.size == (20, 40), "the orientation is applied to the pixels"
    assert dict(image.getexif()) == {} and b"Zhang San" not in served and b"PhoneCo" not in served


def test_self_close_counts_an_uploaded_report_photo(city: City) -> None:
    """自行处置 needs a photo on the case: an uploaded report image counts as much as a photo
    URL in the report; a document (PDF) does not, nor does nothing."""
    reporter = city.key("inspector", expected_inspector(LON, LAT))
    case = new_case(city, reporter)
    assert city.value("SELECT photos FROM incidents WHERE id = %s", (case["id"],)) == []

    def self_close() -> Any:
        version = city.value("SELECT version FROM incidents WHERE id = %s", (case["id"],))
        return city.client.post(
            f"/incidents/{case['id']}/transitions",
            json={"action": "self_close", "note": "cleared on the spot"},
            headers={**reporter, "If-Match": f'"{version}"'},
        )

    r = self_close()
    assert (r.status_code, r.json()["code"]) == (400, "photo_required"), r.text
    pdf = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
    assert upload(city, case["id"], pdf, reporter, name="note.pdf").status_code == 201
    r = self_close()
    assert (r.status_code, r.json()["code"]) == (400, "photo_required"), r.text
    assert city.value("SELECT status FROM incidents WHERE id = %s", (case["id"],)) == "reported"
    assert upload(city, case["id"], photo(19), reporter).status_code == 201
    r = self_close()
    assert r.status_code == 200, r.text
    assert city.rows(
        "SELECT status, action FROM incidents i JOIN incident_transitions t "
        "ON t.incident_id = i.id AND t.action <> 'report' WHERE i.id = %s",
        (case["id"],),
    ) == [("closed", "self_close")]


def test_a_repeated_upload_with_one_idempotency_key_gives_the_first_answer_and_one_row(
    city: City, home: Path
) -> None:
    inspector = city.key("inspector", expected_inspector(LON, LAT))
    case = new_case(city, inspector)
    before = row_count(city)
    keyed = {**inspector, "Idempotency-Key": f"photo-{time.time_ns()}"}
    first = upload(city, case["id"], photo(41), keyed)
    assert first.status_code == 201, first.text
    # a retry draws a new multipart boundary: the same form still counts as the same request
    again = upload(city, case["id"], photo(41), keyed)
    assert again.status_code == 201, again.text
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert row_count(city) == before + 1
    rows = city.value("SELECT count(*) FROM attachments WHERE incident_id = %s", (case["id"],))
    assert rows == 1
    # the same key with another file is refused and writes nothing
    other = upload(city, case["id"], photo(42), keyed)
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    assert row_count(city) == before + 1
    # without a key, the same file is a second upload (the key is what makes it once)
    assert upload(city, case["id"], photo(41), inspector).status_code == 201
    assert row_count(city) == before + 2
