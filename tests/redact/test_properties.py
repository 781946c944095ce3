"""Property: generated secrets, planted under generated names in every style and in every kind
of record, never reach a file that sagetrack writes (store, local mirror, checkpoint copy),
while the values around them survive."""

from __future__ import annotations

import json
import string
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sagetrack._redact import REDACTED, redact_text
from sagetrack.container.writer import RecordWriter
from sagetrack.store.backends import LocalBackend
from sagetrack.store.layout import dumps, dumps_row

PREFIXES = ["db", "github", "client", "service", "prod", "slack", "hf", "wandb", "admin", "aws",
            "stripe", "mlflow", "my"]
NOUNS = [("password",), ("passwd",), ("passphrase",), ("secret",), ("token",), ("api", "key"),
         ("private", "key"), ("access", "token"), ("auth", "token"), ("session", "token"),
         ("credentials",), ("client", "secret"), ("secret", "access", "key"),
         ("refresh", "token"), ("api", "token"), ("pwd",)]


def _camel(words: list[str]) -> str:
    return words[0] + "".join(w.title() for w in words[1:])


STYLES = {
    "snake": "_".join,
    "kebab": "-".join,
    "dotted": ".".join,
    "camel": _camel,
    "pascal": lambda words: "".join(w.title() for w in words),
    "upper": lambda words: "_".join(words).upper(),
    # how SageMaker passes hyperparameter NAME to the container: SM_HP_<NAME upper-cased>
    "sm_hp": lambda words: "SM_HP_" + _camel(words).upper(),
    "sm_hp_snake": lambda words: "SM_HP_" + "_".join(words).upper(),
}


@st.composite
def names(draw: Any) -> tuple[str, str]:
    """(a secret-bearing name in some style, the same name in words for prose)."""
    words = [*draw(st.lists(st.sampled_from(PREFIXES), max_size=2)),
             *draw(st.sampled_from(NOUNS))]
    return STYLES[draw(st.sampled_from(sorted(STYLES)))](words), " ".join(words)


ALNUM = string.ascii_letters + string.digits
values = st.text(alphabet=ALNUM + "-_.+=~!%^*:", min_size=10, max_size=40).filter(
    lambda v: v[0] in ALNUM and any(c.isdigit() for c in v) and any(c.isalpha() for c in v))
b64url = ALNUM + "-_"
shapes = st.one_of(
    st.builds("AKIA{}".format, st.text(string.ascii_uppercase + string.digits,
                                       min_size=16, max_size=16)),
    st.builds("ghp_{}".format, st.text(ALNUM, min_size=36, max_size=36)),
    st.builds("github_pat_{}".format, st.text(ALNUM + "_", min_size=40, max_size=60)),
    st.builds("glpat-{}".format, st.text(b64url, min_size=20, max_size=24)),
    st.builds("xoxb-{}".format, st.text(string.digits + "-", min_size=12, max_size=40)),
    st.builds("eyJ{}.eyJ{}.{}".format, st.text(b64url, min_size=8, max_size=40),
              st.text(b64url, min_size=4, max_size=40), st.text(b64url, max_size=40)),
)

# the ways a secret is written in code, configuration, command lines, URLs and messages
FORMS = [
    '{n} = "{v}"', "{n}='{v}'", 'os.environ["{n}"] = "{v}"', "os.environ['{n}']='{v}'",
    'os.environ.setdefault("{n}", "{v}")', '{n}: str = "{v}"', 'connect(host="h", {n}="{v}")',
    '{{"{n}": "{v}", "epochs": 3}}', "export {n}={v}", "{n}={v} python train.py", "{n}: {v}",
    "  {n}: {v}  # prod", "{n} = {v}", "[{n}] = {v}", "python train.py --{n} {v} --epochs 3",
    "python train.py --{n}={v}", "Command \"['/usr/bin/python3', 'train.py', '--{n}', '{v}']\"",
    "https://example.com/cb?{n}={v}&x=1",
]
PROSE = ["the {w} is {v}", "{w}: {v}", "wrong {w} '{v}' for bob", "invalid {w} \"{v}\""]
FIXED = ["machine example.com login bob password {v}", "machine h\n  login bob\n  password {v}",
         "postgres://admin:{v}@db.example.com:5432/app", "redis://:{v}@cache:6379",
         "Authorization: Bearer {v}", "Authorization: Basic {v}", "curl -H 'X-Api-Key: {v}' x"]


@st.composite
def planted(draw: Any) -> tuple[list[str], list[str]]:
    """(lines that each carry a secret, the secrets)."""
    lines, secrets = [], []
    for _ in range(draw(st.integers(1, 4))):
        (name, words), value = draw(names()), draw(values)
        form = draw(st.sampled_from(FORMS + PROSE + FIXED))
        lines.append(form.format(n=name, w=words, v=value))
        secrets.append(value)
    shape = draw(shapes)
    lines.append(f"see {shape} in the notes")
    secrets.append(shape)
    return lines, secrets


@settings(max_examples=300, deadline=None)
@given(planted())
def test_generated_secrets_in_text_are_redacted(case: tuple[list[str], list[str]]) -> None:
    lines, secrets = case
    text = "\n".join(lines)
    out = redact_text(text)
    assert [s for s in secrets if s in out] == []
    assert out.count("\n") == text.count("\n")  # values are replaced, lines are kept


def _diff(lines: list[str], untracked: str) -> str:
    added = "".join(f"+{line}\n" for text in lines for line in text.split("\n"))
    return (f"diff --git a/train.py b/train.py\n--- a/train.py\n+++ b/train.py\n@@ -1 +1,9 @@\n"
            f"-print('old')\n{added}"
            f"diff --git a/{untracked} b/{untracked}\nnew file mode 100644\n--- /dev/null\n"
            f"+++ b/{untracked}\n@@ -0,0 +1,9 @@\n{added}")


def _records(name: str, value: str, lines: list[str], shape: str) -> dict[str, Any]:
    """Every record of a run, with the secret planted wherever a user could put it."""
    cli = [f"--{name}", value]
    return {
        "run.json": {"format": "sagetrack/1",
                     "params": {name: value, "epochs": 3, "max_tokens": 512,
                                "notes": f"use {shape}", "nested": {name: value, "lr": 0.1}},
                     "environment": {name: value, "MODE": "train"},
                     "sagemaker_params": {"hyperparameters": {name: json.dumps(value)},
                                          "environment": {name: value}},
                     "code": {"remote": f"https://bob:{value}@git.example.com/p.git"}},
        "environment.json": {
            "argv": ["train.py", *cli, "--epochs", "3"],
            "environment_variables": {
                "SM_HP_" + name.upper(): value, "SM_HPS": json.dumps({name: value}),
                "SM_USER_ARGS": json.dumps(cli),
                "SM_TRAINING_ENV": json.dumps({"hyperparameters": {name: value}}),
                "HOME": "/root"}},
        "hosts/algo-1.json": {"argv": ["train.py", *cli]},
        "status.json": {"status": "failed", "failure": {
            "type": "RuntimeError", "message": lines[0],
            "traceback": "Traceback (most recent call last):\n" + "\n".join(lines)}},
        "job.json": {"status": "Failed", "failure_reason": (
            "AlgorithmError: ExecuteUserScriptError:\nExitCode 1\nErrorMessage \"RuntimeError: "
            f"{lines[-1]}\"\nCommand \"['/usr/local/bin/python3.10', 'train.py', "
            f"'--{name}', '{value}', '--epochs', '3']\", exit code: 1")},
        "model.json": {"files": [{"path": "model.keras", "note": lines[0]}]},
    }


def _leaks(root: Path, secrets: list[str]) -> list[tuple[str, str]]:
    return [(str(p.relative_to(root)), s) for p in sorted(root.rglob("*")) if p.is_file()
            for s in secrets if s.encode() in p.read_bytes()]


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(names(), values, planted(), shapes, st.sampled_from([".env", "config.yaml", ".netrc",
                                                            "settings.toml", "run.sh"]))
def test_generated_secrets_never_reach_a_written_file(
        name: tuple[str, str], value: str, case: tuple[list[str], list[str]], shape: str,
        untracked: str) -> None:
    lines, secrets = case
    secrets = [value, shape, *secrets]
    records = _records(name[0], value, lines, shape)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # the client: straight into the store
        store = LocalBackend(root / "store")
        for doc, obj in records.items():
            store.put(f"exp/run-1/{doc}", dumps(obj))
        store.put("exp/run-1/code.diff", _diff(lines, untracked).encode())
        # the container: through the background writer to store, mirror and checkpoint copy
        writer = RecordWriter(LocalBackend(root / "store"), "exp/run-2",
                              mirror=LocalBackend(root / "mirror"),
                              checkpoint=LocalBackend(root / "checkpoint"), min_interval=0.0)
        for doc, obj in records.items():
            writer.set(doc, obj)
        for epoch, line in enumerate(lines, 1):
            writer.append("metrics.jsonl", {"epoch": epoch, "metrics": {"loss": 0.5},
                                            "note": line})
        writer.set("code.diff", _diff(lines, untracked).encode())
        assert writer.close(10.0)
        assert _leaks(root, secrets) == []
        for run in ("run-1", "run-2"):
            params = json.loads((root / f"store/exp/{run}/run.json").read_text())["params"]
            assert params[name[0]] == REDACTED
            assert (params["epochs"], params["max_tokens"], params["nested"]["lr"]) == (3, 512, 0.1)
        assert len((root / "mirror/exp/run-2/metrics.jsonl").read_text().splitlines()) == len(
            lines)


def test_metric_rows_without_secrets_keep_their_bytes(tmp_path: Path) -> None:
    rows = [{"epoch": i, "metrics": {"loss": 1 / i, "tokens_per_sec": 100.0 * i}}
            for i in range(1, 50)]
    writer = RecordWriter(LocalBackend(tmp_path / "store"), "exp/r",
                          mirror=LocalBackend(tmp_path / "mirror"))
    for row in rows:
        writer.append("metrics.jsonl", row)
    assert writer.close(10.0)
    expected = "".join(dumps_row(r) for r in rows)
    assert (tmp_path / "store/exp/r/metrics.jsonl").read_text() == expected
