"""Issue 13, cassettes and recordings: names that cannot collide (F4), a prune that deletes
only what it can read (F5), redaction that leaves prose alone (F12), shape checks on load
(F18), cassettes that grow linearly (F22) and a cassette that cannot be written (F1, F3).

behave runs as ``python -m behave`` in a subprocess against the fake OpenAI server; the
read-only folder and the full disk are real (a read-only tmpfs mount and a tiny tmpfs when
running as root, where chmod does not stop writes)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import BANK, Project, llm_config, processes_in
from test_e2e import BANKER

from behave_aitest.record import cassettes
from behave_aitest.model.fakellm import FakeOpenAI
from behave_aitest.model.llm import ModelReply
from behave_aitest.text.redact import Redactor

PROSE = "Authorization: approved. Basic: checking account. Your Basic: savings plan is fine. Code Authorization: Zx81Kq0pLm."


def _echo(request: dict) -> dict:
    """The fake model's answer: the last user message, so every conversation is told apart."""
    users = [m for m in request["messages"] if m.get("role") == "user"]
    text = str(users[-1]["content"]) if users else ""
    if "prose" in text:
        return {"content": PROSE}
    if "odd" in text:  # a lone surrogate, as from a server that cuts strings by UTF-16 length
        return {"content": "odd \ud800 text"}
    return {"content": f"echo: {text}"}


def _files(root: Path) -> list[str]:
    base = root / "features" / "cassettes"
    return sorted(p.relative_to(base).as_posix() for p in base.rglob("*.json")) if base.exists() else []


def test_hostile_names_prose_and_wrong_shapes_record_and_replay(project: Project, fake_llm: FakeOpenAI) -> None:
    """F4: each conversation gets its own file; F12: prose survives the recording and replays;
    F18: a cassette of the wrong shape is one line naming the file and the field."""
    fake_llm.brain = _echo
    project.config(llm_config(fake_llm))
    one = 'Feature: {title}\n  Scenario: {scenario}\n    When the user says "{says}"\n    Then the response mentions "{says}"\n'
    project.feature("日本.feature", one.format(title="Japan", scenario="挨拶", says="japan"))
    project.feature("中国.feature", one.format(title="China", scenario="挨拶", says="china"))
    project.feature("a b.feature", one.format(title="Space", scenario="Hi", says="space"))
    project.feature("a-b.feature", one.format(title="Dash", scenario="Hi", says="dash"))
    project.feature(
        "dups.feature",
        "Feature: Dups\n"
        '  Scenario: Check\n    When the user says "first check"\n    Then the response mentions "first check"\n'
        '  Scenario: Check\n    When the user says "second check"\n    Then the response mentions "second check"\n'
        '  Scenario: Check 2\n    When the user says "check two"\n    Then the response mentions "check two"\n',
    )
    project.feature(
        "prose.feature",
        "Feature: Prose\n  Scenario: Approved\n    When the user says \"prose please\"\n"
        '    Then the response mentions "Authorization: approved"\n    And the response mentions "Basic: checking account"\n'
        '    And the response mentions "Authorization: Zx81Kq0pLm"\n',  # credential-shaped, but what the step expects
    )
    project.feature("odd.feature", 'Feature: Odd\n  Scenario: Surrogate\n    When the user says "odd"\n    Then the response mentions "text"\n')
    result = project.run("-D", "aitest.cassette=record")
    assert result.returncode == 0, result.output
    recorded = _files(project.root)
    assert len(recorded) == 9, recorded  # one file per conversation, none overwritten
    assert not any("--run-" in p for p in recorded), recorded  # nor taken for a second run of another
    prose = next(p for p in recorded if p.startswith("prose/"))
    text = (project.root / "features" / "cassettes" / prose).read_text(encoding="utf-8")
    assert PROSE in text and "REDACTED" not in text
    odd = json.loads((project.root / "features" / "cassettes" / "odd" / "surrogate.json").read_text(encoding="utf-8"))
    assert odd["interactions"][0]["response"]["content"] == "odd \ud800 text"  # F3: written, and read back as it was

    # F18: one cassette of the wrong shape (valid JSON), the others replay.
    dash = project.root / "features" / "cassettes" / "a-b" / "hi.json"
    broken = json.loads(dash.read_text(encoding="utf-8"))
    broken["interactions"][0]["response"]["tool_calls"] = "nope"
    dash.write_text(json.dumps(broken), encoding="utf-8")
    fake_llm.stop()
    result = project.run("-D", "aitest.cassette=replay")
    assert result.returncode == 1, result.output
    assert "8 scenarios passed, 0 failed, 1 error" in result.output, result.output[-1500:]
    assert "features/cassettes/a-b/hi.json: not a valid cassette: interactions[0].response.tool_calls must be a list" in result.output
    assert "AttributeError" not in result.output, result.output


@contextlib.contextmanager
def _tmpfs(where: Path, options: str) -> Iterator[None]:
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def _can_mount() -> bool:
    if os.geteuid() != 0:
        return False
    probe = Path(f"/tmp/aitest-mount-probe-{os.getpid()}")
    probe.mkdir(exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(probe)], capture_output=True)
        if done.returncode == 0:
            subprocess.run(["umount", str(probe)], capture_output=True)
        return done.returncode == 0
    finally:
        probe.rmdir()


def test_a_cassette_that_cannot_be_written_is_an_error_naming_the_file_and_the_run_ends(project: Project, fake_llm: FakeOpenAI) -> None:
    """F1 (cassette half): a read-only folder and a full disk end the run with one line naming
    the file and the reason; the run does not hang and leaves no server behind."""
    fake_llm.brain = _echo
    project.config(llm_config(fake_llm) + BANK + BANKER)  # a real MCP server in each conversation's scope
    (project.root / "features" / "ro").mkdir()
    for name in ("ro/hello", "full"):
        project.feature(f"{name}.feature", f'Feature: {name}\n  Scenario: Hello\n    Given the agent "banker"\n    When the user says "{name}"\n')
    project.feature("ro/zz_session.feature", '@session\nFeature: Session\n  Scenario: One\n    Given the agent "banker"\n    When the user says "one"\n')
    base = project.root / "features" / "cassettes"
    with contextlib.ExitStack() as stack:
        if _can_mount():
            stack.enter_context(_tmpfs(base / "ro", "size=64k,ro"))
            stack.enter_context(_tmpfs(base / "full", "size=4k"))
            with contextlib.suppress(OSError):
                with open(base / "full" / "filler", "wb") as filler:
                    filler.write(b"x" * 65536)
            expect = {"ro/hello/hello": "Read-only file system", "ro/zz_session/session": "Read-only file system", "full/hello": "No space left on device"}
        elif os.geteuid() != 0:
            (base / "ro").mkdir(parents=True)
            (base / "ro").chmod(0o555)
            stack.callback((base / "ro").chmod, 0o755)
            expect = {"ro/hello/hello": "Permission denied", "ro/zz_session/session": "Permission denied"}  # a full disk needs a tmpfs (root)
        else:
            pytest.skip("running as root without mount: chmod cannot make a folder read-only and no tmpfs for a full disk")
        result = project.run("-D", "aitest.cassette=record", timeout=120)  # before the fix: hangs
    assert result.returncode == 1, result.output
    for name, reason in expect.items():
        assert f"cassette features/cassettes/{name}.json could not be written: {reason}" in result.output, result.output[-2000:]
    assert "Traceback" not in result.output
    assert processes_in(project.root) == []  # the servers of both conversations were stopped


# --------------------------------------------------------------------------- units


def _request(history: list[dict]) -> dict:
    return {"model": "openai/fake-model", "messages": list(history), "temperature": 0.0, "api_key": "sk-x"}


def _conversation(cassette: cassettes.Cassette, turns: int, surrogate: bool = False) -> list[str]:
    """Drive ``turns`` growing requests through the cassette's completer; the answers."""
    answers: list[str] = []

    async def model(request: dict, *, timeout_s: float | None = None) -> ModelReply:
        text = f"answer {len(request['messages'])} " + "b" * 150 + ("\ud800" if surrogate else "")
        return ModelReply(content=text, input_tokens=1, output_tokens=1, cost_usd=0.001, model="fake-model")

    async def run() -> None:
        complete = cassette.completer(model, type("S", (), {"model": "openai/fake-model"})())
        history = [{"role": "system", "content": "s" * 200}]
        for turn in range(turns):
            history.append({"role": "user", "content": f"question {turn} " + "q" * 150})
            reply = await complete(_request(history))
            answers.append(str(reply.content))
            history.append({"role": "assistant", "content": reply.content})

    asyncio.run(run())
    return answers


def _cassette(path: Path, mode: str, scrub: Redactor | None = None) -> cassettes.Cassette:
    header = {"feature": "features/x.feature", "feature_name": "X", "scenario": "S", "session": False, "flow_model": None, "run": 1}
    return cassettes.Cassette(path, path.name, mode, header, scrub or Redactor({}))


def test_cassettes_grow_linearly_replay_and_follow_the_umask(tmp_path: Path) -> None:
    """F22: new messages per interaction plus a hash of the whole request; F3: a lone
    surrogate is written and read back; modes follow the umask."""
    sizes = {}
    for turns in (50, 150):
        path = tmp_path / f"c{turns}.json"
        recorder = _cassette(path, "record")
        answers = _conversation(recorder, turns, surrogate=True)
        assert recorder.close() is None
        sizes[turns] = path.stat().st_size
        document = json.loads(path.read_text(encoding="utf-8"))
        assert document["version"] == cassettes.VERSION == 2
        assert document["interactions"][0]["response"]["content"] == answers[0]  # the surrogate round-trips
        player = _cassette(path, "replay")
        assert _conversation(player, turns, surrogate=False) == answers  # every request matched
    assert sizes[150] < 3.3 * sizes[50], sizes  # linear: 3x; whole histories: ~9x
    umask = os.umask(0o027)
    os.umask(umask)
    assert (tmp_path / "c50.json").stat().st_mode & 0o777 == 0o666 & ~umask


def test_version_1_cassettes_still_replay(tmp_path: Path) -> None:
    """F22: a cassette of format version 1 (whole requests) is still read."""
    path = tmp_path / "v1.json"
    recorder = _cassette(path, "record")
    answers = _conversation(recorder, 5)
    history = [{"role": "system", "content": "s" * 200}]
    interactions = []
    for turn, answer in enumerate(answers):
        history.append({"role": "user", "content": f"question {turn} " + "q" * 150})
        request = cassettes.normalize_request(_request(history))
        interactions.append({"call": turn + 1, "model": "openai/fake-model", "request": request, "response": {"content": answer}})
        history.append({"role": "assistant", "content": answer})
    header = {"feature": "features/x.feature", "feature_name": "X", "scenario": "S", "session": False, "flow_model": None, "run": 1}
    path.write_text(json.dumps({"format": cassettes.FORMAT, "version": 1, **header, "interactions": interactions}), encoding="utf-8")
    assert _conversation(_cassette(path, "replay"), 5) == answers


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d.update(interactions={"a": 1}), "interactions must be a list"),
        (lambda d: d["interactions"][0].update(request="x"), "interactions[0].request must be an object"),
        (lambda d: d["interactions"][1]["request"].update(messages=[1]), "interactions[1].request.messages[0] must be an object"),
        (lambda d: d["interactions"][0]["response"].update(usage={"input_tokens": "many"}), "interactions[0].response.usage.input_tokens must be a number"),
        (lambda d: d["interactions"][2]["response"].update(cost_usd=float("nan")), "interactions[2].response.cost_usd must be a number"),
        (lambda d: d["interactions"][1]["request"].update(messages_from={"call": 9, "count": 1}), "interactions[1].request.messages_from.call"),
        (lambda d: d.update(tool_schemas=[]), "tool_schemas must be an object"),
        (lambda d: d.update(run="two"), "run must be a whole number"),
        (lambda d: d.update(recorded_tools={"calls": [{"server": 1}]}), "recorded_tools.calls[0].server must be a string"),
    ],
)
def test_a_cassette_of_the_wrong_shape_names_the_file_and_the_field(tmp_path: Path, change, field: str) -> None:
    """F18."""
    path = tmp_path / "c.json"
    recorder = _cassette(path, "record")
    _conversation(recorder, 3)
    recorder.close()
    document = json.loads(path.read_text(encoding="utf-8"))
    change(document)
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(cassettes.CassetteFileError) as caught:
        cassettes.load(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: not a valid cassette: ") and field in message and "\n" not in message


def test_a_cassette_that_cannot_be_written_raises_one_line(tmp_path: Path) -> None:
    """F1: the write error is a CassetteWriteError naming the file and the reason, not an OSError."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the folder should be", encoding="utf-8")
    recorder = _cassette(blocker / "sub" / "c.json", "record")
    _conversation(recorder, 1)
    with pytest.raises(cassettes.CassetteWriteError) as caught:
        recorder.close()
    assert str(caught.value).startswith("cassette c.json could not be written: Not a directory") and "\n" not in str(caught.value)


def test_redaction_leaves_prose_and_expected_texts_alone() -> None:
    """F12: credential-shaped values go, prose stays; an assertion's expected text is never redacted."""
    scrub = Redactor({"hunter2-long-secret": "DB_PASSWORD"})
    for prose in (PROSE.split(" Code")[0], "Authorization: pending.", "api_key: missing", "bearer: the customer", "Basic: checking account"):
        assert scrub.text(prose) == prose, prose
    for secret, shown in (
        ("Authorization: Bearer abcdefghijklmnopqrstuvwxyz", "Authorization: Bearer [REDACTED]"),
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "Authorization: Basic [REDACTED]"),
        ('{"api_key": "a1b2c3d4e5f6"}', '{"api_key": "[REDACTED]"}'),
        ("x-api-key=Zx81Kq0pLm", "x-api-key=[REDACTED]"),
        ("Code Authorization: Zx81Kq0pLm.", "Code Authorization: [REDACTED]."),
        ("pw hunter2-long-secret", "pw [REDACTED:DB_PASSWORD]"),
    ):
        assert scrub.text(secret) == shown, secret
    assert scrub.text("said Authorization: Zx81Kq0pLm ok") == "said Authorization: [REDACTED] ok"
    keeping = scrub.keeping(["Authorization: Zx81Kq0pLm", "hunter"])
    assert keeping.text("said Authorization: Zx81Kq0pLm ok") == "said Authorization: Zx81Kq0pLm ok"
    assert keeping.text("pw hunter2-long-secret") == "pw [REDACTED:DB_PASSWORD]"  # a secret containing a kept text still goes


def test_names_cannot_collide_and_a_collision_fails_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """F4: lossy names keep a hash; duplicates use a separator no slug contains; two
    conversations mapping to one file fail the second loudly."""
    from behave.parser import parse_feature

    from behave_aitest.config import load_config

    monkeypatch.chdir(tmp_path)  # behave names feature files relative to the working directory
    features = tmp_path / "features"
    features.mkdir()
    directory = features / "cassettes"
    folders = {name: cassettes.feature_key(features / name, directory, tmp_path)[0] for name in ("日本.feature", "中国.feature", "a b.feature", "a-b.feature")}
    assert len(set(folders.values())) == 4 and folders["a-b.feature"] == "a-b", folders
    dups = parse_feature("Feature: D\n  Scenario: Check\n  Scenario: Check\n  Scenario: Check 2\n", filename=str(features / "d.feature"))
    stems = [cassettes.scenario_stem(dups, s) for s in dups.walk_scenarios()]
    assert len(set(stems)) == 3 and stems[0] == "check", stems
    # Bank.feature and bank.feature are one folder on a case-insensitive disk (macOS, Windows).
    (tmp_path / "pyproject.toml").write_text('[tool.behave_aitest]\ncassette = "record"\n', encoding="utf-8")
    library = cassettes.CassetteLibrary(load_config({}, cwd=tmp_path), cwd=tmp_path)
    upper = parse_feature("Feature: U\n  Scenario: Same\n", filename=str(features / "Bank.feature"))
    lower = parse_feature("Feature: L\n  Scenario: Same\n", filename=str(features / "bank.feature"))
    library.open(upper, upper.scenarios[0])
    clash = library.open(lower, lower.scenarios[0])
    with pytest.raises(cassettes.CassetteMiss, match=r"two conversations map to cassette features/cassettes/bank/same.json"):
        _conversation(clash, 1)
    assert not (directory / "bank" / "same.json").exists() and clash.close() is not None


def test_prune_deletes_only_cassettes_it_can_read(tmp_path: Path) -> None:
    """F5: a newer version, merge-conflict markers, other JSON and test data are skipped, not deleted."""
    features = tmp_path / "features"
    (features / "data").mkdir(parents=True)
    (tmp_path / "pyproject.toml").write_text("[tool.behave_aitest]\n", encoding="utf-8")
    (features / "bank.feature").write_text("Feature: Bank\n  Scenario: Keep\n    When the user says \"hi\"\n", encoding="utf-8")
    base = features / "cassettes" / "bank"
    base.mkdir(parents=True)
    header = {"format": cassettes.FORMAT, "version": cassettes.VERSION, "feature": "features/bank.feature", "feature_name": "Bank",
              "session": False, "flow_model": None, "run": 1, "interactions": []}
    (base / "keep.json").write_text(json.dumps({**header, "scenario": "Keep"}), encoding="utf-8")
    (base / "gone.json").write_text(json.dumps({**header, "scenario": "Gone"}), encoding="utf-8")
    (base / "newer.json").write_text(json.dumps({**header, "scenario": "Gone", "version": 99}), encoding="utf-8")
    (base / "conflict.json").write_text("<<<<<<< HEAD\n{}\n=======\n{}\n>>>>>>> other\n", encoding="utf-8")
    (base / "other.json").write_text('{"hello": "world"}', encoding="utf-8")
    (features / "data" / "accounts.json").write_text('[{"id": 1}]', encoding="utf-8")

    def prune(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "behave_aitest.cli", "cassettes", "prune", *args], cwd=tmp_path, capture_output=True, text=True)

    done = prune("features")
    assert done.returncode == 0, done.stdout + done.stderr
    left = sorted(p.relative_to(features).as_posix() for p in features.rglob("*.json"))
    assert left == ["cassettes/bank/conflict.json", "cassettes/bank/keep.json", "cassettes/bank/newer.json", "cassettes/bank/other.json", "data/accounts.json"]
    assert "removed: features/cassettes/bank/gone.json (features/bank.feature has no scenario named 'Gone' any more)" in done.stdout
    for name in ("cassettes/bank/newer.json", "cassettes/bank/conflict.json", "cassettes/bank/other.json", "data/accounts.json"):
        assert f"skipped (cannot read / not a cassette): features/{name}" in done.stdout, done.stdout
    assert "1 cassette(s) removed, 1 kept, 4 skipped." in done.stdout
    done = prune("--check")
    assert done.returncode == 0 and "0 stale cassette(s), 1 in use, 3 skipped." in done.stdout, done.stdout


def test_a_cassette_is_valid_json_whatever_the_numbers() -> None:
    """F19, cassette half: a NaN or an infinity (say, in a tool's arguments) is written as null,
    never as the ``NaN`` that strict JSON readers reject; a lone surrogate still round-trips."""
    import json as _json

    from behave_aitest.record.cassettes import dumps

    text = dumps({"arguments": {"amount": float("nan"), "limit": float("inf")}, "text": "cut \ud800 here", "cost": 1.5})

    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    back = _json.loads(text, parse_constant=refuse)
    assert back == {"arguments": {"amount": None, "limit": None}, "text": "cut \ud800 here", "cost": 1.5}
