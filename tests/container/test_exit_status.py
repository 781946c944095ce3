"""The recorded status follows the process's real exit status, whatever the exit path."""

from __future__ import annotations

import pytest

from sagetrack.store.reader import Store
from tests.support.scripts import run_script, store_of

# (script, exit status the process must keep, recorded status, text in the failure message)
EXITS = {
    "return": ("x = 1\n", 0, "completed", None),
    "sys.exit()": ("import sys; sys.exit()\n", 0, "completed", None),
    "sys.exit(0)": ("import sys; sys.exit(0)\n", 0, "completed", None),
    "sys.exit(3)": ("import sys; sys.exit(3)\n", 3, "failed", "status 3"),
    "raise SystemExit": ("raise SystemExit\n", 0, "completed", None),
    "raise SystemExit(3)": ("raise SystemExit(3)\n", 3, "failed", "status 3"),
    "raise SystemExit(main())": (
        "def main():\n    return 2\nraise SystemExit(main())\n", 2, "failed", "status 2"),
    "raise SystemExit(main()) ok": (
        "def main():\n    return 0\nraise SystemExit(main())\n", 0, "completed", None),
    "raise SystemExit('message')": ("raise SystemExit('bad config')\n", 1, "failed",
                                    "bad config"),
    "exit(4) builtin": ("exit(4)\n", 4, "failed", "status 4"),
    "caught SystemExit": (
        "import sys\ntry:\n    sys.exit(5)\nexcept SystemExit:\n    pass\n"
        "try:\n    raise SystemExit(6)\nexcept SystemExit as e:\n"
        "    assert type(e) is SystemExit and e.code == 6\n", 0, "completed", None),
    "argparse error": (
        "import argparse\np = argparse.ArgumentParser()\np.add_argument('--n', type=int)\n"
        "p.parse_args(['--n', 'x'])\n", 2, "failed", "status 2"),
    "uncaught exception": ("raise KeyError('missing column')\n", 1, "failed",
                           "missing column"),
    "os._exit(0)": ("import os; os._exit(0)\n", 0, "completed", None),
    "os._exit(7)": ("import os; os._exit(7)\n", 7, "failed", "status 7"),
    "SystemExit in a thread": (
        "import threading, sys\nt = threading.Thread(target=lambda: sys.exit(9))\n"
        "t.start(); t.join()\n", 0, "completed", None),
    "forked worker os._exit": (
        "import multiprocessing as mp, os\n"
        "def work(): os._exit(3)\n"
        "if __name__ == '__main__':\n"
        "    p = mp.get_context('fork').Process(target=work); p.start(); p.join()\n"
        "    assert p.exitcode == 3\n", 0, "completed", None),
}


@pytest.mark.parametrize("path", list(EXITS))
def test_recorded_status_follows_the_exit_status(path, tmp_path):
    script, code, status, message = EXITS[path]
    out = run_script(tmp_path, script)
    assert out.returncode == code, out.stderr  # the exit status is the script's own
    run = Store(store_of(tmp_path)).run("job-1")
    assert run.status == status, (path, run.status_record)
    if message is None:
        assert run.failure is None
    else:
        assert message in (run.failure or {}).get("message", ""), run.failure


def test_system_exit_keeps_the_builtin_name_and_pickles(tmp_path):
    out = run_script(tmp_path, """
        import pickle
        e = SystemExit(3)
        assert isinstance(e, BaseException) and type(e).__name__ == "SystemExit"
        assert repr(e) == "SystemExit(3)"
        assert type(pickle.loads(pickle.dumps(e))) is SystemExit
        assert issubclass(SystemExit, BaseException)
        print("ok")
    """)
    assert out.returncode == 0, out.stderr
    assert "ok" in out.stdout

