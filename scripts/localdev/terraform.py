"""Run Terraform for one environment, non-interactively, with offline provider resolution.

Used by the stack orchestrator (in process, through `Terraform`) and by `make plan/apply ENV=…`
(`python -m localdev terraform plan|apply|destroy|output --env NAME`).

The AWS environments (dev, staging, prod) keep their state in S3: `init` passes the environment's
`backend.hcl` (`-backend-config=backend.hcl`) and every plan/apply its `terraform.tfvars`. Nothing here can
reach AWS by itself: the usual credential chain decides where those commands go.

The hashicorp/aws provider is taken from a filesystem mirror when one exists, because the
registry is often unreachable (CI sandboxes, trains). Everything Terraform writes for the local
environment (data dir, state, CLI config) lives under the stack's state directory, so a test stack
in a temporary directory never touches a developer's `.local/`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENTS_DIR = PROJECT_ROOT / "terraform" / "environments"
DEFAULT_STATE_DIR = PROJECT_ROOT / ".local"
AWS_PROVIDER = "registry.terraform.io/hashicorp/aws"
MIN_TERRAFORM = (1, 5)
INSTALL_HINT = "install Terraform >= 1.5 (https://developer.hashicorp.com/terraform/install)"
# Lines kept from a failed command's output in the exception message; the full text is in the log.
ERROR_TAIL_LINES = 12
# Per AWS environment: the S3 backend settings and the environment's values, both in its directory.
BACKEND_CONFIG_FILE = "backend.hcl"
VARIABLES_FILE = "terraform.tfvars"
# What the shipped backend.hcl files hold until a user puts their own bucket and lock table there.
BACKEND_PLACEHOLDER = "REPLACE_ME"


class TerraformError(RuntimeError):
    """A Terraform step failed; the message says what to do and where the full log is."""


def mirror_candidates(environ: dict[str, str] | None = None) -> list[Path]:
    environ = os.environ if environ is None else environ
    candidates = []
    if environ.get("PAYSTREAM_TF_PLUGIN_MIRROR"):
        candidates.append(Path(environ["PAYSTREAM_TF_PLUGIN_MIRROR"]).expanduser())
    candidates += [
        Path("/opt/tf-plugins"),
        Path("~/.terraform.d/plugins").expanduser(),
        Path("/usr/share/terraform/plugins"),
        Path("/usr/local/share/terraform/plugins"),
    ]
    return candidates


def find_plugin_mirror(environ: dict[str, str] | None = None) -> Path | None:
    """The first filesystem mirror that holds hashicorp/aws, or None (then the registry is used)."""
    for candidate in mirror_candidates(environ):
        if (candidate / AWS_PROVIDER).is_dir():
            return candidate
    return None


def cli_config_text(mirror: Path) -> str:
    return f"""provider_installation {{
  filesystem_mirror {{
    path    = {json.dumps(str(mirror))}
    include = ["{AWS_PROVIDER}"]
  }}
  direct {{
    exclude = ["{AWS_PROVIDER}"]
  }}
}}
"""


def find_terraform() -> str:
    path = shutil.which("terraform")
    if path is None:
        raise TerraformError(f"terraform not found on PATH: {INSTALL_HINT}")
    return path


def _tail_errors(output: str) -> str:
    """The end of a failed command's output, from its first error on, without the box drawing."""
    lines = [line.strip("╷│╵ ").rstrip() for line in output.splitlines()]
    lines = [line for line in lines if line]
    first_error = next((i for i, line in enumerate(lines) if line.startswith("Error:")), None)
    if first_error is not None:
        lines = lines[first_error:]
    return "\n".join(lines[:ERROR_TAIL_LINES])


def _declares_local_backend(config_dir: Path) -> bool:
    return any(re.search(r'^\s*backend\s+"local"', f.read_text(), re.MULTILINE) for f in config_dir.glob("*.tf"))


class Terraform:
    """One Terraform working directory (an environment or a module) driven non-interactively.

    `state_dir/tf` holds the data dir and the CLI config, and, when the configuration declares a
    `backend "local"`, the state itself (`state_dir/tf/terraform.tfstate`, unless `backend_config`
    says otherwise). `backend_config_file` (a file in the configuration directory, e.g. backend.hcl)
    and then `backend_config` are passed to `init` as `-backend-config=…`; `var_files` (also in the
    configuration directory) and then `variables` to plan/apply/destroy as `-var-file=…`. All command
    output is appended to `log_file` (default `state_dir/tf/terraform.log`).
    """

    def __init__(
        self,
        env_dir: Path | str,
        state_dir: Path | str,
        variables: dict[str, Any] | None = None,
        log_file: Path | str | None = None,
        backend_config: dict[str, str] | None = None,
        mirror: Path | None | bool = True,
        backend_config_file: str | None = None,
        var_files: list[str] | None = None,
    ) -> None:
        self.env_dir = Path(env_dir).resolve()
        if not self.env_dir.is_dir():
            raise TerraformError(f"no Terraform configuration at {self.env_dir}")
        self.tf_dir = Path(state_dir).resolve() / "tf"
        self.variables = dict(variables or {})
        self.log_file = Path(log_file) if log_file else self.tf_dir / "terraform.log"
        if backend_config is None and _declares_local_backend(self.env_dir):
            backend_config = {"path": str(self.tf_dir / "terraform.tfstate")}
        self.backend_config = dict(backend_config or {})
        self.backend_config_file = backend_config_file
        self.var_files = list(var_files or [])
        # mirror=True: look for one; a Path: use it; None/False: use the registry.
        self.mirror = find_plugin_mirror() if mirror is True else (mirror or None)
        self.terraform = find_terraform()
        # Also print command output as it comes (the CLI does; the stack orchestrator keeps it in the log).
        self.echo = False

    # -- commands ---------------------------------------------------------------------------

    def init_args(self, backend: bool = True) -> list[str]:
        """The `terraform init` arguments (without the binary); checks the backend config file first."""
        args = ["init", "-input=false", "-no-color"]
        if not backend:
            return [*args, "-backend=false"]
        if self.backend_config_file:
            self._check_backend_config_file()
            args.append(f"-backend-config={self.backend_config_file}")
        return args + [f"-backend-config={key}={value}" for key, value in self.backend_config.items()]

    def plan_args(self, detailed_exitcode: bool = True) -> list[str]:
        args = ["plan", "-input=false", "-no-color", "-lock-timeout=60s", *self._var_args()]
        return [*args, "-detailed-exitcode"] if detailed_exitcode else args

    def apply_args(self) -> list[str]:
        return ["apply", "-input=false", "-no-color", "-auto-approve", "-lock-timeout=60s", *self._var_args()]

    def destroy_args(self) -> list[str]:
        return ["destroy", "-input=false", "-no-color", "-auto-approve", "-lock-timeout=60s", *self._var_args()]

    def init(self, backend: bool = True) -> None:
        args = self.init_args(backend)
        self._check_version()
        result = self._run(args)
        if result.returncode == 0:
            return
        if re.search(r"Failed to (query available provider packages|install provider)", result.stdout):
            if self.mirror:
                where = f"the filesystem mirror {self.mirror}"
            else:
                looked = ", ".join(str(p) for p in mirror_candidates())
                where = f"the registry (no filesystem mirror holds {AWS_PROVIDER}; looked in {looked}; set PAYSTREAM_TF_PLUGIN_MIRROR)"
            raise TerraformError(
                f"could not install the hashicorp/aws provider from {where}; see {self.log_file}:\n"
                + _tail_errors(result.stdout)
            )
        raise self._error("init", result)

    def validate(self) -> None:
        self._check("validate", self._run(["validate", "-no-color"]))

    def test(self) -> None:
        """`terraform test`: the configuration's *.tftest.hcl files (offline ones use mock providers)."""
        self._check("test", self._run(["test", "-no-color"]))

    def plan(self, detailed_exitcode: bool = True) -> int:
        """0: no changes; 2: changes (only with detailed_exitcode); raises on error."""
        result = self._run(self.plan_args(detailed_exitcode))
        if result.returncode == 0 or (detailed_exitcode and result.returncode == 2):
            return result.returncode
        raise self._error("plan", result)

    def apply(self) -> None:
        self._check("apply", self._run(self.apply_args()))

    def destroy(self) -> None:
        self._check("destroy", self._run(self.destroy_args()))

    def output(self) -> dict[str, Any]:
        """Every root output as {name: value} (sensitive ones included: the caller decides)."""
        result = self._run(["output", "-json", "-no-color"], capture=True)
        self._check("output", result)
        return {name: item["value"] for name, item in json.loads(result.stdout or "{}").items()}

    # -- plumbing ---------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            CHECKPOINT_DISABLE="1",
            TF_IN_AUTOMATION="1",
            TF_INPUT="0",
            TF_DATA_DIR=str(self.tf_dir / "data"),
        )
        if self.mirror is not None:
            config = self.tf_dir / "terraformrc"
            config.parent.mkdir(parents=True, exist_ok=True)
            config.write_text(cli_config_text(self.mirror))
            env["TF_CLI_CONFIG_FILE"] = str(config)
        return env

    def _var_args(self) -> list[str]:
        # The configuration's own files first: later files win, so `variables` override them.
        args = [f"-var-file={name}" for name in self.var_files]
        missing = [name for name in self.var_files if not (self.env_dir / name).is_file()]
        if missing:
            raise TerraformError(f"{self.env_dir / missing[0]} is missing: it holds the environment's values")
        if not self.variables:
            return args
        # A JSON var file keeps maps, lists and numbers typed, and keeps values off the command line.
        var_file = self.tf_dir / "variables.tfvars.json"
        var_file.parent.mkdir(parents=True, exist_ok=True)
        var_file.write_text(json.dumps(self.variables, indent=2, sort_keys=True))
        return [*args, f"-var-file={var_file}"]

    def _check_backend_config_file(self) -> None:
        """One clear line instead of Terraform asking for a bucket it cannot prompt for, or an S3 error."""
        path = self.env_dir / self.backend_config_file
        if not path.is_file():
            raise TerraformError(
                f"{path} is missing: create it with the bucket, key, region and dynamodb_table of this "
                f"environment's S3 state (like terraform/environments/dev/{BACKEND_CONFIG_FILE})"
            )
        settings = [line.split("#", 1)[0] for line in path.read_text().splitlines()]
        if any(BACKEND_PLACEHOLDER in line for line in settings):
            raise TerraformError(
                f"{path} still holds {BACKEND_PLACEHOLDER} placeholders: put your state bucket and lock table names there"
            )

    def _run(self, args: list[str], capture: bool = False) -> subprocess.CompletedProcess[str]:
        """Run terraform, appending its output to the log as it comes (so the log can be followed).

        capture=True keeps stdout out of the log and apart from stderr (for machine-read output).
        """
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        command = [self.terraform, *args]
        options = dict(cwd=self.env_dir, env=self.env(), stdin=subprocess.DEVNULL, text=True)
        with open(self.log_file, "a", encoding="utf-8") as log:
            log.write(f"$ terraform {' '.join(args)}  (in {self.env_dir})\n")
            log.flush()
            if capture:
                result = subprocess.run(command, capture_output=True, check=False, **options)
                log.write(result.stderr)
            else:
                with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **options) as proc:
                    lines = []
                    for line in proc.stdout:
                        log.write(line)
                        log.flush()
                        lines.append(line)
                        if self.echo:
                            sys.stdout.write(line)
                result = subprocess.CompletedProcess(command, proc.returncode, "".join(lines), "")
            log.write(f"[exit {result.returncode}]\n")
        return result

    def _check(self, step: str, result: subprocess.CompletedProcess[str]) -> None:
        if result.returncode != 0:
            raise self._error(step, result)

    def _error(self, step: str, result: subprocess.CompletedProcess[str]) -> TerraformError:
        return TerraformError(
            f"terraform {step} failed in {self.env_dir} (full log: {self.log_file}):\n"
            + _tail_errors(result.stderr + "\n" + result.stdout)
        )

    def _check_version(self) -> None:
        result = self._run(["version", "-json"], capture=True)
        try:
            version = json.loads(result.stdout)["terraform_version"]
        except (ValueError, KeyError):
            raise TerraformError(f"`{self.terraform} version -json` gave no version: {INSTALL_HINT}") from None
        found = tuple(int(part) for part in re.findall(r"\d+", version)[:2])
        if found < MIN_TERRAFORM:
            raise TerraformError(f"terraform {version} at {self.terraform} is too old: {INSTALL_HINT}")


def for_environment(
    env_name: str,
    state_dir: Path | str = DEFAULT_STATE_DIR,
    variables: dict[str, Any] | None = None,
    log_file: Path | str | None = None,
) -> Terraform:
    """The runner for terraform/environments/<env_name>; the local one keeps its state in state_dir."""
    env_dir = ENVIRONMENTS_DIR / env_name
    if not env_dir.is_dir():
        known = sorted(p.name for p in ENVIRONMENTS_DIR.iterdir() if p.is_dir()) if ENVIRONMENTS_DIR.is_dir() else []
        raise TerraformError(
            f"environment {env_name!r} does not exist yet (no {env_dir}); available: {', '.join(known) or 'none'}"
        )
    state_dir = Path(state_dir).resolve()
    if env_name == "local":
        return Terraform(env_dir, state_dir, variables, log_file or state_dir / "logs" / "terraform.log")
    # Remote environments keep their state in their own backend (backend.hcl); only the data dir is per
    # state dir, under a per-environment name so that `plan --env prod` never reuses the local data dir.
    return Terraform(
        env_dir, state_dir / f"tf-{env_name}", variables, log_file,
        backend_config_file=BACKEND_CONFIG_FILE, var_files=[VARIABLES_FILE],
    )


def _parse_var(text: str) -> tuple[str, Any]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"--var expects NAME=VALUE, got {text!r}")
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m localdev terraform", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["init", "plan", "apply", "destroy", "output", "validate"])
    parser.add_argument("--env", default="local", help="environment under terraform/environments (default: local)")
    parser.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR), help="state directory (default: .local)")
    parser.add_argument(
        "--var", action="append", default=[], type=_parse_var, metavar="NAME=VALUE",
        help="set a variable (VALUE parsed as JSON when it is JSON); repeatable",
    )
    args = parser.parse_args(argv)

    if args.env == "prod" and args.command in ("apply", "destroy") and os.environ.get("CONFIRM_PROD") != "yes":
        print(f"refusing to {args.command} prod: set CONFIRM_PROD=yes to confirm", file=sys.stderr)
        return 2
    try:
        tf = for_environment(args.env, args.state_dir, dict(args.var))
        # Validation needs no state: it works before backend.hcl is filled in, and offline.
        tf.init(backend=args.command != "validate")
        tf.echo = args.command != "output"
        if args.command == "plan":
            changes = tf.plan(detailed_exitcode=True)
            print("no changes" if changes == 0 else f"changes pending (see {tf.log_file})")
        elif args.command == "apply":
            tf.apply()
            print(f"applied {args.env} (log: {tf.log_file})")
        elif args.command == "destroy":
            tf.destroy()
            print(f"destroyed {args.env} (log: {tf.log_file})")
        elif args.command == "output":
            print(json.dumps(tf.output(), indent=2, sort_keys=True))
        elif args.command == "validate":
            tf.validate()
            print(f"{args.env}: valid")
    except TerraformError as exc:
        print(f"terraform: {exc}", file=sys.stderr)
        return 1
    return 0
