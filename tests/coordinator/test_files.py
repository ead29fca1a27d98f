"""Mimetype sniffing (Meet's test_utils_detect_mimetype.py) and the two file commands
(Meet's commands/test_clean_pending_files.py and test_purge_deleted_files.py), the commands run
as ``meet-coordinator`` runs them, against moto's S3 server."""

from __future__ import annotations

import io
import warnings
from datetime import timedelta
from typing import Any

import pytest

from coordinator.cli import main
from coordinator.file_commands import run_files_command
from coordinator.files import detect_mimetype
from coordinator.object_storage import ObjectStorage
from coordinator.settings import S3Settings
from storage import files as file_queries
from storage.models import utcnow
from tests.api.test_files import count_rows, keys_of, make_file, object_exists, read_file
from tests.support.factories import Factory

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.mark.parametrize(
    ("content", "filename", "expected"),
    [
        (b"%PDF-1.4\n", "document.pdf", "application/pdf"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image.png", "image/png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "photo.jpg", "image/jpeg"),
        (b"This is plain text content", "file.txt", "text/plain"),
        (b"", "empty.txt", "application/x-empty"),
        (b"\x00\x01\x02\x03\x04\x05", "document.pdf", "application/pdf"),
        (b'{"key": "value"}', "data.json", "application/json"),
        (b"%PDF-1.4\n", None, "application/pdf"),
        (b"some content", "script.js", "text/javascript"),
        (b"\x00\x01\x02\x03", "file", "application/octet-stream"),
        (b'<?xml version="1.0"?><root></root>', "data.xml", "text/xml"),
        (b"name,age\nJohn,30\nJane,25", "data.csv", "text/csv"),
        (b"PK\x03\x04\x14\x00\x00\x00", "archive.zip", "application/zip"),
        (b"%PDF-1.4\n", "document.txt", "application/pdf"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "presentation.ppt", "application/vnd.ms-powerpoint"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "document.xls", "application/vnd.ms-excel"),
        # Hostile: the bytes win over a reassuring extension.
        (b"MZ\x90\x00\x03\x00", "innocent.png", "application/x-dosexec"),
        (b"\x7fELF\x02\x01", "innocent.jpg", "application/x-executable"),
        (b"\x89PNG\r\n\x1a\n", "photo.jpg", "image/png"),
    ],
)
def test_detect_mimetype(content: bytes, filename: str | None, expected: str) -> None:
    """test_detect_mimetype_* (the pptx case Meet marks xfail is not claimed)"""
    assert detect_mimetype(content, filename) == expected


def environ(database_url: str, s3: S3Settings, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "SECRET_KEY": "s" * 40,
        "LIVEKIT_API_SECRET": "l" * 40,
        "AWS_S3_ENDPOINT_URL": s3.endpoint_url,
        "AWS_STORAGE_BUCKET_NAME": s3.bucket,
        "AWS_S3_ACCESS_KEY_ID": s3.access_key,
        "AWS_S3_SECRET_ACCESS_KEY": s3.secret_key.get(),
        **extra,
    }


async def run(command: str, env: dict[str, str], **options: Any) -> str:
    out = io.StringIO()
    assert await run_files_command(command, environ=env, out=out, **options) == 0
    return out.getvalue()


@SQLITE
async def test_clean_pending_files(
    factory: Factory, database_url: str, s3_settings: S3Settings
) -> None:
    """test_clean_pending_files_no_stale_files, …_recent_pending_not_deleted,
    …_old_pending_deleted, …_old_non_pending_not_deleted, …_custom_hours"""
    env = environ(database_url, s3_settings)
    assert await run("clean-pending-files", env) == "Cleaned 0 stale pending file(s).\n"
    user = await factory.user()
    recent = await make_file(factory, user)
    old = await make_file(factory, user, created_at=utcnow() - timedelta(hours=49))
    ten_hours = await make_file(factory, user, created_at=utcnow() - timedelta(hours=10))
    old_ready = await make_file(
        factory, user, state="ready", created_at=utcnow() - timedelta(hours=49)
    )
    async with ObjectStorage(s3_settings) as bucket:
        for record in (recent, old, ten_hours):
            await bucket.put(keys_of(record)[1], b"hello", "text/plain")
        assert await run("clean-pending-files", env) == "Cleaned 1 stale pending file(s).\n"
        assert await read_file(factory, old.id) is None
        assert not await object_exists(bucket, keys_of(old)[1])
        for record in (recent, ten_hours):
            stored = await read_file(factory, record.id)
            assert stored is not None and stored.deleted_at is None
            assert await object_exists(bucket, keys_of(record)[1])
        stored = await read_file(factory, old_ready.id)
        assert stored is not None and stored.deleted_at is None
        assert stored.hard_deleted_at is None

        assert (
            await run("clean-pending-files", env, hours=8) == "Cleaned 1 stale pending file(s).\n"
        )
        assert await read_file(factory, ten_hours.id) is None
        assert not await object_exists(bucket, keys_of(ten_hours)[1])
        assert await object_exists(bucket, keys_of(recent)[1])
    assert await count_rows(factory) == 2


@SQLITE
async def test_purge_deleted_files(
    factory: Factory, database_url: str, s3_settings: S3Settings
) -> None:
    """test_purge_deleted_files_no_deleted_files, test_purge_deleted_files_success"""
    grace = 3
    env = environ(database_url, s3_settings, FILE_PURGE_GRACE_DAYS=str(grace))
    assert await run("purge-deleted-files", env) == "Purged 0 deleted file(s).\n"
    user = await factory.user()
    now = utcnow()
    kept = await make_file(factory, user, state="ready")
    recently_deleted = await make_file(factory, user, state="ready", deleted_at=now)
    purgeable = await make_file(
        factory, user, state="ready", deleted_at=now - timedelta(days=grace, minutes=1)
    )
    hard = await make_file(factory, user, state="ready", deleted_at=now, hard_deleted_at=now)
    records = (kept, recently_deleted, purgeable, hard)
    async with ObjectStorage(s3_settings) as bucket:
        for record in records:
            await bucket.put(keys_of(record)[0], b"hello", "text/plain")
        assert await run("purge-deleted-files", env) == "Purged 2 deleted file(s).\n"
        for record, remains in zip(records, (True, True, False, False), strict=True):
            assert await object_exists(bucket, keys_of(record)[0]) is remains
        async with factory.sessionmaker() as session:
            for record, remains in zip(records, (True, True, False, False), strict=True):
                assert await file_queries.file_exists(session, record.id) is remains


def test_commands_help_and_bad_hours(capsys: pytest.CaptureFixture[str]) -> None:
    for command, words in (
        ("clean-pending-files", "--hours"),
        ("purge-deleted-files", "FILE_PURGE_GRACE_DAYS"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
        assert words in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["clean-pending-files", "--hours=-1"])
    assert exit_info.value.code == 2
    assert "Hours must be greater than 0" in capsys.readouterr().err


def test_migration_0004_matches_the_model(sqlite_template: Any) -> None:
    """The migrated ``meet_file`` table is the model's (columns, types, nullability, index)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine, inspect

    from storage.models import Base

    engine = create_engine(f"sqlite:///{sqlite_template}")
    try:
        with engine.connect() as connection, warnings.catch_warnings():
            # Expression indexes (lower(email)) are not reflected on SQLite.
            warnings.simplefilter("ignore")
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
            indexes = {index["name"] for index in inspect(connection).get_indexes("meet_file")}
    finally:
        engine.dispose()
    # An index with a DESC column cannot be compared on SQLite: its name is checked instead.
    about_files = [
        entry
        for entry in diff
        if "meet_file" in repr(entry) and "ix_file_creator_type_created" not in repr(entry)
    ]
    assert about_files == []
    assert "ix_file_creator_type_created" in indexes


def test_file_settings_from_env() -> None:
    """Meet's variable names; a bad value stops the process at start, naming the variable."""
    from coordinator.errors import ConfigurationError
    from coordinator.settings import FileRestriction, Settings

    base = {"SECRET_KEY": "s" * 40, "LIVEKIT_API_SECRET": "l" * 40}
    default = Settings.from_env(base)
    assert default.files.restrictions == {"background_image": FileRestriction()}
    assert (default.files.upload_path, default.files.upload_tmp_path) == ("files", "tmp/files")
    assert default.s3.timeout_seconds == 10.0
    custom = Settings.from_env(
        {
            **base,
            "FILE_UPLOAD_RESTRICTIONS": '{"background_image": {"max_size": 10, '
            '"max_count_by_user": 2, "allowed_extensions": [".PNG"]}}',
            "FILE_UPLOAD_APPLY_RESTRICTIONS": "false",
            "FILE_PURGE_GRACE_DAYS": "0",
            "AWS_S3_UPLOAD_POLICY_EXPIRATION": "30",
            "MEDIA_BASE_URL": "https://media.example.com/",
            "MEET_S3_TIMEOUT_SECONDS": "2.5",
        }
    )
    limits = custom.files.restrictions["background_image"]
    assert (limits.max_size, limits.max_count_by_user) == (10, 2)
    assert limits.allowed_extensions == (".png",)
    assert limits.allowed_mimetypes == ("image/jpeg", "image/png")
    assert not custom.files.apply_restrictions
    assert custom.files.purge_grace_days == 0
    assert custom.files.upload_policy_expiration == 30
    assert custom.files.media_base_url == "https://media.example.com"
    assert custom.s3.timeout_seconds == 2.5
    from api.config import frontend_config

    assert frontend_config(custom)["background_image"] == {
        "upload_is_enabled": False,
        "max_count_by_user": 2,
        "max_size": 10,
        "allowed_extensions": [".png"],
        "allowed_mimetypes": ["image/jpeg", "image/png"],
    }
    for name, value in (
        ("FILE_UPLOAD_TMP_PATH", "files"),
        ("FILE_UPLOAD_RESTRICTIONS", "[1]"),
        ("FILE_UPLOAD_RESTRICTIONS", '{"avatar": {}}'),
        ("FILE_UPLOAD_RESTRICTIONS", '{"background_image": {"max_size": "big"}}'),
        ("FILE_UPLOAD_RESTRICTIONS", '{"background_image": {"max_size": -1}}'),
    ):
        with pytest.raises(ConfigurationError, match=name):
            Settings.from_env({**base, name: value})
