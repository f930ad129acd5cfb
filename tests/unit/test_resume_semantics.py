"""What resume makes of a run that was cut short, rolled back, or already finished on a host.

The journal fold (:func:`drp.journal.replay`) decides what is done, in doubt or to run
again; the engine (on FakeTransport) then acts on it. Each test feeds the fold the
events a real session would have written, or a whole first session's events.
"""

from __future__ import annotations

import re
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from test_engine import RUN_ID, World, world

from drp.cli.resume import host_resumes
from drp.engine.events import Event, EventType
from drp.engine.options import HostResume
from drp.journal import JournalWriter, Record, RunState, replay, run_dir
from drp.results import RunStatus, StepStatus
from drp.testing import Reply
from drp.transport.attempts import Leftover

E = EventType
T0 = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)


def ev(kind: EventType, n: float, **kw: object) -> Event:
    return Event(kind, RUN_ID, ts=T0 + timedelta(seconds=n), **kw)  # type: ignore[arg-type]


def fold(events: list[Event]) -> RunState:
    """Replay ``events`` as a real journal writer stores them."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        JournalWriter.create(run_dir(Path(tmp), RUN_ID), "ana@laptop") as writer,
    ):
        return replay([writer.append(e) for e in events])


def step_started(n: float, step: str, kind: str = "run") -> Event:
    return ev(E.STEP_STARTED, n, host="h1", step=step, data={"kind": kind})


def step_finished(n: float, step: str, outcome: str) -> Event:
    return ev(E.STEP_FINISHED, n, host="h1", step=step, outcome=outcome, data={})


def test_a_step_cut_short_while_acting_is_in_doubt() -> None:
    for outcome in ("interrupted", "unreachable"):
        state = fold([step_started(1, "wipe"), step_finished(2, "wipe", outcome)])
        assert state.in_doubt("h1") == {"wipe"}, outcome
        assert "wipe" not in state.done_steps("h1")


def test_a_step_interrupted_while_waiting_for_a_human_is_not_in_doubt() -> None:
    at_confirm = [
        step_started(1, "wipe"),
        ev(E.STEP_WAITING, 2, host="h1", step="wipe", data={"kind": "confirm"}),
        step_finished(3, "wipe", "interrupted"),
    ]
    manual = [step_started(1, "swap", kind="manual"), step_finished(2, "swap", "interrupted")]
    assert fold(at_confirm).in_doubt("h1") == set()
    assert fold(manual).in_doubt("h1") == set()


def test_a_rolled_back_step_is_run_again_and_a_failed_rollback_is_in_doubt() -> None:
    records = [
        step_started(1, "a"),
        step_finished(2, "a", "ok"),
        step_started(3, "b"),
        step_finished(4, "b", "ok"),
        step_started(5, "c"),
        step_finished(6, "c", "failed"),
        ev(E.ROLLBACK_FINISHED, 7, host="h1", step="b", outcome="ok"),
        ev(E.ROLLBACK_FINISHED, 8, host="h1", step="a", outcome="failed"),
    ]
    state = fold(records)
    assert state.done_steps("h1") == set()
    assert state.host("h1").steps["b"].status is StepStatus.ROLLED_BACK
    assert state.in_doubt("h1") == {"a"}


def test_a_step_skipped_as_done_keeps_the_outcome_of_the_session_that_ran_it() -> None:
    records = [
        step_started(1, "a"),
        step_finished(2, "a", "ok"),
        step_started(3, "g", kind="manual"),
        step_finished(4, "g", "paused"),
        # the second session: a is skipped as done, the gate pauses again
        ev(E.RUN_RESUMED, 10),
        ev(E.STEP_SKIPPED, 11, host="h1", step="a", outcome="skipped", data={"reason": "done"}),
        step_finished(12, "g", "paused"),
    ]
    state = fold(records)
    assert state.acted_steps("h1") == {"a"}
    assert state.done_steps("h1") == {"a"}


def test_resume_journals_one_record_for_the_done_steps_and_a_third_session_keeps_them(
    tmp_path: Path,
) -> None:
    many = "".join(f"  - {{id: s{i:03d}, run: step-{i}}}\n" for i in range(200))
    text = (
        "name: t\ntargets: all\nsteps:\n"
        "  - {id: a, run: probe, capture: {v: 'v=(\\S+)'}}\n"
        f"{many}"
        "  - {id: b, run: 'use {{ captures.v }}'}\n"
    )
    journal: list[Record] = []
    with JournalWriter.create(run_dir(tmp_path / "state", RUN_ID), "ana@laptop") as writer:

        def session(state: RunState | None, *, fails: bool) -> tuple[int, list[str]]:
            """One session on fakes, resuming from ``state`` as ``drp resume`` does,
            journaled; its record count and the commands it ran."""
            w = world(tmp_path, text)
            w.fakes["h1"].on("^probe", Reply(0, "v=42\n"))
            w.fakes["h1"].on("^use", Reply(1 if fails else 0))
            w.execute(resume=None if state is None else host_resumes(w.plan, state))
            journal.extend(writer.append(e) for e in w.events)
            return len(w.events), w.fakes["h1"].commands

        _, ran = session(None, fails=True)  # a, the 200 steps, then b fails
        assert len(ran) == 202
        written, ran = session(replay(journal), fails=True)  # b fails again
        assert ran == ["use 42"]
        assert written < 15  # not one record per step already done
        third = replay(journal)
        assert third.captures("h1") == {"v": "42"}
        assert len(third.done_steps("h1")) == 201
        _, ran = session(third, fails=False)
        assert ran == ["use 42"]
        assert replay(journal).done_steps("h1") == {"a", "b"} | {f"s{i:03d}" for i in range(200)}


ROLLBACK_AFTER_GATE = """
name: t
targets: all
defaults: {on_failure: rollback}
steps:
  - {id: a, run: do-a, rollback: undo-a}
  - {id: g, manual: swap the disk}
  - {id: b, run: do-b, rollback: undo-b}
  - {id: c, run: do-c}
"""


def test_rollback_after_a_resume_undoes_what_the_first_session_did(tmp_path: Path) -> None:
    w = world(tmp_path, ROLLBACK_AFTER_GATE)
    w.fakes["h1"].on("do-c", Reply(exit_code=1))
    resume = {
        "h1": HostResume(done=frozenset({"a"}), acted=frozenset({"a"})),
    }
    assert w.execute(resume=resume, approve=frozenset({"g"})).status is RunStatus.FAILED
    commands = w.fakes["h1"].commands
    assert "do-a" not in commands  # done: not run again
    assert [c for c in commands if c.startswith("undo")] == ["undo-b", "undo-a"]


def test_a_host_whose_every_step_is_done_is_not_contacted(tmp_path: Path) -> None:
    w: World = world(tmp_path, ROLLBACK_AFTER_GATE, hosts=("h1", "h2"))
    everything = frozenset({"a", "g", "b", "c"})
    resume = {"h1": HostResume(done=everything, acted=everything), "h2": HostResume()}
    assert w.execute(resume=resume, approve=frozenset({"g"})).status is RunStatus.OK
    assert w.fakes["h1"].commands == []
    assert w.fakes["h1"].connects == 0
    assert "do-c" in w.fakes["h2"].commands
    done = w.of(EventType.HOST_FINISHED, host="h1")
    assert done and "nothing left to do" in done[-1].message


# -- an earlier attempt still running on the host ----------------------------------------

TWO_STEPS = """
name: t
targets: all
steps:
  - {id: a, run: do-a}
  - {id: b, run: do-b}
"""


def _still_running(w: World) -> Leftover:
    earlier = Leftover("feed", 4242, 30, None, "a action 1")
    w.fakes["h1"].still_running = [earlier]
    return earlier


def test_without_a_terminal_the_step_in_doubt_pauses_saying_its_first_attempt_runs(
    tmp_path: Path,
) -> None:
    w = world(tmp_path, TWO_STEPS)
    _still_running(w)
    result = w.execute(resume={"h1": HostResume(in_doubt=frozenset({"a"}))})
    assert result.status is RunStatus.PAUSED
    assert w.fakes["h1"].commands == []  # nothing beside the first attempt
    asked = w.of(EventType.STEP_WAITING, step="a")
    assert asked and "STILL RUNNING" in asked[-1].message and "4242" in asked[-1].message


def test_kill_in_doubt_kills_the_first_attempt_before_the_retry(tmp_path: Path) -> None:
    w = world(tmp_path, TWO_STEPS)
    _still_running(w)
    resume = {"h1": HostResume(in_doubt=frozenset({"a"}))}
    result = w.execute(resume=resume, kill_in_doubt=True, in_doubt="retry")
    assert result.status is RunStatus.OK
    assert w.fakes["h1"].still_running == []
    assert w.fakes["h1"].commands == ["do-a", "do-b"]
    notes = [e.message for e in w.of(EventType.STEP_PROGRESS, step="a")]
    assert any(
        m.startswith("killed the earlier action of step a (process group 4242") for m in notes
    )


def test_the_in_doubt_question_names_the_answers_the_prompt_takes(tmp_path: Path) -> None:
    from drp.engine.options import GATE_CHOICES

    w = world(tmp_path, TWO_STEPS)
    w.execute(resume={"h1": HostResume(in_doubt=frozenset({"a"}))})
    asked = w.of(EventType.STEP_WAITING, step="a")
    assert asked, "the step in doubt was not asked about"
    for word in GATE_CHOICES["in-doubt"]:
        assert re.search(rf"\b{word}\b", asked[-1].message), (word, asked[-1].message)
    assert "Approve" not in asked[-1].message
