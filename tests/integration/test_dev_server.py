"""``make start`` (``flask dev``) as a newcomer runs it: twice in the same clone, stopped with SIGTERM or Ctrl+C."""

from __future__ import annotations

import signal

import psutil
import pytest
import sqlalchemy as sa

from saas.devserver import IN_PROCESS, sandbox_settings
from saas.procfile import procfile_entries
from tests.dev_server import DevServer, embedded_redis_servers, wait_until

DEMO_CLINICS = 5
PATIENTS = 5


def _demo_database(instance_dir):
    return sa.create_engine(f"sqlite:///{instance_dir / 'tsunagu.sqlite3'}")


def _following_friends(engine) -> dict[str, int]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT clinic.slug, count(*) FROM friend JOIN clinic ON clinic.id = friend.clinic_id"
                " WHERE friend.status = 'following' GROUP BY clinic.slug"
            )
        )
        return dict(rows.all())


def _greeted_patients(server: DevServer) -> dict[str, int]:
    """Per sandbox channel: how many following patients have a greeting in their chat."""
    greeted = {}
    for channel in server.get("/_sandbox/channels").json():
        patients = server.get(f"/_sandbox/channels/{channel['channelId']}/patients").json()
        greeted[channel["channelId"]] = sum(
            patient["following"] and _has_greeting(server, channel["channelId"], patient["userId"])
            for patient in patients
        )
    return greeted


def _has_greeting(server: DevServer, channel_id: str, user_id: str) -> bool:
    inbox = server.get(f"/_sandbox/channels/{channel_id}/patients/{user_id}/inbox").json()
    return any("友だち追加ありがとうございます" in (entry["message"].get("text") or "") for entry in inbox)


def _every_patient_greeted(server: DevServer):
    greeted = _greeted_patients(server)
    return greeted if len(greeted) == DEMO_CLINICS and set(greeted.values()) == {PATIENTS} else None


def _every_patient_following(server: DevServer):
    """After a restart: the sandbox (which forgot them) has every demo patient following again."""
    following = {
        channel["channelId"]: sum(
            patient["following"] for patient in server.get(f"/_sandbox/channels/{channel['channelId']}/patients").json()
        )
        for channel in server.get("/_sandbox/channels").json()
    }
    return following if len(following) == DEMO_CLINICS and set(following.values()) == {PATIENTS} else None


def _greetings_sent(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(
            sa.text(
                "SELECT count(*) FROM message WHERE direction = 'out' AND text LIKE '%友だち追加ありがとうございます%'"
            )
        ).scalar()


def _assert_everything_stopped(server: DevServer, started: list[psutil.Process]) -> None:
    for process in started:
        assert not process.is_running() or process.status() == psutil.STATUS_ZOMBIE, process
    assert embedded_redis_servers(server.instance_dir) == []


def _run_demo_once(instance_dir, signum: int, ready=_every_patient_greeted) -> dict[str, int]:
    server = DevServer(instance_dir)
    try:
        wait_until(lambda: ready(server), 420, "five greeted (or, after a restart, following) patients per clinic")
        started = server.processes()
        names = {line.split("|")[0].strip() for line in server.lines if "| 起動 / started" in line}
        assert names == {name for name, _ in procfile_entries() if name not in IN_PROCESS}
        assert embedded_redis_servers(instance_dir), "the demo runs on the embedded Redis"
        friends = _following_friends(_demo_database(instance_dir))
    finally:
        exit_code = server.stop(signum)
    assert exit_code == 0, server.output()[-3000:]
    _assert_everything_stopped(server, started)
    return friends


def test_make_start_twice_keeps_the_data_and_greets_every_patient_once(tmp_path):
    first = _run_demo_once(tmp_path, signal.SIGTERM)
    assert first and set(first.values()) == {PATIENTS}
    engine = _demo_database(tmp_path)
    with engine.begin() as connection:
        channels = dict(connection.execute(sa.text("SELECT slug, line_channel_id FROM clinic")).all())
        # an edit made in the portal between the two starts
        connection.execute(sa.text("UPDATE clinic SET phone = '03-0000-1234' WHERE slug = 'sakura-shibuya'"))
    greetings = _greetings_sent(engine)
    assert greetings >= DEMO_CLINICS * PATIENTS

    second = _run_demo_once(tmp_path, signal.SIGINT, ready=_every_patient_following)  # Ctrl+C
    assert second == first  # the same friends, not a second set
    with engine.connect() as connection:
        assert dict(connection.execute(sa.text("SELECT slug, line_channel_id FROM clinic")).all()) == channels
        phone = connection.execute(sa.text("SELECT phone FROM clinic WHERE slug = 'sakura-shibuya'")).scalar()
    assert phone == "03-0000-1234"  # the manifests were not applied over it again
    assert _greetings_sent(engine) == greetings  # nobody greeted twice, no quota spent on it


def test_every_line_host_follows_the_sandbox_in_development():
    settings = sandbox_settings("http://127.0.0.1:9", "http://127.0.0.1:8")
    assert {"LINE_API_BASE", "LINE_DATA_API_BASE", "LINE_LOGIN_BASE"} <= settings.keys()
    assert {value for name, value in settings.items() if name != "PUBLIC_BASE_URL"} == {"http://127.0.0.1:9"}


def test_the_procfile_is_read_line_by_line_so_added_workers_run_in_the_demo(tmp_path):
    procfile = tmp_path / "Procfile"
    procfile.write_text("# processes\nweb: gunicorn app\n\nworker-urgent: flask --app saas worker --queue urgent\n")
    assert procfile_entries(procfile) == [
        ("web", "gunicorn app"),
        ("worker-urgent", "flask --app saas worker --queue urgent"),
    ]
    procfile.write_text("web gunicorn app\n")
    with pytest.raises(ValueError, match="Procfile:1"):
        procfile_entries(procfile)
