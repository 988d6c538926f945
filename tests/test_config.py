"""Settings: profiles, precedence, validation, and secrets that never show."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.config import SIGV4_MAX_TTL, Secret, Settings, load_settings
from workbench.errors import ConfigError

SECRET = "s3cr3t-VALUE-never-shown"


def write_yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.yaml"
    path.write_text(text)
    return path


def test_precedence_kwargs_over_workbench_env_over_aws_env_over_file_over_profile(tmp_path: Path) -> None:
    file = write_yaml(tmp_path, "profile: minio\nbucket: from-file\nregion: file-region\npresign_ttl: 100\n"
                                "endpoint: http://file:9000\naccess_key: FILEKEY\nsecret_key: filesecret\n")
    env = {"WORKBENCH_CONFIG": str(file), "AWS_REGION": "aws-env-region", "AWS_ACCESS_KEY_ID": "AWSKEY",
           "AWS_SECRET_ACCESS_KEY": "awssecret", "WORKBENCH_REGION": "wb-env-region", "AWS_ENDPOINT_URL": "http://aws-env:9000"}
    s = load_settings(env=env, bucket="from-kwargs")
    assert s.profile == "minio"          # from the file
    assert s.path_style is True          # minio profile default
    assert s.bucket == "from-kwargs"     # kwargs beat everything
    assert s.region == "wb-env-region"   # WORKBENCH_* beats AWS_*
    assert s.endpoint == "http://aws-env:9000"  # AWS_* beats the file
    assert s.access_key == "AWSKEY"
    assert s.presign_ttl == 100          # only the file sets it
    without_env = load_settings(env={"WORKBENCH_CONFIG": str(file)})
    assert without_env.region == "file-region" and without_env.endpoint == "http://file:9000"


def test_profiles_set_their_defaults() -> None:
    assert load_settings(profile="aws", env={}).path_style is False
    minio = load_settings(profile="minio", env={})
    assert minio.path_style is True and minio.endpoint == "http://localhost:9000"
    r2 = load_settings(profile="r2", env={}, endpoint="https://acct.r2.cloudflarestorage.com")
    assert r2.region == "auto" and r2.path_style is True
    assert load_settings(profile="local", env={}, endpoint="http://127.0.0.1:9").path_style is True


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"profile": "r2"}, "needs an endpoint"),
        ({"profile": "gcs"}, "unknown profile"),
        ({"profile": "local"}, "needs the embedded server"),
        ({"endpoint": "localhost:9000"}, r"must look like http\(s\)://host"),
        ({"accelerate": True, "endpoint": "http://x:1"}, "Transfer Acceleration"),
        ({"presign_ttl": 0}, "too short"),
        ({"presign_ttl": SIGV4_MAX_TTL + 1}, "7 days"),
        ({"access_key": "ONLYKEY"}, "together"),
        ({"path_style": "maybe"}, "true or false"),
        ({"presign_ttl": "soon"}, "whole number"),
        ({"colour": "blue"}, "unknown setting"),
    ],
)
def test_bad_settings_give_clear_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(env={}, **kwargs)


def test_unknown_key_in_yaml_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown setting 'buckett'"):
        load_settings(config_file=write_yaml(tmp_path, "buckett: x\n"), env={})


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(config_file=tmp_path / "nope.yaml", env={})
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(config_file=write_yaml(tmp_path, "a: [1, 2\n"), env={})
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(config_file=write_yaml(tmp_path, "- a\n- b\n"), env={})


def test_env_booleans_and_ints() -> None:
    s = load_settings(env={"WORKBENCH_PATH_STYLE": "yes", "WORKBENCH_PRESIGN_GET_TTL": "120"})
    assert s.path_style is True and s.presign_get_ttl == 120


def test_cloudfront_block_and_key_file(tmp_path: Path) -> None:
    key = tmp_path / "cf.pem"
    key.write_text("-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRIVATE KEY-----\n")
    file = write_yaml(tmp_path, f"cloudfront:\n  domain: d111.cloudfront.net\n  key_pair_id: K2ABC\n  private_key_file: {key}\n")
    s = load_settings(config_file=file, env={})
    assert s.cloudfront_domain == "d111.cloudfront.net" and s.cloudfront_key_pair_id == "K2ABC"
    assert s.cloudfront_private_key is not None and "abc" in s.cloudfront_private_key.reveal()
    assert "abc" not in repr(s)


def test_secrets_never_show_in_repr_str_or_default_dump() -> None:
    s = load_settings(env={"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_SESSION_TOKEN": SECRET})
    for text in (repr(s), str(s), str(s.to_yaml_dict()), repr(s.secret_key), f"{s.secret_key}"):
        assert SECRET not in text
    assert s.secret_key == Secret(SECRET)
    assert s.to_yaml_dict(include_secrets=True)["secret_key"] == SECRET


def test_with_revalidates() -> None:
    s = Settings(bucket="a")
    assert s.with_(bucket="b").bucket == "b"
    with pytest.raises(ConfigError):
        s.with_(presign_ttl=-5)
    with pytest.raises(ConfigError, match="no bucket"):
        Settings().require_bucket()
