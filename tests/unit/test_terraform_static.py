"""Static checks of terraform/ and of the Terraform runner (offline: the provider comes from the mirror).

Validation runs in a copy of terraform/ so `init` never writes lock files or data dirs into the repo.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from localdev import terraform as runner
from localdev.terraform import Terraform, TerraformError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = PROJECT_ROOT / "terraform"
MODULES = sorted(p.name for p in (TERRAFORM_DIR / "modules").iterdir() if p.is_dir())
ENVIRONMENTS = sorted(p.name for p in (TERRAFORM_DIR / "environments").iterdir() if p.is_dir())
CONFIGS = [f"modules/{m}" for m in MODULES] + [f"environments/{e}" for e in ENVIRONMENTS]

needs_mirror = pytest.mark.skipif(
    runner.find_plugin_mirror() is None,
    reason="no filesystem mirror holds hashicorp/aws; validation would need the registry",
)


def _tf_files(pattern: str) -> list[str]:
    regex = re.compile(pattern)
    return [
        str(path.relative_to(PROJECT_ROOT))
        for path in sorted(TERRAFORM_DIR.rglob("*.tf"))
        if ".terraform" not in path.parts and regex.search(path.read_text())
    ]


@pytest.fixture(scope="module")
def terraform_copy(tmp_path_factory) -> Path:
    copy = tmp_path_factory.mktemp("tf") / "terraform"
    shutil.copytree(TERRAFORM_DIR, copy, ignore=shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "*.tfstate*"))
    return copy


def test_terraform_files_are_formatted():
    result = subprocess.run(
        ["terraform", "fmt", "-check", "-recursive", "-list=true", str(TERRAFORM_DIR)],
        capture_output=True, text=True, env={**os.environ, "CHECKPOINT_DISABLE": "1"},
    )
    assert result.returncode == 0, f"run `terraform fmt -recursive terraform/`; unformatted:\n{result.stdout}{result.stderr}"


def test_modules_with_logic_have_terraform_tests():
    # Route nesting and event-source wiring are computed, so they are tested, not only validated; so are
    # the failure paths (rule targets' retry policy + DLQ, each queue's own DLQ, an alarm per DLQ), and the
    # platform's composition; each AWS environment is planned with its own terraform.tfvars.
    for module in ("api", "lambda_function", "event_bus", "queues", "alarms", "platform"):
        assert list((TERRAFORM_DIR / "modules" / module / "tests").glob("*.tftest.hcl")), module
    for environment in ("dev", "staging", "prod"):
        assert list((TERRAFORM_DIR / "environments" / environment / "tests").glob("*.tftest.hcl")), environment


def test_every_module_has_the_standard_files():
    for module in MODULES:
        present = {p.name for p in (TERRAFORM_DIR / "modules" / module).glob("*.tf")}
        assert {"main.tf", "variables.tf", "outputs.tf", "versions.tf"} <= present, module


@pytest.fixture(scope="module")
def validation_errors(terraform_copy, tmp_path_factory) -> dict[str, str | None]:
    """init -backend=false, validate and `terraform test` (where it has tests) of every configuration,
    in parallel: {config: error or None}."""
    state_root = tmp_path_factory.mktemp("validate")

    def validate(config: str) -> str | None:
        state_dir = state_root / config.replace("/", "-")
        tf = Terraform(terraform_copy / config, state_dir, log_file=state_dir / "terraform.log")
        try:
            tf.init(backend=False)
            tf.validate()
            if list((terraform_copy / config).glob("tests/*.tftest.hcl")):
                tf.test()
        except TerraformError as exc:
            return str(exc)
        # The runner keeps its data dir in the state dir, never inside the configuration.
        assert (state_dir / "tf" / "data").is_dir() and not (terraform_copy / config / ".terraform").exists()
        return None

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        return dict(zip(CONFIGS, pool.map(validate, CONFIGS)))


@needs_mirror
@pytest.mark.parametrize("config", CONFIGS)
def test_configuration_validates_and_passes_its_terraform_tests(config, validation_errors):
    assert validation_errors[config] is None, validation_errors[config]


def test_constructs_the_emulator_cannot_hold_are_absent():
    # See docs LOCAL-EMULATION: these hang the provider or diff on every plan against moto.
    assert _tf_files(r'resource\s+"aws_cloudwatch_composite_alarm"') == []
    assert _tf_files(r'\bdead_letter_config\b|\blogging_config\b') == ["terraform/modules/event_bus/main.tf"]
    assert _tf_files(r'hashicorp/(archive|random|null)"|resource\s+"(random|null)_|data\s+"archive_') == []
    assert _tf_files(r"skip_requesting_account_id\s*=") == []


def test_secret_values_never_pass_through_terraform():
    assert _tf_files(r'"aws_secretsmanager_secret_version"|\bsecret_string\b') == []


# -- the runner -------------------------------------------------------------------------------


def test_mirror_from_environment_variable_wins(tmp_path):
    mirror = tmp_path / "mirror"
    (mirror / runner.AWS_PROVIDER).mkdir(parents=True)
    assert runner.find_plugin_mirror({"PAYSTREAM_TF_PLUGIN_MIRROR": str(mirror)}) == mirror


def test_directory_without_the_aws_provider_is_not_a_mirror(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "mirror_candidates", lambda environ=None: [tmp_path])
    assert runner.find_plugin_mirror() is None


def test_cli_config_uses_the_mirror_for_aws_only(tmp_path):
    mirror = tmp_path / "mirror"
    (mirror / runner.AWS_PROVIDER).mkdir(parents=True)
    tf = Terraform(tmp_path, tmp_path / "state", mirror=mirror)
    env = tf.env()
    config = Path(env["TF_CLI_CONFIG_FILE"]).read_text()
    assert Path(env["TF_CLI_CONFIG_FILE"]).parent == tmp_path / "state" / "tf"
    assert f'path    = "{mirror}"' in config
    assert 'include = ["registry.terraform.io/hashicorp/aws"]' in config
    assert 'exclude = ["registry.terraform.io/hashicorp/aws"]' in config
    assert env["CHECKPOINT_DISABLE"] == "1"
    assert env["TF_DATA_DIR"] == str(tmp_path / "state" / "tf" / "data")


def test_without_a_mirror_the_user_cli_config_is_left_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", "/somewhere/terraformrc")
    env = Terraform(tmp_path, tmp_path / "state", mirror=None).env()
    assert env["TF_CLI_CONFIG_FILE"] == "/somewhere/terraformrc"


def test_missing_terraform_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(TerraformError, match=r"^terraform not found on PATH: install Terraform >= 1\.5 \(https://"):
        Terraform(tmp_path, tmp_path / "state")


def test_unknown_environment_is_named(tmp_path):
    with pytest.raises(TerraformError, match="environment 'nowhere' does not exist yet"):
        runner.for_environment("nowhere", tmp_path)


def test_local_environment_keeps_state_in_the_state_dir(tmp_path):
    tf = runner.for_environment("local", tmp_path / "stack")
    assert tf.backend_config == {"path": str(tmp_path / "stack" / "tf" / "terraform.tfstate")}
    assert tf.log_file == tmp_path / "stack" / "logs" / "terraform.log"
    # Also when the runner is built directly, as the stack orchestrator does.
    direct = Terraform(TERRAFORM_DIR / "environments" / "local", tmp_path / "other")
    assert direct.backend_config == {"path": str(tmp_path / "other" / "tf" / "terraform.tfstate")}


def test_configuration_without_local_backend_gets_no_path(tmp_path):
    (tmp_path / "main.tf").write_text('terraform {\n  backend "s3" {}\n}\n')
    assert Terraform(tmp_path, tmp_path / "state").backend_config == {}


def test_provider_that_cannot_be_installed_says_where_it_looked(tmp_path):
    config = tmp_path / "config"
    config.mkdir()
    (config / "main.tf").write_text(
        'terraform {\n  required_providers {\n    aws = { source = "hashicorp/aws", version = ">= 5.100" }\n  }\n}\n'
    )
    empty_mirror = tmp_path / "mirror"
    (empty_mirror / runner.AWS_PROVIDER).mkdir(parents=True)
    tf = Terraform(config, tmp_path / "state", log_file=tmp_path / "tf.log", mirror=empty_mirror)
    with pytest.raises(TerraformError, match=f"could not install the hashicorp/aws provider from the filesystem mirror {empty_mirror}"):
        tf.init(backend=False)


def test_failed_apply_points_at_the_log_with_the_error(tmp_path):
    config = tmp_path / "config"
    config.mkdir()
    (config / "main.tf").write_text('output "broken" {\n  value = file("/nonexistent/paystream.txt")\n}\n')
    log = tmp_path / "logs" / "terraform.log"
    tf = Terraform(config, tmp_path / "state", log_file=log, mirror=None)
    tf.init(backend=False)
    with pytest.raises(TerraformError) as caught:
        tf.apply()
    message = str(caught.value)
    assert message.startswith(f"terraform apply failed in {config} (full log: {log})")
    assert "Error: Invalid function argument" in message
    assert "/nonexistent/paystream.txt" in log.read_text()


def test_variables_reach_terraform_typed_and_outputs_come_back(tmp_path):
    config = tmp_path / "config"
    config.mkdir()
    (config / "main.tf").write_text(
        'variable "sizes" {\n  type = map(number)\n}\n'
        'output "total" {\n  value = sum(values(var.sizes))\n}\n'
    )
    tf = Terraform(config, tmp_path / "state", {"sizes": {"a": 2, "b": 3}}, log_file=tmp_path / "tf.log", mirror=None)
    tf.init()
    assert tf.plan(detailed_exitcode=True) == 2
    tf.apply()
    assert tf.output() == {"total": 5}
    assert tf.plan(detailed_exitcode=True) == 0
