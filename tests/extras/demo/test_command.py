"""`caf-hpc demo`, the main job: a real calibration (collector jobs, then algorithms) on the local default, and
fail-fast, in both flavours."""
from __future__ import annotations

import json

import pytest
from tests.helpers.processes import interrupt_when_ready, left_running, new_mark
from tests.helpers.requirements import require_root

from caf_hpc.cli import main

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


def test_ctrl_c_of_a_local_run_is_one_line_exit_130_and_leaves_nothing_running(tmp_path):
    import os
    import subprocess
    import sys

    variable, mark = new_mark()
    env = dict(os.environ, **{variable: mark})
    command = [sys.executable, "-m", "caf_hpc.cli", "demo", "--output", str(tmp_path / "demo"), "--flavour", "python",
               "--runs", "20"]
    demo = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = tmp_path.joinpath("demo", *ITERATION, "algorithm_output", "PedestalCalibration_stdout")
    output, took = interrupt_when_ready(demo, log.exists)  # strategies are running on the workers
    assert demo.returncode == 130 and took < 2, (took, output)
    assert output.splitlines()[-1] == "caf-hpc: interrupted" and "Traceback" not in output, output
    assert left_running(mark) == []


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


def test_demo_on_a_terminal_draws_a_live_table(tmp_path):
    import os
    import pty
    import subprocess
    import sys

    leader, follower = pty.openpty()
    demo = subprocess.Popen([sys.executable, "-m", "caf_hpc.cli", "demo", "--output", str(tmp_path / "demo"),
                             "--runs", "3", "--flavour", "python"], stdout=follower, stderr=follower,
                            env=dict(os.environ, COLUMNS="120", TERM="xterm"))
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
        assert demo.wait(timeout=120) == 0
    finally:
        if demo.poll() is None:
            demo.kill()
        os.close(leader)
    screen = b"".join(chunks).decode(errors="replace")
    assert "algorithm step" in screen and "\x1b[" in screen  # rich's table, drawn with terminal codes
    assert "1/1 jobs done" in screen  # its collector line: 6 runs, one collector job
    assert screen.count("COMPLETED") >= 3 and "final state: COMPLETED" in screen


def test_ctrl_c_during_the_collector_step_is_one_line_and_exit_130(tmp_path):
    import subprocess
    import sys

    command = [sys.executable, "-m", "caf_hpc.cli", "demo", "--output", str(tmp_path / "demo"), "--flavour", "python",
               "--runs", "20"]
    demo = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    collector = tmp_path.joinpath("demo", *ITERATION, "collector_output", "default")
    output, took = interrupt_when_ready(demo, lambda: any(collector.glob("*/stdout")))  # collector jobs run
    assert demo.returncode == 130 and took < 5, (took, output)
    assert output.splitlines()[-1] == "caf-hpc: interrupted" and "Traceback" not in output, output
    assert not (collector.parent.parent / "algorithm_output").exists()  # no algorithm started after it
