"""Secrets in text: assignment forms of many languages and formats, well-known value shapes,
and the code and prose around them that must survive."""

from __future__ import annotations

import pytest

from sagetrack._redact import REDACTED, redact_argv, redact_text, strip_url_credentials

V = "hunter2-Xq9"  # a secret value

ASSIGNMENTS = [
    # Python
    f'DB_PASSWORD = "{V}"',
    f"db_password = '{V}'",
    f'os.environ["DB_PASSWORD"] = "{V}"',
    f"os.environ['dbPassword']='{V}'",
    f'os.environ.setdefault("GITHUB_TOKEN", "{V}")',
    f'password: str = "{V}"',
    f"api_key: Optional[str] = '{V}'",
    f'connect(host="db", password="{V}", port=5432)',
    f'settings = {{"clientSecret": "{V}", "epochs": 3}}',
    f'self.api_token = "{V}"',
    # shell, .env
    f"export GITHUB_TOKEN={V}",
    f"DB_PASSWORD={V} python train.py",
    f"AWS_SECRET_ACCESS_KEY={V}",
    f"SM_HP_DBPASSWORD={V}",
    # YAML, JSON, TOML, INI
    f"password: {V}",
    f"  db-password: {V}  # prod",
    f'"apiKey": "{V}",',
    f'api.token = "{V}"',
    f"secret_key={V}",
    f"+    db.password = {V}",  # a line of a diff
    # .netrc
    f"machine example.com login bob password {V}",
    f"machine example.com\n  login bob\n  password {V}\n",
    # command lines
    f"python train.py --api_token {V} --epochs 3",
    f"python train.py --api-token={V} --epochs 3",
    f"python train.py --dbPassword {V}",
    f"Command \"['/usr/bin/python3', 'train.py', '--api_token', '{V}', '--epochs', '3']\"",
    # URLs, headers
    f"postgres://admin:{V}@db.example.com:5432/app",
    f"redis://:{V}@cache:6379",
    f"Authorization: Bearer {V}",
    f"Authorization: Basic {V}",
    f"curl -H 'X-Api-Key: {V}' https://api.example.com",
    f"https://example.com/cb?state=1&token={V}&x=2",
    # prose in exception messages
    f"RuntimeError: the password is {V}",
    f"ValueError: password: {V}",
    f"login failed: wrong password '{V}' for bob",
    f"the API key is {V}",
    # JSON inside a string
    f'{{\\"db_password\\": \\"{V}\\"}}',
]


@pytest.mark.parametrize("text", ASSIGNMENTS)
def test_assigned_secrets_are_redacted(text: str) -> None:
    out = redact_text(text)
    assert V not in out and REDACTED in out


def test_only_the_value_is_redacted() -> None:
    assert redact_text(f'os.environ["DB_PASSWORD"] = "{V}"') == (
        f'os.environ["DB_PASSWORD"] = "{REDACTED}"')
    assert redact_text(f"python train.py --api_token {V} --epochs 3") == (
        f"python train.py --api_token {REDACTED} --epochs 3")
    assert redact_text(f"https://bob:{V}@db.example.com/x") == (
        f"https://bob:{REDACTED}@db.example.com/x")
    assert redact_text(f"Authorization: Bearer {V}") == f"Authorization: Bearer {REDACTED}"
    assert redact_text(f"machine h login bob password {V}") == (
        f"machine h login bob password {REDACTED}")


SHAPES = [
    "AKIAIOSFODNN7EXAMPLE",
    "ASIAY34FZKBOKMUTVV7A",
    "FwoGZXIvYXdzEBYaDExampleSessionTokenValue1234567890abcdef",
    "ghp_abcdefghijklmnopqrstuvwxyz0123456789AB",
    "gho_16C7e42F292c6912E7710c838347Ae178B4a",
    "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
    "glpat-abcdefghijklmnopqrst",
    "xoxb-1234567890-0987654321-AbCdEfGhIjKl",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlF",
]


@pytest.mark.parametrize("value", SHAPES)
def test_well_known_value_shapes_are_redacted_anywhere(value: str) -> None:
    out = redact_text(f"note: see {value} (from the wiki)\n")
    assert value not in out and out == f"note: see {REDACTED} (from the wiki)\n"


def test_private_key_blocks_are_redacted_whole_even_without_their_end() -> None:
    key = ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAexample\nmore\n"
           "-----END RSA PRIVATE KEY-----")
    assert redact_text(f"a\n{key}\nb") == f"a\n{REDACTED}\nb"
    cut = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n"
    assert redact_text(f"a\n{cut}") == f"a\n{REDACTED}"
    public = "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqh\n-----END PUBLIC KEY-----"
    assert redact_text(public) == public


KEPT = [
    "max_tokens = 512\ntoken_length: 128\ntokenizer = 'bert-base-uncased'",
    "for token in tokens:\n    ids.append(vocab[token])",
    "token = tokenizer.encode(text)",
    "password = os.environ['DB_PASSWORD']",
    "password = get_password()",
    "export DB_PASSWORD=${DB_PASSWORD}",
    "def connect(password: str, token: Optional[str] = None) -> None:",
    "if token is None or password is not None:",
    "raise ValueError('password is required')",
    '{"field": "password", "value": "shown"}',
    "pad_token = '[PAD]'\neos_token: '</s>'",
    "author = 'bob'\npasses = 3",
    "ssh://git@github.com/team/repo.git",
    "s3://bucket/prefix/data.npz",
    "see https://example.com/docs/auth/tokens for details",
    "loss=0.25 accuracy=0.9 tokens_per_sec=1200",
    "Bearer tokens are accepted",
]


@pytest.mark.parametrize("text", KEPT)
def test_code_and_prose_without_a_secret_are_kept(text: str) -> None:
    assert redact_text(text) == text


def test_redaction_is_idempotent() -> None:
    text = "\n".join(ASSIGNMENTS + SHAPES)
    once = redact_text(text)
    assert redact_text(once) == once


def test_argv_values_after_secret_options_are_redacted() -> None:
    argv = ["train.py", "--db-password", V, "--token=x1y2", "--epochs", "3", "--apiKey", V,
            "--max_tokens", "512"]
    assert redact_argv(argv) == ["train.py", "--db-password", REDACTED, f"--token={REDACTED}",
                                 "--epochs", "3", "--apiKey", REDACTED, "--max_tokens", "512"]


def test_git_remote_credentials_are_stripped() -> None:
    assert strip_url_credentials(f"https://alice:{V}@git.example.com/p.git") == (
        "https://git.example.com/p.git")
    assert strip_url_credentials("git@github.com:team/p.git") == "git@github.com:team/p.git"
