"""The chain holds and shows tampering: the database refuses changes to the log; a row removed
or altered behind the triggers' back is reported at its place by /audit/verify, the
listing's page check, ``cityhex audit verify`` and an independent recomputation; retention
keeps the rest verifiable, and a removal that no prune entry names shows."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from typer.testing import CliRunner

from layers.db.settings import storage_settings
from spatial_api.cli import app as cli
from tests.audit.conftest import LAMPS, chain_break
from tests.helpers import City

PATCH = {"Content-Type": "application/merge-patch+json"}


def write_rows(city: City, count: int) -> None:
    """``count`` PATCHes by an editor (each one entry, after the key's creation and first
    use)."""
    editor = city.key("editor")
    for n in range(count):
        fid = 1 + n % LAMPS
        etag = city.client.get(f"/collections/assets/items/{fid}").headers["etag"]
        r = city.client.patch(
            f"/collections/assets/items/{fid}",
            json={"properties": {"name": f"edit {n}"}},
            headers={**editor, **PATCH, "If-Match": etag},
        )
        assert r.status_code == 200


def behind_the_triggers(city: City, sql: str, params: tuple = ()) -> None:
    """Run ``sql`` on the log as the superuser with its guarding triggers disabled."""
    with psycopg.connect(city.url) as conn:
        conn.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")
        conn.execute(sql, params)
        conn.execute("ALTER TABLE audit_log ENABLE TRIGGER USER")


def cli_verify(url: str) -> tuple[int, str]:
    """``cityhex audit verify`` on ``url``: exit code and output."""
    return run_cli(url, ["audit", "verify"])


def run_cli(url: str, args: list[str]) -> tuple[int, str]:
    """A ``cityhex`` command on the database at ``url``: exit code and output."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CITYHEX_DATABASE_URL", url)
        storage_settings.cache_clear()
        try:
            result = CliRunner().invoke(cli, args)
        finally:
            mp.undo()
            storage_settings.cache_clear()
    return result.exit_code, result.output


@pytest.fixture
def tampered(audit_city) -> Iterator[City]:
    """A city whose log holds a dozen entries, for one test to break: the creation of the
    admin key that verifies it (made first, as making a key is an entry too), then the
    editor key's creation, first use and nine writes."""
    with audit_city("cityhex_audit_tampered") as city:
        ADMINS[city.url] = city.key("admin")
        write_rows(city, 9)
        assert city.value("SELECT seq FROM audit_head") == 12
        assert chain_break(city.url) is None
        yield city


ADMINS: dict[str, dict[str, str]] = {}
"""The admin key of each tampered city, made before the tampering."""


def verify_break(city: City) -> dict | None:
    admin = ADMINS[city.url]
    r = city.client.get("/audit/verify", headers=admin)
    assert r.status_code == 200
    return r.json()["first_break"]


def test_the_database_refuses_changes_to_the_log(tampered: City) -> None:
    refused = [
        "UPDATE audit_log SET actor = 'someone else' WHERE seq = 3",
        "DELETE FROM audit_log WHERE seq = 3",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ]
    for sql in refused:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            tampered.execute(sql)
    # an anchor must name a stored row by its hash, and anchors cannot be changed
    with pytest.raises(psycopg.errors.CheckViolation):
        tampered.execute("INSERT INTO audit_anchor (seq, hash, txid) VALUES (3, sha256('x'), 0)")
    assert tampered.value("SELECT count(*) FROM audit_log") == 12
    # the head is only the appender's bookmark: moving it shows too
    tampered.execute("UPDATE audit_head SET seq = seq + 5")
    assert verify_break(tampered) == {
        "seq": 13,
        "kind": "head",
        "message": "the chain ends at row 12 but its head is row 17: rows were removed from "
        "its end",
    }


def test_a_removed_row_is_reported_where_it_was(tampered: City) -> None:
    behind_the_triggers(tampered, "DELETE FROM audit_log WHERE seq = 5")
    assert chain_break(tampered.url) == 5
    assert verify_break(tampered) == {
        "seq": 5,
        "kind": "missing",
        "message": "row 5 is missing from the chain",
    }
    page = tampered.client.get("/audit?limit=20", headers=tampered.key("admin")).json()
    assert page["chain"]["first_break"]["seq"] == 5 and not page["chain"]["ok"]
    code, output = cli_verify(tampered.url)
    assert code == 1 and '"seq": 5' in output


def test_an_altered_row_is_reported_at_itself(tampered: City) -> None:
    behind_the_triggers(tampered, "UPDATE audit_log SET client = '10.9.9.9' WHERE seq = 7")
    assert chain_break(tampered.url) == 7
    brk = verify_break(tampered)
    assert (brk["seq"], brk["kind"]) == (7, "altered")
    before_it = tampered.client.get("/audit?before=7", headers=tampered.key("admin")).json()
    assert before_it["chain"]["ok"] and before_it["chain"]["checked"] == 6


def test_a_row_rewritten_with_a_fresh_hash_breaks_the_next_link(tampered: City) -> None:
    behind_the_triggers(
        tampered,
        "UPDATE audit_log SET actor = 'editor:someone else', hash = sha256(prev_hash || "
        "convert_to(audit_canonical(seq, at, action, 'editor:someone else', role, key_id, "
        "method, route, path, target, status, client, detail), 'UTF8')) WHERE seq = 8",
    )
    assert chain_break(tampered.url) == 9
    brk = verify_break(tampered)
    assert (brk["seq"], brk["kind"]) == (9, "link")


def test_rows_removed_from_the_end_show(tampered: City) -> None:
    behind_the_triggers(tampered, "DELETE FROM audit_log WHERE seq >= 11")
    assert chain_break(tampered.url) == 11
    brk = verify_break(tampered)
    assert (brk["seq"], brk["kind"]) == (11, "head")


def test_retention_keeps_the_chain_verifiable(audit_city) -> None:
    with audit_city("cityhex_audit_prune") as city:
        write_rows(city, 6)
        last = city.value("SELECT seq FROM audit_head")
        last_hash = city.value("SELECT hash FROM audit_log WHERE seq = %s", (last,))
        code, output = run_cli(city.url, ["audit", "prune", "--older-than", "0h"])
        assert code == 0, output
        assert city.rows("SELECT seq, hash FROM audit_anchor") == [(last, last_hash)]
        (prune,) = city.rows("SELECT seq, action, role, detail FROM audit_log")
        assert prune[:3] == (last + 1, "audit.prune", "cli")
        assert prune[3]["removed"] == last and prune[3]["anchor_seq"] == last
        assert prune[3]["anchor_hash"] == bytes(last_hash).hex()
        assert chain_break(city.url) is None
        assert cli_verify(city.url)[0] == 0
        write_rows(city, 3)
        report = city.client.get("/audit/verify", headers=city.key("admin")).json()
        assert report["ok"] and report["anchor"]["seq"] == last
        # the prune entry, the new editor key's creation, first use and three writes, and
        # the creation of the admin key that asks
        assert (report["first_seq"], report["last_seq"], report["checked"]) == (
            last + 1,
            last + 7,
            7,
        )
        # a second prune moves the anchor on; nothing younger than the age goes
        assert run_cli(city.url, ["audit", "prune", "--older-than", "1h"])[0] == 0
        assert city.value("SELECT count(*) FROM audit_anchor") == 1
        assert run_cli(city.url, ["audit", "prune", "--older-than", "0h"])[0] == 0
        assert city.value("SELECT count(*) FROM audit_anchor") == 2
        assert chain_break(city.url) is None and cli_verify(city.url)[0] == 0


def test_a_removal_no_prune_entry_names_shows(tampered: City) -> None:
    # the database lets rows go behind an anchor of the same transaction, but only the prune
    # command also writes the entry that names it
    with psycopg.connect(tampered.url) as conn:
        conn.execute(
            "INSERT INTO audit_anchor (seq, hash, txid) "
            "SELECT seq, hash, 0 FROM audit_log WHERE seq = 6"
        )
        conn.execute("DELETE FROM audit_log WHERE seq <= 6")
    assert chain_break(tampered.url) is None  # the rows after the anchor still chain
    brk = verify_break(tampered)
    assert (brk["seq"], brk["kind"]) == (7, "anchor")


def test_bad_ages_are_refused() -> None:
    code, output = run_cli(
        "postgresql://nowhere.invalid/none", ["audit", "prune", "--older-than", "1y"]
    )
    assert code == 1 and "invalid_age" in output
