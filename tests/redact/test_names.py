"""Which names hold secrets: every case and separator style, and the names that only look so."""

from __future__ import annotations

import pytest

from sagetrack._redact import REDACTED, is_secret_name, redact_mapping

SECRET_NAMES = [
    # the shapes the attacker used
    "dbPassword", "githubToken", "clientSecret", "SM_HP_DBPASSWORD", "SM_HP_GITHUBTOKEN",
    "SM_HP_CLIENTSECRET", "SM_HP_DB_PASSWORD",
    # one name, every style
    "db_password", "db-password", "db.password", "DB_PASSWORD", "DbPassword", "DB-PASSWORD",
    "dbpassword", "DBPASSWORD", "Db.Password",
    # common credential names
    "api_token", "apiToken", "api-token", "apiKey", "APIKey", "api_key", "API_KEY", "apikey",
    "x-api-key", "AWS_SECRET_ACCESS_KEY", "aws_secret_access_key", "AWS_SESSION_TOKEN",
    "AWS_ACCESS_KEY_ID", "private_key", "privateKey", "PRIVATE_KEY", "passwd", "pwd", "PWD",
    "passphrase", "credentials", "creds", "auth", "Authorization", "authorization", "cookie",
    "Set-Cookie", "session_token", "sessionToken", "session_id", "SESSIONID", "HF_TOKEN",
    "WANDB_API_KEY", "token", "secret", "secrets", "TF_SECRET_KEY", "SAGEMAKER_SESSION_TOKEN",
    "id_token", "refresh_token", "access_tokens", "DB_PASS", "oauth", "basicAuth",
    "X-Auth-Token", "AccountKey", "secret_key_base", "config.db.password", "--api-token",
    "SM_HP_APIKEY", "SM_HP_PRIVATEKEY", "SM_HP_SESSIONTOKEN", "SM_HP_AWSSECRETACCESSKEY",
]

NOT_SECRET_NAMES = [
    "max_tokens", "maxTokens", "MAX_TOKENS", "max-tokens", "tokenizer", "Tokenizer",
    "tokenizer_name", "num_tokens", "numTokens", "token_length", "tokenLength", "vocab_tokens",
    "tokens", "passes", "num_passes", "author", "authors", "pad_token", "padToken",
    "pad_token_id", "eos_token", "token_type_ids", "max_new_tokens", "model_max_length",
    "password_file", "secret_name", "key", "sort_key", "kms_key_id", "OUTPUT_KMS_KEY",
    "learning_rate", "epochs", "keyboard", "compass", "bypass", "auth_method", "session",
    "SM_HPS", "SM_USER_ARGS", "SM_TRAINING_ENV", "SM_HP_MAXTOKENS", "SM_HP_TOKENLENGTH",
    "SM_HP_NUMTOKENS", "SM_HP_PADTOKEN", "SM_HP_TOKENIZER", "SM_HP_PASSES", "SM_HP_AUTHOR",
    "SAGETRACK_KMS_KEY_ID", "", "_", "123",
]


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_secret_names_in_every_style_are_recognised(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize("name", NOT_SECRET_NAMES)
def test_names_that_only_mention_a_secret_word_are_kept(name: str) -> None:
    assert not is_secret_name(name)


def test_mapping_keeps_useful_values_and_redacts_only_secrets() -> None:
    params = {name: 512 for name in NOT_SECRET_NAMES if name}
    params.update({"dbPassword": "hunter2", "githubToken": 7, "use_auth_token": True,
                   "api_key": None, "client_secret": ""})
    out = redact_mapping(params)
    assert {k: out[k] for k in params if k in NOT_SECRET_NAMES} == {
        k: 512 for k in NOT_SECRET_NAMES if k}
    assert out["dbPassword"] == REDACTED and out["githubToken"] == REDACTED
    # flags and empty values carry no secret: kept, so they stay reproducible
    assert out["use_auth_token"] is True and out["api_key"] is None and out["client_secret"] == ""
