"""The four environments compose one platform module, and the runner drives the AWS ones with their S3
backend and values. Nothing here reaches AWS: what is checked is the configuration and the command lines.
(Formatting, validation and the `terraform test` files of every environment: test_terraform_static.py.)
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from localdev import terraform as runner
from localdev.terraform import TerraformError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENTS_DIR = PROJECT_ROOT / "terraform" / "environments"
AWS_ENVIRONMENTS = ("dev", "staging", "prod")
SHARED_FILES = ("main.tf", "variables.tf", "outputs.tf", "providers.tf", "versions.tf")


def tfvars(env: str) -> dict[str, object]:
    """The scalar assignments of an environment's terraform.tfvars (all these files hold)."""
    values: dict[str, object] = {}
    for line in (ENVIRONMENTS_DIR / env / "terraform.tfvars").read_text().splitlines():
        match = re.match(r'^\s*(\w+)\s*=\s*("[^"]*"|[^#\s]+)', line)
        if match:
            raw = match.group(2)
            literals = {"true": True, "false": False, "null": None}
            values[match.group(1)] = raw.strip('"') if raw.startswith('"') else literals[raw] if raw in literals else float(raw)
    return values


def output_names(env: str) -> set[str]:
    return set(re.findall(r'^output\s+"([^"]+)"', (ENVIRONMENTS_DIR / env / "outputs.tf").read_text(), re.MULTILINE))


def module_calls(env: str) -> list[str]:
    text = "\n".join(p.read_text() for p in (ENVIRONMENTS_DIR / env).glob("*.tf"))
    return re.findall(r'^module\s+"([^"]+)"', text, re.MULTILINE)


# -- the configurations -------------------------------------------------------------------------


def test_the_four_environments_exist():
    # test_terraform_static.py validates (and runs the terraform tests of) every one of them.
    assert {"local", *AWS_ENVIRONMENTS} <= {p.name for p in ENVIRONMENTS_DIR.iterdir() if p.is_dir()}


@pytest.mark.parametrize("env", ["local", *AWS_ENVIRONMENTS])
def test_each_environment_is_one_platform_call_without_resources_of_its_own(env):
    text = "\n".join(p.read_text() for p in (ENVIRONMENTS_DIR / env).glob("*.tf"))
    assert module_calls(env) == ["platform"]
    assert re.search(r'source\s*=\s*"\.\./\.\./modules/platform"', text)
    assert not re.search(r'^\s*(resource|data)\s+"', text, re.MULTILINE)


def test_the_aws_environments_share_every_terraform_file():
    # Only terraform.tfvars, backend.hcl, fraud-config.json and the tests differ: no copy-paste drift.
    for name in SHARED_FILES:
        texts = {env: (ENVIRONMENTS_DIR / env / name).read_text() for env in AWS_ENVIRONMENTS}
        assert texts["staging"] == texts["dev"] and texts["prod"] == texts["dev"], f"{name} differs between environments"


@pytest.mark.parametrize("env", AWS_ENVIRONMENTS)
def test_aws_environments_can_neither_inject_faults_nor_point_at_another_stripe(env):
    files = [*(ENVIRONMENTS_DIR / env).glob("*.tf"), ENVIRONMENTS_DIR / env / "terraform.tfvars"]
    for path in files:
        assert not re.search(r"fault_injection|stripe_api_base", path.read_text()), path


def test_local_environment_keeps_its_fault_drills():
    assert re.search(r"^\s*fault_injection_enabled\s*=\s*true\b", (ENVIRONMENTS_DIR / "local" / "main.tf").read_text(), re.MULTILINE)


@pytest.mark.parametrize("env", ("staging", "prod"))
def test_staging_and_prod_protect_their_data(env):
    values = tfvars(env)
    assert values["point_in_time_recovery"] is True and values["deletion_protection"] is True
    assert values["kms_deletion_window_in_days"] == 30 and values["secrets_recovery_window_in_days"] == 30
    assert values["log_retention_in_days"] > tfvars("dev")["log_retention_in_days"]


def test_every_environment_has_its_own_name_and_state():
    prefixes = {env: tfvars(env)["name_prefix"] for env in AWS_ENVIRONMENTS}
    assert len(set(prefixes.values())) == 3 and all(env in prefix for env, prefix in prefixes.items())
    assert {env: tfvars(env)["environment"] for env in AWS_ENVIRONMENTS} == {e: e for e in AWS_ENVIRONMENTS}
    keys = set()
    for env in AWS_ENVIRONMENTS:
        backend = (ENVIRONMENTS_DIR / env / "backend.hcl").read_text()
        settings = dict(re.findall(r'^(\w+)\s*=\s*("[^"]*"|\w+)', backend, re.MULTILINE))
        assert set(settings) == {"bucket", "key", "region", "dynamodb_table", "encrypt"}, env
        assert settings["encrypt"] == "true", env
        keys.add(settings["key"])
    assert len(keys) == 3


@pytest.mark.parametrize("env", AWS_ENVIRONMENTS)
def test_aws_environments_output_what_the_local_one_does_and_no_secret(env):
    assert output_names("local") <= output_names(env)
    outputs = (ENVIRONMENTS_DIR / env / "outputs.tf").read_text()
    assert "sensitive" not in outputs and "secret_string" not in outputs and "api_key_value" not in outputs


@pytest.mark.parametrize("env", AWS_ENVIRONMENTS)
def test_aws_environments_use_a_s3_backend_and_a_real_aws_provider(env):
    versions = (ENVIRONMENTS_DIR / env / "versions.tf").read_text()
    assert re.search(r'backend\s+"s3"\s*\{\s*\}', versions)
    providers = (ENVIRONMENTS_DIR / env / "providers.tf").read_text()
    assert "default_tags" in providers and "endpoints" not in providers and "access_key" not in providers


def test_every_configuration_admits_the_5_100_and_the_6_x_provider():
    constraints = {
        str(path.relative_to(PROJECT_ROOT)): re.findall(r'(?<!_)version\s*=\s*"([^"]+)"', path.read_text())
        for path in (PROJECT_ROOT / "terraform").rglob("versions.tf")
    }
    assert constraints and all(found == [">= 5.100, < 7.0"] for found in constraints.values()), constraints


# -- the runner ---------------------------------------------------------------------------------


@pytest.fixture
def aws_env(tmp_path, monkeypatch) -> Path:
    """A copy of the dev environment whose backend.hcl names a (fictitious) bucket and table."""
    environments = tmp_path / "environments"
    shutil.copytree(ENVIRONMENTS_DIR / "dev", environments / "dev")
    (environments / "dev" / "backend.hcl").write_text(
        'bucket         = "acme-paystream-terraform-state" # REPLACE_ME in a comment is fine\n'
        'key            = "paystream/dev/terraform.tfstate"\n'
        'region         = "us-east-1"\n'
        'dynamodb_table = "acme-paystream-terraform-locks"\n'
        "encrypt        = true\n"
    )
    monkeypatch.setattr(runner, "ENVIRONMENTS_DIR", environments)
    return environments / "dev"


def test_aws_environment_inits_with_its_backend_config_and_plans_with_its_values(aws_env, tmp_path):
    tf = runner.for_environment("dev", tmp_path / "state")
    assert tf.env_dir == aws_env.resolve()
    assert tf.init_args() == ["init", "-input=false", "-no-color", "-backend-config=backend.hcl"]
    assert tf.plan_args() == ["plan", "-input=false", "-no-color", "-lock-timeout=60s", "-var-file=terraform.tfvars",
                              "-detailed-exitcode"]
    assert tf.apply_args() == ["apply", "-input=false", "-no-color", "-auto-approve", "-lock-timeout=60s",
                               "-var-file=terraform.tfvars"]
    # Its data dir is its own (never the local stack's) and there is no local state path.
    assert tf.tf_dir == (tmp_path / "state" / "tf-dev" / "tf").resolve()
    assert tf.backend_config == {}


def test_variables_given_on_the_command_line_override_the_environments_file(aws_env, tmp_path):
    tf = runner.for_environment("dev", tmp_path / "state", {"capture_mode": "risk_gated"})
    args = tf.plan_args()
    var_files = [a.removeprefix("-var-file=") for a in args if a.startswith("-var-file=")]
    assert var_files == ["terraform.tfvars", str(tf.tf_dir / "variables.tfvars.json")]  # later wins
    assert '"capture_mode": "risk_gated"' in Path(var_files[1]).read_text()


def test_validation_needs_no_backend(aws_env, tmp_path):
    (aws_env / "backend.hcl").unlink()
    assert runner.for_environment("dev", tmp_path / "state").init_args(backend=False) == [
        "init", "-input=false", "-no-color", "-backend=false"]


def test_missing_backend_config_is_one_clear_line(aws_env, tmp_path, capsys):
    (aws_env / "backend.hcl").unlink()
    with pytest.raises(TerraformError, match=r"backend\.hcl is missing: create it with the bucket, key, region and dynamodb_table"):
        runner.for_environment("dev", tmp_path / "state").init_args()
    assert runner.main(["plan", "--env", "dev", "--state-dir", str(tmp_path / "state")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("terraform: ") and "backend.hcl is missing" in err


def test_shipped_backend_configs_must_be_filled_in_first(tmp_path, capsys):
    # The repository's backend.hcl files name no real bucket: the runner says so before Terraform runs.
    for env in AWS_ENVIRONMENTS:
        with pytest.raises(TerraformError, match="still holds REPLACE_ME placeholders"):
            runner.for_environment(env, tmp_path / "state").init_args()
    assert runner.main(["plan", "--env", "staging", "--state-dir", str(tmp_path / "state")]) == 1
    assert "REPLACE_ME" in capsys.readouterr().err


def test_missing_variables_file_is_named(aws_env, tmp_path):
    (aws_env / "terraform.tfvars").unlink()
    with pytest.raises(TerraformError, match=r"terraform\.tfvars is missing"):
        runner.for_environment("dev", tmp_path / "state").plan_args()


@pytest.mark.parametrize("command", ["apply", "destroy"])
def test_prod_is_refused_without_confirmation(command, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("CONFIRM_PROD", raising=False)
    ran = []
    monkeypatch.setattr(runner, "for_environment", lambda *a, **k: ran.append(a))
    assert runner.main([command, "--env", "prod", "--state-dir", str(tmp_path)]) == 2
    assert "refusing to" in capsys.readouterr().err and ran == []
    monkeypatch.setenv("CONFIRM_PROD", "no")
    assert runner.main([command, "--env", "prod", "--state-dir", str(tmp_path)]) == 2 and ran == []


def test_prod_is_run_once_confirmed(tmp_path, monkeypatch):
    monkeypatch.setenv("CONFIRM_PROD", "yes")
    steps = []

    class FakeTerraform:
        log_file = tmp_path / "log"
        echo = False

        def init(self, backend=True):
            steps.append(("init", backend))

        def apply(self):
            steps.append(("apply",))

    monkeypatch.setattr(runner, "for_environment", lambda env, *a, **k: steps.append(("env", env)) or FakeTerraform())
    assert runner.main(["apply", "--env", "prod", "--state-dir", str(tmp_path)]) == 0
    assert steps == [("env", "prod"), ("init", True), ("apply",)]
