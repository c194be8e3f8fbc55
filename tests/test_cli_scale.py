"""`invoke-canvas worker` and the scale-out flags: bad settings are one clear line and exit code 2."""

from __future__ import annotations

import pytest

from server.cli import main


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["worker"], "a worker needs the shared queue"),
        (["worker", "--database-url", "mysql://x/y", "--broker", "redis://127.0.0.1:1/0"], "database URL must start with postgresql"),
        (["worker", "--database-url", "postgresql+psycopg://u@127.0.0.1:1/x", "--broker", "amqp://x"], "the broker must be a Redis URL"),
        (["--broker", "redis://127.0.0.1:1/0"], "need a shared database"),
        (["--broker", "redis://127.0.0.1:1/0", "--database-url", "postgresql://u@127.0.0.1:1/x", "--host", "0.0.0.0"], "set a --token"),
        (["models", "list", "--database-url", "sqlite:///x.db"], "database URL must start with postgresql"),
    ],
)
def test_bad_scale_out_settings_are_one_line(tmp_path, capsys, argv, expected):
    code = main([*argv[:2], "--root", str(tmp_path), *argv[2:]] if argv[0] == "models" else ["--root", str(tmp_path), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and expected in err, err


def test_models_and_doctor_use_the_shared_database(tmp_path, capsys, pg_server, pg_template):
    from conftest import new_pg_database

    url = new_pg_database(pg_server, pg_template)
    assert main(["models", "list", "--root", str(tmp_path), "--database-url", url]) == 0
    assert "demo" in capsys.readouterr().out
    code = main(["doctor", "--root", str(tmp_path), "--database-url", url])
    out = capsys.readouterr().out
    assert code == 0 and "PostgreSQL (shared)" in out and "no problems found" in out, out
