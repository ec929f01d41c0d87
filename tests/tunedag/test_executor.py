"""The trial executors: worker processes with enforced limits, and the in-thread executor."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support import jobs
from tests.support.main_module import fake_main
from tunedag.executor import Limits, ProcessExecutor, ThreadExecutor, TrialLimitExceeded, default_threads, main_module


@pytest.fixture(scope="module")
def pool():
    executor = ProcessExecutor(2, Limits(threads=1, timeout_s=3.0, memory_mb=300), preload=("tests.support.jobs",))
    yield executor
    executor.close()


def test_runs_in_another_process(pool):
    pid, value = pool.run(jobs.pid_and_double, 21)
    assert value == 42 and pid != os.getpid()


def test_timeout_kills_the_worker_and_the_pool_goes_on(pool):
    with pytest.raises(TrialLimitExceeded, match="trial_timeout"):
        pool.run(jobs.sleep, 30)
    assert pool.run(jobs.pid_and_double, 1)[1] == 2


def test_a_crashing_worker_is_reported_and_replaced(pool):
    with pytest.raises(TrialLimitExceeded, match="exit code 7"):
        pool.run(jobs.crash)
    assert pool.run(jobs.pid_and_double, 2)[1] == 4


def test_memory_limit_raises_memory_error_inside_the_trial(pool):
    with pytest.raises(MemoryError):
        pool.run(jobs.allocate, 1024)
    assert pool.run(jobs.allocate, 16) == 16 * 1024 * 1024 // 8


def test_exceptions_come_back_as_themselves(pool):
    with pytest.raises(ValueError, match="bad input"):
        pool.run(jobs.raise_value_error)


def test_workers_cap_blas_threads(pool):
    assert set(pool.run(jobs.blas_threads)) <= {1}


def test_an_early_answer_comes_back_while_the_job_goes_on(pool, tmp_path):
    release = tmp_path / "release"  # the job holds its worker until the test creates it: no race with a busy machine
    early, final = pool.start(jobs.answer_early_then_wait, 21, str(release))
    assert early.result(timeout=30) == 21 and not final.done()
    # The pool's other worker runs the next job meanwhile.
    assert pool.run(jobs.pid_and_double, 5)[1] == 10 and not final.done()
    release.touch()
    assert final.result(timeout=30) == 42


def test_a_job_that_gives_no_early_answer_answers_with_its_return(pool):
    early, final = pool.start(jobs.pid_and_double, 4)
    assert early.result(timeout=5) == final.result(timeout=5) and early.result()[1] == 8


def test_a_timeout_after_the_early_answer_fails_only_the_return(pool):
    early, final = pool.start(jobs.answer_early_then_sleep, 3, 30)
    assert early.result(timeout=10) == 3  # well before the 3 s trial_timeout ends the job
    with pytest.raises(TrialLimitExceeded, match="trial_timeout"):
        final.result(timeout=10)


def test_a_timeout_before_the_early_answer_fails_both(pool):
    early, final = pool.start(jobs.sleep, 30)
    with pytest.raises(TrialLimitExceeded, match="trial_timeout"):
        early.result(timeout=10)
    with pytest.raises(TrialLimitExceeded):
        final.result()


def test_the_thread_executor_answers_once_the_job_returned():
    early, final = ThreadExecutor(Limits(threads=1)).start(jobs.answer_early_then_sleep, 2, 0.0)
    assert early.result() == final.result() == 4


def test_thread_executor_runs_in_the_calling_thread():
    assert ThreadExecutor(Limits(threads=default_threads(1))).run(jobs.pid_and_double, 3) == (os.getpid(), 6)


def test_default_threads_share_the_cores():
    cores = os.cpu_count() or 1
    assert default_threads(1) == cores
    assert default_threads(cores * 2) == 1
    assert default_threads(2, requested=3) == 3


@pytest.mark.parametrize(("listed", "nvml", "expected"), [
    (None, 3, ["0", "1", "2"]),  # every GPU the driver counts
    ("5,7", 8, ["5", "7"]),  # the user's restriction, ids kept as given
    ("GPU-aa, GPU-bb", 0, ["GPU-aa", "GPU-bb"]),  # UUIDs
    ("", 2, []),  # GPUs hidden
    (None, 0, []),  # no NVIDIA driver
])
def test_visible_gpus_follow_cuda_visible_devices_else_the_driver(monkeypatch, listed, nvml, expected):
    from tunedag import executor

    if listed is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", listed)
    monkeypatch.setattr(executor, "_nvml_gpu_count", lambda: nvml)
    assert executor.visible_gpus() == expected


def test_without_nvidias_library_there_is_no_gpu_and_no_error(monkeypatch):
    import ctypes

    from tunedag import executor

    def missing(name, *args, **kwargs):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(ctypes, "CDLL", missing)
    assert executor._nvml_gpu_count() == 0


def test_with_several_gpus_each_worker_sees_one_of_them(monkeypatch):
    """Concurrent trials each get their own GPU, from the user's CUDA_VISIBLE_DEVICES list, without torch in this process."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,7")
    executor = ProcessExecutor(2, Limits(threads=1), preload=("tests.support.jobs",), spare=1)
    try:
        started = [executor.start(jobs.visible_devices_after, 1.0)[1] for _ in range(3)]  # all three workers busy
        seen = [future.result(timeout=60) for future in started]
    finally:
        executor.close()
    assert sorted(seen) in (["5", "5", "7"], ["5", "7", "7"])  # never both, never the whole list


def test_workers_find_the_main_module_loaded_when_the_forkserver_preloads_it_by_name(tmp_path):
    """multiprocessing runs the command's main module again in each worker; preloaded, its imports are there already."""
    (tmp_path / "heavy.py").write_text("import os\nwith open('imports.txt', 'a') as fh:\n    fh.write(f'{os.getpid()}\\n')\n")
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "__init__.py").write_text("")
    (tmp_path / "stages" / "command.py").write_text(  # in a package, as flows.tune
        "import heavy\n"
        "if __name__ == '__main__':\n"
        "    import json, os, sys\n"
        "    from tunedag.executor import Limits, ProcessExecutor, main_module\n"
        "    pool = ProcessExecutor(2, Limits(threads=1), (main_module(),))\n"
        "    print(json.dumps([main_module(), [pool.run(os.getpid) for _ in range(4)]]))\n"
        "    pool.close()\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.getcwd()])}
    done = subprocess.run([sys.executable, "-m", "stages.command"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          check=True)

    name, pids = json.loads(done.stdout.strip().splitlines()[-1])
    workers, importers = set(pids), set(map(int, (tmp_path / "imports.txt").read_text().split()))
    assert name == "stages.command"
    assert workers and not workers & importers  # inherited from the forkserver, not imported again
    assert len(importers) == 2  # the command and the forkserver
    assert done.stderr == ""  # runpy's warning of the module run again beside its preloaded copy is not shown


@pytest.mark.parametrize(("spec", "expected"), [("flows.tune", "flows.tune"), ("pytest.__main__", None), (None, None)],
                         ids=["module", "package-main", "script"])
def test_main_module_is_named_only_when_it_runs_by_name(monkeypatch, spec, expected):
    fake_main(monkeypatch, spec)
    assert main_module() == expected
