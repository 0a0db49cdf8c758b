"""RunLogger on resume (issue 14): after a kill -9 and a resume from the checkpoint at step S,
metrics.jsonl holds one row per step and TensorBoard discards the killed run's events past S."""

import glob
import json
import os
import struct

import pytest

from jaxgan.training import logs
from jaxgan.training.logs import RunLogger


def _rows(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def _write(workdir, text):
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
        f.write(text)


def _events(path):
    """The Event protos of one TensorBoard event file (TFRecord framing: length, crc, data, crc)."""
    from tensorboardX.proto import event_pb2

    out = []
    with open(path, "rb") as f:
        while header := f.read(12):
            (length,) = struct.unpack("<Q", header[:8])
            data = f.read(length)
            f.read(4)
            event = event_pb2.Event()
            event.ParseFromString(data)
            out.append(event)
    return out


def _scalar_steps(workdir, tag):
    """Steps of ``tag`` as TensorBoard shows them: a SessionLog START at step P in a later file
    discards the earlier files' events at steps >= P (what purge_step writes)."""
    from tensorboardX.proto import event_pb2

    points = []
    files = sorted(glob.glob(os.path.join(workdir, "tensorboard", "events.*")))  # TB's order
    for path in files:
        for e in _events(path):
            if e.HasField("session_log") and e.session_log.status == event_pb2.SessionLog.START:
                points = [p for p in points if p < e.step]
            for v in e.summary.value:
                if v.tag == tag:
                    points.append(e.step)
    return points


def _log_steps(logger, steps):
    for s in steps:
        logger.log({"step": s, "images_seen": 10 * s, "critic_loss": float(s)})


def test_kill_and_resume_leaves_one_row_and_one_event_per_step(tmp_path):
    wd = str(tmp_path)
    first = RunLogger(wd, 20, quiet=True)
    _log_steps(first, range(1, 9))  # checkpoint at 5, killed after 8: the logger never closed
    # The worst case for the resume: all 8 events reached the disk before the kill. (tensorboardX's
    # flush() does not drain its writer thread's queue; closing the writer does.)
    first._tb.close()
    with open(os.path.join(wd, "metrics.jsonl"), "a") as f:
        f.write('{"step": 9, "images_se')  # the row the kill cut short
    resumed = RunLogger(wd, 20, 5, quiet=True)
    _log_steps(resumed, range(6, 11))
    resumed.close()
    assert [r["step"] for r in _rows(wd)] == list(range(1, 11))
    assert _scalar_steps(wd, "critic_loss") == list(range(1, 11))


def test_rows_past_the_resume_step_are_dropped_and_the_rest_kept_verbatim(tmp_path, capsys):
    wd = str(tmp_path)
    rows = [{"step": s, "x": s} for s in range(1, 8)] + [{"note": "no step"}]
    rows.insert(5, {"step": 5, "eval/swd": 0.5})  # an evaluation logged at step 5
    text = "".join(json.dumps(r) + "\n" for r in rows)
    _write(wd, text)
    RunLogger(wd, 20, 5, quiet=True, tensorboard=False).close()
    os.chmod(os.path.join(wd, "metrics.jsonl"), 0o644)
    kept = [json.loads(line) for line in text.splitlines() if json.loads(line).get("step", 0) <= 5]
    assert _rows(wd) == kept  # both rows at step 5 stay, the row without a step stays
    assert [p for p in os.listdir(wd) if p != "metrics.jsonl"] == []  # no temporary file left
    assert os.stat(os.path.join(wd, "metrics.jsonl")).st_mode & 0o777 == 0o644
    # Nothing past the resume step: the file is not rewritten.
    before = os.stat(os.path.join(wd, "metrics.jsonl"))
    RunLogger(wd, 20, 5, quiet=True, tensorboard=False).close()
    after = os.stat(os.path.join(wd, "metrics.jsonl"))  # a rewrite is a new file (os.replace)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_rerun_without_a_checkpoint_drops_the_dead_runs_rows(tmp_path):
    """A run that died before its first checkpoint starts again at step 0: its rows go."""
    wd = str(tmp_path)
    text = "".join(json.dumps({"step": s}) + "\n" for s in range(1, 4)) + '{"note": 1}\n'
    _write(wd, text)
    RunLogger(wd, 20, 1, quiet=True, enabled=False).close()  # not process 0: never writes
    assert open(os.path.join(wd, "metrics.jsonl")).read() == text
    RunLogger(wd, 20, 0, quiet=True, tensorboard=False).close()
    assert _rows(wd) == [{"note": 1}]


def test_the_rewrite_is_atomic(tmp_path, monkeypatch):
    wd = str(tmp_path)
    text = "".join(json.dumps({"step": s}) + "\n" for s in range(1, 6))
    _write(wd, text)

    def fail(src, dst):
        raise OSError("killed between the write and the rename")

    monkeypatch.setattr(logs.os, "replace", fail)
    with pytest.raises(OSError, match="killed"):
        RunLogger(wd, 20, 2, quiet=True, tensorboard=False)
    assert open(os.path.join(wd, "metrics.jsonl")).read() == text  # the old file, whole
    assert os.listdir(wd) == ["metrics.jsonl"]
    monkeypatch.undo()
    assert logs.drop_rows_after(os.path.join(wd, "metrics.jsonl"), 2) == 3
    assert [r["step"] for r in _rows(wd)] == [1, 2]
    assert logs.drop_rows_after(os.path.join(wd, "missing.jsonl"), 2) == 0


@pytest.mark.parametrize("start", [0, 7])
def test_tensorboard_purges_past_the_resume_step(start, tmp_path):
    from tensorboardX.proto import event_pb2

    logger = RunLogger(str(tmp_path), 20, start, quiet=True)
    _log_steps(logger, [start + 1])
    logger.close()
    (path,) = glob.glob(os.path.join(str(tmp_path), "tensorboard", "events.*"))
    starts = [
        e.step
        for e in _events(path)
        if e.HasField("session_log") and e.session_log.status == event_pb2.SessionLog.START
    ]
    assert starts == [start + 1]
