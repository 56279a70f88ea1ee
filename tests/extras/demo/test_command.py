"""`caf-hpc demo`, the main job: a real calibration (collector jobs, then algorithms) on the local default, and
fail-fast, in both flavours."""
from __future__ import annotations

import json

import pytest

from caf_hpc.cli import main
from tests.helpers.processes import ctrl_c_when_ready, left_running, new_mark, stderr_lines
from tests.helpers.requirements import require_root

FLAVOURS = [pytest.param("python"), pytest.param("cpp", marks=pytest.mark.root)]
#: CAF's layout below the demo's --output (CAF's output_dir): <output>/<calibration>/<iteration>/...
ITERATION = ("demo", "0")


@pytest.fixture(params=FLAVOURS)
def flavour(request):
    if request.param == "cpp":
        require_root()
    return request.param


def test_demo_calibrates_three_dependent_algorithms(tmp_path, capsys, flavour):
    code = main(["demo", "--output", str(tmp_path / "demo"), "--runs", "6", "--flavour", flavour])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "final state: COMPLETED" in out
    assert "(1,1) - (1,6)  6 runs, one IoV each" in out and "0 ok" in out
    iteration = tmp_path.joinpath("demo", *ITERATION)
    output = iteration / "algorithm_output"
    database = output / "outputdb" / "database.txt"
    assert [line.split()[0] for line in database.read_text().splitlines()][-2:] == [
        "dbstore/Gains", "dbstore/TimeOffsets"]
    assert "Pedestals    missing" not in out and "wall time" in out
    suffix = {"cpp": "root", "python": "json"}[flavour]
    assert (output / "outputdb" / f"dbstore_Gains_rev_1.{suffix}").exists()
    assert (tmp_path / "demo" / "demo" / "outputdb" / "database.txt").exists()  # CAF's final copy
    assert len(list((tmp_path / "demo" / "raw").glob("raw_e*_r*.json"))) == 12  # a raw hit file per run


def test_the_collector_step_ran_as_cafs_does_before_the_algorithms(tmp_path, capsys, flavour):
    """12 runs, 10 per collector job: 2 subjobs, each leaving CAF's files and its collector output."""
    assert main(["demo", "--output", str(tmp_path / "demo"), "--runs", "6", "--flavour", flavour]) == 0
    out = capsys.readouterr().out
    collector = tmp_path.joinpath("demo", *ITERATION, "collector_output", "default")
    output = {"cpp": "CollectorOutput.root", "python": "CollectorOutput.json"}[flavour]
    subjobs = sorted(p.name for p in collector.iterdir() if p.is_dir())
    assert subjobs == ["0", "1"]
    for name in subjobs:
        subjob = collector / name
        for file in ("submit.sh", "stdout", "stderr", "__BACKEND_INPUT_FILES__.json", "collector_config.json",
                     "run_collector_path.py", "collect.path", output):
            assert (subjob / file).exists(), (name, file)
        assert (subjob / "__BACKEND_CMD_EXIT_STATUS__").read_text().strip() == "0"
        assert "basf2" in (subjob / "submit.sh").read_text() and "b2setup" in (subjob / "submit.sh").read_text()
    runs = json.loads((collector.parent.parent / "collector_input" / "default" / "collector_job.json").read_text())
    assert sorted(len(sj["input_files"]) for sj in runs["subjobs"]) == [2, 10]
    assert f"collector: 2/2 job(s) completed (2 output files in {collector}/<job>/)" in out
    assert "through 2 collector job(s)" in out and "collector step" in out
    assert "  collector: 2/2 jobs done" in out  # the live view's line, as plain text off a terminal
    if flavour == "cpp":
        from caf_hpc.extras.standins import cpp

        ROOT = cpp.import_root()
        handle = ROOT.TFile.Open(str(collector / "0" / output))
        assert handle.Get("DemoCollector/signal_hits") is not None  # laid out as CAF's collector output
        handle.Close()


def test_the_demo_leaves_the_environment_as_it_found_it(tmp_path, monkeypatch):
    import os

    monkeypatch.delenv("BELLE2_TOOLS", raising=False)
    monkeypatch.setenv("BELLE2_RELEASE", "mine")
    assert main(["demo", "--output", str(tmp_path / "demo"), "--runs", "1", "--flavour", "python"]) == 0
    assert "BELLE2_TOOLS" not in os.environ and os.environ["BELLE2_RELEASE"] == "mine"
    assert os.getcwd() != str(tmp_path / "demo")  # CAF worked there, and came back


def test_demo_says_which_flavour_it_ran(tmp_path, capsys, flavour):
    main(["demo", "--output", str(tmp_path / "demo"), "--runs", "2", "--flavour", flavour])
    out = capsys.readouterr().out
    expected = {"cpp": "flavour: C++ algorithms compiled by ROOT 6.", "python": "flavour: Python algorithms"}
    assert expected[flavour] in out


def test_cpp_flavour_output_reaches_the_algorithm_logs(tmp_path, capsys, root):
    assert main(["demo", "--output", str(tmp_path / "demo"), "--runs", "3", "--flavour", "cpp"]) == 0
    out = capsys.readouterr().out
    output = tmp_path.joinpath("demo", *ITERATION, "algorithm_output")
    gain = (output / "GainCalibration_stdout").read_text()
    assert "GainCalibration: read Pedestals payloads for 6 runs" in gain            # std::cout
    assert "GainCalibration: 16 gains, line resolution" in gain                     # printf
    assert "[INFO] caf: Executing GainCalibration over 6 runs" in gain              # basf2 logging, same file
    assert "line resolution" not in out


def test_auto_flavour_is_cpp_exactly_when_root_is_installed(monkeypatch):
    from caf_hpc.extras.demo import run
    from caf_hpc.extras.standins import cpp

    monkeypatch.setattr(cpp, "available", lambda: True)
    assert run.choose_flavour("auto") == "cpp"
    monkeypatch.setattr(cpp, "available", lambda: False)
    assert run.choose_flavour("auto") == "python"


def test_cpp_flavour_without_root_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    from caf_hpc.extras.standins import cpp

    monkeypatch.setattr(cpp, "available", lambda: False)
    assert main(["demo", "--output", str(tmp_path / "demo"), "--flavour", "cpp"]) == 2
    assert "pip install 'caf-hpc[root]'" in capsys.readouterr().err


def test_demo_fail_shows_fail_fast_and_exits_non_zero(tmp_path, capsys, flavour):
    code = main(["demo", "--output", str(tmp_path / "demo"), "--runs", "3", "--fail", "GainCalibration",
                 "--flavour", flavour])
    out = capsys.readouterr().out
    assert code == 1
    assert "GainCalibration        (1,1) - (2,3)" in out and "3 failure" in out
    assert "TimeOffsetCalibration  (not run: an earlier algorithm failed)" in out
    assert "final state: FAILED" in out


def test_output_that_is_a_file_is_refused_with_one_line(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("")
    assert main(["demo", "--output", str(afile), "--flavour", "python"]) == 2
    assert capsys.readouterr().err == (f"caf-hpc: error: --output {afile} is a file, not a directory; give a "
                                       "directory (it is made if missing)\n")


def test_output_that_cannot_be_made_is_refused_with_one_line(capsys):
    assert main(["demo", "--output", "/proc/nope", "--flavour", "python"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("caf-hpc: error: --output /proc/nope: cannot make or write that directory (")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_second_demo_in_the_same_directory_is_refused_at_once(tmp_path):
    import subprocess
    import sys

    command = [sys.executable, "-m", "caf_hpc.cli", "demo", "--output", str(tmp_path / "demo"), "--flavour", "python"]
    first = subprocess.Popen([*command, "--seed", "1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert first.stdout.readline().startswith("caf-hpc demo: simulating")  # it holds the directory now
        second = subprocess.run([*command, "--seed", "2"], capture_output=True, text=True, timeout=60)
        assert second.returncode == 2 and f"is in use by caf-hpc demo, process {first.pid}" in second.stderr
        output, _ = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0 and "final state: COMPLETED" in output
    database = tmp_path.joinpath("demo", *ITERATION, "algorithm_output", "outputdb", "database.txt")
    assert len(database.read_text().splitlines()) == 42  # 40 pedestals, a gain and a time offset: once each


def _starting_its_cluster(process) -> bool:
    import psutil

    try:
        children = psutil.Process(process.pid).children()
        return any("distributed.Scheduler" in " ".join(child.cmdline()) for child in children)
    except psutil.Error:
        return False


@pytest.mark.parametrize("moment", ["algorithm running", "cluster starting"])
def test_ctrl_c_at_a_terminal_is_one_line_exit_130_within_seconds_and_leaves_nothing_running(tmp_path, moment):
    """Ctrl-C as a terminal sends it, to the whole process group: the local cluster's scheduler, nannies
    and workers used to get it too, and the prompt came back after 30 s and 3 to 8 tracebacks; cut while
    the cluster started, its scheduler ran on for good. The bound is for a busy 2-core machine; a quiet
    one takes 0.1 to 0.3 s (up to the rest of the cluster's start, a second or two, when it was starting)."""
    import os
    import subprocess
    import sys

    variable, mark = new_mark()
    env = dict(os.environ, **{variable: mark})
    command = [sys.executable, "-m", "caf_hpc.cli", "demo", "--output", str(tmp_path / "demo"), "--flavour", "python",
               "--runs", "300", "--workers", "2"]
    demo = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    log = tmp_path.joinpath("demo", *ITERATION, "algorithm_output", "PedestalCalibration_stdout")
    if moment == "algorithm running":  # the first algorithm's strategy runs on a worker (its 600 runs take seconds)
        ready, line = lambda: log.exists() and log.stat().st_size > 0, \
            "; stopped calibration demo at algorithm PedestalCalibration"
    else:  # started by the collector step, before any run: nothing to name yet
        ready, line = lambda: _starting_its_cluster(demo), ""
    _, stderr, took = ctrl_c_when_ready(demo, ready)
    assert demo.returncode == 130, stderr
    assert stderr_lines(stderr) == [f"caf-hpc: interrupted (Ctrl-C){line}"], stderr
    assert took < 5, f"took {took:.1f} s"
    assert left_running(mark, seconds=1) == []  # the scheduler, workers, fork servers and the strategy's process


def test_demo_writes_its_report_with_the_truth_beside_the_constants(tmp_path, capsys):
    assert main(["demo", "--output", str(tmp_path / "demo"), "--runs", "3", "--flavour", "python"]) == 0
    out = capsys.readouterr().out
    page = tmp_path / "demo" / "report.html"
    assert out.rstrip().endswith(f"report (timeline, constants against run): {page}")
    text = page.read_text()
    assert "simulated truth" in text and "constants-Pedestals-pedestal" in text and "constants-Gains-gain" in text


def test_demo_shows_each_algorithm_as_it_goes_in_plain_lines_when_not_on_a_terminal(tmp_path, capsys):
    assert main(["demo", "--output", str(tmp_path / "demo"), "--runs", "3", "--flavour", "python"]) == 0
    lines = capsys.readouterr().out.splitlines()
    mine = [line.strip() for line in lines if line.startswith("  ") and line.strip().split(":")[0] in
            ("PedestalCalibration", "GainCalibration", "TimeOffsetCalibration")]
    names = [line.split(":")[0] for line in mine]
    assert names.index("PedestalCalibration") < names.index("GainCalibration") < names.index("TimeOffsetCalibration")
    assert any(line.startswith("PedestalCalibration: running on ") for line in mine), mine
    assert any(line.startswith("  Dask dashboard: http://127.0.0.1:") for line in lines)  # once, at the start
    assert any(line.startswith("TimeOffsetCalibration: COMPLETED on ") and "1 result(s) in" in line
               for line in mine), mine


def _demo_on_a_terminal(output, *flags: str, columns: int = 120, rows: int = 200) -> list:
    """Runs the demo on a pseudo-terminal of ``columns`` x ``rows`` and returns the lines left on its
    screen at the end, as a terminal shows them (pyte, a VT100 emulator, plays the output back):
    what rich's cursor movements overwrote is gone, what they left behind is there."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios

    import pyte

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    environment = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    demo = subprocess.Popen([sys.executable, "-m", "caf_hpc.cli", "demo", "--output", str(output),
                             "--runs", "3", "--flavour", "python", *flags], stdout=follower, stderr=follower,
                            env=dict(environment, TERM="xterm"))
    os.close(follower)
    chunks = []
    try:
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: the demo ended
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert demo.wait(timeout=120) == 0, b"".join(chunks).decode(errors="replace")
    finally:
        if demo.poll() is None:
            demo.kill()
        os.close(leader)
    raw = b"".join(chunks).decode(errors="replace")
    assert "\x1b[" in raw  # rich's live table, drawn with terminal codes
    screen = pyte.Screen(columns, rows)
    pyte.Stream(screen).feed(raw)  # the pty turned each newline into CR LF, as a terminal expects
    lines = [line.rstrip() for line in screen.display]
    assert not lines[-1], "the screen filled up; give it more rows"
    return lines


@pytest.mark.parametrize("flags", [(), ("--verbose",)], ids=["plain", "verbose"])
def test_demo_on_a_terminal_leaves_one_clean_table_and_the_dashboard_once(tmp_path, flags):
    lines = _demo_on_a_terminal(tmp_path / "demo", *flags)
    shown = "\n".join(line for line in lines if line)
    title = "collector step, then algorithm step"
    assert [line for line in lines if line.strip() == title] == [title], shown
    assert len([line for line in lines if "Dask dashboard: http://127.0.0.1:" in line]) == 1, shown
    tops = [i for i, line in enumerate(lines) if line.startswith("\u250f")]      # ┏ : the table's top border
    bottoms = [i for i, line in enumerate(lines) if line.startswith("\u2514")]   # └ : its bottom border
    assert len(tops) == 1 and len(bottoms) == 1, shown
    table = lines[tops[0] - 1:bottoms[0] + 1]
    assert table[0] == title, shown
    rows = [line for line in table if line.startswith("\u2502")]                # │ : a row of the table
    assert len(rows) == 4 and "1/1 jobs done" in rows[0], shown                  # the collector, then 3 algorithms
    assert all("COMPLETED" in row for row in rows[1:]), shown
    dashboard = next(i for i, line in enumerate(lines) if "Dask dashboard:" in line)
    assert dashboard < tops[0] and "final state: COMPLETED" in shown


@pytest.mark.parametrize("flags, message", [
    (["--workers", "0"], "--workers must be a whole number of at least 1, got 0"),
    (["--timeout", "0"], "--timeout must be a positive number of seconds, got 0.0"),
])
def test_a_bad_flag_value_is_named_by_the_flag_typed(tmp_path, capsys, flags, message):
    assert main(["demo", "--output", str(tmp_path / "demo"), "--flavour", "python", *flags]) == 2
    assert capsys.readouterr().err == f"caf-hpc: error: {message}\n"


def test_the_steering_api_names_the_setting_it_was_given():
    from caf_hpc import SettingsError, runner_for

    with pytest.raises(SettingsError, match=r"^n_workers must be a whole number of at least 1, got 0$"):
        runner_for(n_workers=0)


def test_ctrl_c_during_the_collector_step_is_one_line_and_exit_130(tmp_path):
    """Group SIGINT, as a terminal sends it, while the collector jobs run: one line naming them, and nothing left."""
    import os
    import subprocess
    import sys

    variable, mark = new_mark()
    command = [sys.executable, "-m", "caf_hpc.cli", "demo", "--output", str(tmp_path / "demo"), "--flavour", "python",
               "--runs", "20"]
    demo = subprocess.Popen(command, env=dict(os.environ, **{variable: mark}), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    collector = tmp_path.joinpath("demo", *ITERATION, "collector_output", "default")
    _, stderr, took = ctrl_c_when_ready(demo, lambda: any(collector.glob("*/stdout")))  # collector jobs run
    assert demo.returncode == 130 and took < 5, (took, stderr)
    lines = stderr_lines(stderr)
    assert len(lines) == 1 and lines[0].startswith("caf-hpc: interrupted (Ctrl-C)"), stderr
    assert "collector job(s) of demo_default_Iteration_0" in lines[0], stderr
    assert left_running(mark, seconds=5) == []
    assert not (collector.parent.parent / "algorithm_output").exists()  # no algorithm started after it
